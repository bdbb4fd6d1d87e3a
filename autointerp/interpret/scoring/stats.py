"""Scores as statistics: every figure a scorer reports comes with n and a 95% interval.

- A proportion (accuracy of k trials, precision, recall): the Wilson score interval, which keeps
  its coverage at small n and near 0 or 1, where the normal approximation does not.
- Balanced accuracy, the mean of the true positive and true negative rates of two independent
  samples: its interval combines the two rates' Wilson intervals by the square-and-add method
  (Newcombe's method for a difference of proportions, applied to a mean). Simulated coverage
  (tests/interpret/test_scoring_stats.py) is 0.92-0.98 over rates 0.5-0.99 and n 5-50: the
  counts are discrete, so near-perfect rates at small n fall a little short of 0.95.
- F1, a ratio of counts with no simple interval: a percentile bootstrap over the trials with a
  fixed seed, so the same answers always give the same interval.
- A correlation (simulation scores): Fisher's z transform.

Nothing here imports torch or the SDK: scorers and the report share it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile."""
BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A score with its 95% interval and the number of trials behind it (None: no trials)."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    @classmethod
    def empty(cls) -> Estimate:
        return cls(None, None, None, 0)


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """The proportion `successes / n` with its Wilson score interval."""
    if n <= 0:
        return Estimate.empty()
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # min/max: at p = 0 or 1 rounding could put the bound a hair inside the estimate.
    return Estimate(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), n)


def balanced_accuracy(
    true_positives: int, positives: int, true_negatives: int, negatives: int
) -> Estimate:
    """(TPR + TNR) / 2 with a square-and-add interval from the two rates' Wilson intervals."""
    if positives <= 0 or negatives <= 0:
        return Estimate.empty()
    tpr, tnr = wilson(true_positives, positives), wilson(true_negatives, negatives)
    assert tpr.value is not None and tnr.value is not None
    assert tpr.low is not None and tpr.high is not None
    assert tnr.low is not None and tnr.high is not None
    value = (tpr.value + tnr.value) / 2
    below = math.hypot(tpr.value - tpr.low, tnr.value - tnr.low) / 2
    above = math.hypot(tpr.high - tpr.value, tnr.high - tnr.value) / 2
    return Estimate(value, max(0.0, value - below), min(1.0, value + above), positives + negatives)


def f1_score(truth: Sequence[bool], said: Sequence[bool], seed: int = 0) -> Estimate:
    """F1 of the answers `said` against `truth`, with a percentile bootstrap interval."""
    if len(truth) != len(said):
        raise ValueError("truth and answers differ in length")
    n = len(truth)
    value = _f1(truth, said)
    if n == 0 or value is None:
        return Estimate(value, None, None, n)
    # Each trial is one of four cells; a resample only needs how many of each it drew.
    cells = [2 * t + s for t, s in zip(truth, said, strict=True)]  # 3 tp, 1 fp, 2 fn, 0 tn
    rng = random.Random(seed)
    draws = []
    for _ in range(BOOTSTRAP_SAMPLES):
        sample = rng.choices(cells, k=n)
        tp, fp, fn = sample.count(3), sample.count(1), sample.count(2)
        draws.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    draws.sort()
    low = draws[int(0.025 * (BOOTSTRAP_SAMPLES - 1))]
    high = draws[math.ceil(0.975 * (BOOTSTRAP_SAMPLES - 1))]
    return Estimate(value, min(low, value), max(high, value), n)


def _f1(truth: Sequence[bool], said: Sequence[bool]) -> float | None:
    tp = sum(t and s for t, s in zip(truth, said, strict=True))
    fp = sum(s and not t for t, s in zip(truth, said, strict=True))
    fn = sum(t and not s for t, s in zip(truth, said, strict=True))
    if tp + fp + fn == 0:
        return None  # nothing to find and nothing claimed: F1 is undefined
    return 2 * tp / (2 * tp + fp + fn)


def correlation(xs: Sequence[float], ys: Sequence[float], z: float = Z95) -> Estimate:
    """Pearson's r with Fisher's z interval (needs n >= 4 and variance on both sides)."""
    if len(xs) != len(ys):
        raise ValueError("the two samples differ in length")
    n = len(xs)
    if n < 2:
        return Estimate(None, None, None, n)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return Estimate(None, None, None, n)  # a constant side: no correlation to speak of
    r = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)
    r = max(-1.0, min(1.0, r))
    if n < 4 or abs(r) == 1.0:
        return Estimate(r, None, None, n)
    fisher = math.atanh(r)
    half = z / math.sqrt(n - 3)
    return Estimate(r, math.tanh(fisher - half), math.tanh(fisher + half), n)
