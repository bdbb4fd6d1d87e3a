"""Score intervals hold their coverage: simulated from known truths, they contain the truth about
95% of the time (Wilson at small n, square-and-add balanced accuracy, Fisher's z)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autointerp.interpret.scoring.stats import (
    balanced_accuracy,
    correlation,
    f1_score,
    wilson,
)
from autointerp.interpret.scoring.summary import RunningMean, mean_score, score_range

TRIALS = 4000


def _coverage(hits: int) -> float:
    return hits / TRIALS


@pytest.mark.parametrize(("p", "n"), [(0.5, 10), (0.9, 10), (0.95, 40), (0.2, 25), (0.5, 200)])
def test_wilson_covers_the_true_rate(p: float, n: int) -> None:
    rng = random.Random(1)
    hits = 0
    for _ in range(TRIALS):
        e = wilson(sum(rng.random() < p for _ in range(n)), n)
        hits += e.low <= p <= e.high  # type: ignore[operator]
    assert 0.92 <= _coverage(hits) <= 0.995


@pytest.mark.parametrize(("tpr", "tnr", "n"), [(0.9, 0.8, 10), (0.5, 0.5, 10), (0.97, 0.99, 30)])
def test_balanced_accuracy_covers_the_true_value(tpr: float, tnr: float, n: int) -> None:
    rng = random.Random(2)
    truth = (tpr + tnr) / 2
    hits = 0
    for _ in range(TRIALS):
        tp = sum(rng.random() < tpr for _ in range(n))
        tn = sum(rng.random() < tnr for _ in range(n))
        e = balanced_accuracy(tp, n, tn, n)
        hits += e.low <= truth <= e.high  # type: ignore[operator]
    assert 0.90 <= _coverage(hits) <= 0.999  # discrete counts: 0.917 at (0.97, 0.99, 30)


@pytest.mark.parametrize(("rho", "n"), [(0.0, 20), (0.6, 30), (0.9, 50)])
def test_fisher_interval_covers_the_true_correlation(rho: float, n: int) -> None:
    rng = random.Random(3)
    hits = 0
    for _ in range(TRIALS // 2):
        xs, ys = [], []
        for _ in range(n):
            x, e = rng.gauss(0, 1), rng.gauss(0, 1)
            xs.append(x)
            ys.append(rho * x + math.sqrt(1 - rho * rho) * e)
        est = correlation(xs, ys)
        hits += est.low <= rho <= est.high  # type: ignore[operator]
    assert 0.92 <= hits / (TRIALS // 2) <= 0.98


@given(st.integers(0, 60), st.integers(1, 60))
def test_wilson_is_a_proper_interval(successes: int, extra: int) -> None:
    n = successes + extra - 1 if successes + extra - 1 >= successes else successes
    n = max(n, 1)
    successes = min(successes, n)
    e = wilson(successes, n)
    assert e.low is not None and e.high is not None and e.value is not None
    assert 0.0 <= e.low <= e.value <= e.high <= 1.0 and e.n == n


def test_degenerate_inputs_say_so_instead_of_inventing_a_score() -> None:
    assert wilson(0, 0).value is None and wilson(0, 0).n == 0
    assert balanced_accuracy(3, 3, 0, 0).value is None  # no negatives: no balanced accuracy
    assert correlation([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]).value is None  # a constant side
    assert f1_score([False, False], [False, False]).value is None  # nothing to find or claim
    perfect = f1_score([True, False, True, False] * 5, [True, False, True, False] * 5)
    assert perfect.value == perfect.low == perfect.high == 1.0 and perfect.n == 20


def test_f1_bootstrap_is_deterministic_and_brackets_the_value() -> None:
    rng = random.Random(4)
    truth = [rng.random() < 0.5 for _ in range(40)]
    said = [t if rng.random() < 0.8 else not t for t in truth]
    a, b = f1_score(truth, said), f1_score(truth, said)
    assert a == b
    assert a.low is not None and a.high is not None and a.value is not None
    assert a.low <= a.value <= a.high and a.high - a.low < 0.5


@given(st.lists(st.floats(-1, 1), max_size=60), st.sampled_from(["detection", "simulation"]))
def test_the_running_mean_agrees_with_the_mean_over_the_list(
    scores: list[float], scorer: str
) -> None:
    """The dashboard's constant-memory mean is the summary's mean, interval included, and
    neither interval leaves the range a score can take."""
    bounds = score_range(scorer)
    scores = [min(max(s, bounds[0]), bounds[1]) for s in scores]
    running = RunningMean(bounds)
    for s in scores:
        running.add(s)
    fast, slow = running.value(), mean_score(scores, bounds=bounds)
    assert fast.n == slow.n == len(scores)
    for a, b in ((fast.mean, slow.mean), (fast.ci_low, slow.ci_low), (fast.ci_high, slow.ci_high)):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a == pytest.approx(b, abs=1e-6)
    if slow.ci_low is not None and slow.ci_high is not None:
        assert bounds[0] <= slow.ci_low <= slow.ci_high <= bounds[1]
