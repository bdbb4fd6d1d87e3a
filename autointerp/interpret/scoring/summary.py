"""`scores/summary.json`: each scorer's mean score by module and overall, with a 95% interval.

The mean over components is what a run is judged by; its interval is the normal one over the
components' scores (the spread between components dominates each score's own uncertainty, and
with tens of components or more the normal approximation holds).
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


def mean_score(scores: list[float], unscored: int = 0) -> MeanScore:
    n = len(scores)
    if n == 0:
        return MeanScore(None, None, None, 0, unscored)
    mean = sum(scores) / n
    if n < 2:
        return MeanScore(mean, None, None, n, unscored)
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return MeanScore(mean, mean - half, mean + half, n, unscored)


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
        overall=mean_score(overall, unscored),
        by_module={m: mean_score(modules[m], module_unscored[m]) for m in names},
        cost_usd=cost,
        cost_known=known,
    )
