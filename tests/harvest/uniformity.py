"""Chi-square machinery for testing that a sampler picks every firing equally often."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

NORMAL_999 = 3.090232306167813
"""The 0.999 quantile of the standard normal."""


def chi_square_critical(dof: int) -> float:
    """Wilson–Hilferty approximation of the chi-square 0.999 quantile."""
    a = 2.0 / (9.0 * dof)
    return dof * (1.0 - a + NORMAL_999 * math.sqrt(a)) ** 3


def chi_square(counts: list[int]) -> float:
    expected = sum(counts) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)


def is_uniform(counts: list[int]) -> bool:
    return chi_square(counts) <= chi_square_critical(len(counts) - 1)


Sampler = Callable[[list[list[int]], int, int], list[int]]
"""(firing positions per batch, k, seed) -> the sampled positions."""


def first_k(batches: list[list[int]], k: int, seed: int) -> list[int]:
    return [p for batch in batches for p in batch][:k]


def per_batch_capped(batches: list[list[int]], k: int, seed: int, cap: int = 2) -> list[int]:
    """The reference pipeline's scheme: keep at most `cap` random firings per batch, then run a
    reservoir over what was kept. Firings in busy batches are under-sampled."""
    rng = random.Random(seed)
    reservoir: list[int] = []
    seen = 0
    for batch in batches:
        for p in rng.sample(batch, min(cap, len(batch))):
            seen += 1
            if len(reservoir) < k:
                reservoir.append(p)
            else:
                j = rng.randrange(seen)
                if j < k:
                    reservoir[j] = p
    return reservoir


def pick_counts(sampler: Sampler, batches: list[list[int]], k: int, runs: int) -> list[int]:
    n = sum(len(b) for b in batches)
    counts = [0] * n
    for seed in range(runs):
        picked = sampler(batches, k, seed)
        assert len(set(picked)) == len(picked) == min(k, n), "without replacement, k of them"
        for p in picked:
            counts[p] += 1
    return counts
