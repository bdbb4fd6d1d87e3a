"""`scores/summary.json`: each scorer's mean score by module and overall, with a 95% interval.

The mean over components is what a run is judged by; its interval is the normal one over the
components' scores (the spread between components dominates each score's own uncertainty, and
with tens of components or more the normal approximation holds), cut to the range a score can
take: with a handful of components the normal interval can reach past it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from autointerp.interpret.scoring.stats import Z95
from autointerp.schemas import ScoreRecord


class MeanScore(msgspec.Struct):
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    """Components with a score."""
    unscored: int = 0
    """Components whose trials all failed, or whose held-out data could not support the scorer."""


class ScorerSummary(msgspec.Struct):
    scorer: str
    overall: MeanScore
    by_module: dict[str, MeanScore]
    cost_usd: float
    cost_known: bool


SCORE_RANGE: dict[str, tuple[float, float]] = {"simulation": (-1.0, 1.0)}
"""Correlations run from -1; every other score is a share or an accuracy, from 0 to 1."""


def score_range(scorer: str) -> tuple[float, float]:
    return SCORE_RANGE.get(scorer, (0.0, 1.0))


def _interval(
    mean: float, half: float, n: int, unscored: int, bounds: tuple[float, float]
) -> MeanScore:
    low, high = bounds
    return MeanScore(mean, max(low, mean - half), min(high, mean + half), n, unscored)


def mean_score(
    scores: list[float], unscored: int = 0, bounds: tuple[float, float] = (0.0, 1.0)
) -> MeanScore:
    n = len(scores)
    if n == 0:
        return MeanScore(None, None, None, 0, unscored)
    mean = sum(scores) / n
    if n < 2:
        return MeanScore(mean, None, None, n, unscored)
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
    return _interval(mean, Z95 * sd / math.sqrt(n), n, unscored, bounds)


class RunningMean:
    """`mean_score` of a stream of scores in constant memory, for the live dashboard."""

    def __init__(self, bounds: tuple[float, float] = (0.0, 1.0)) -> None:
        self.bounds = bounds
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0

    def add(self, score: float) -> None:
        self.n += 1
        self.total += score
        self.total_sq += score * score

    def value(self) -> MeanScore:
        n = self.n
        if n == 0:
            return MeanScore(None, None, None, 0)
        mean = self.total / n
        if n < 2:
            return MeanScore(mean, None, None, n)
        variance = max(0.0, (self.total_sq - n * mean * mean) / (n - 1))
        return _interval(mean, Z95 * math.sqrt(variance / n), n, 0, self.bounds)


def module_of(component_key: str) -> str:
    return component_key.rpartition(":")[0]


def summarize(scorer: str, records: Iterable[ScoreRecord]) -> ScorerSummary:
    overall: list[float] = []
    unscored = 0
    modules: defaultdict[str, list[float]] = defaultdict(list)
    module_unscored: defaultdict[str, int] = defaultdict(int)
    cost, known = 0.0, True
    for r in records:
        cost += r.cost_usd
        known &= r.cost_known
        module = module_of(r.component_key)
        if r.score is None:
            unscored += 1
            module_unscored[module] += 1
            continue
        overall.append(r.score)
        modules[module].append(r.score)
    names = sorted(set(modules) | set(module_unscored))
    return ScorerSummary(
        scorer=scorer,
        overall=mean_score(overall, unscored, score_range(scorer)),
        by_module={
            m: mean_score(modules[m], module_unscored[m], score_range(scorer)) for m in names
        },
        cost_usd=cost,
        cost_known=known,
    )
