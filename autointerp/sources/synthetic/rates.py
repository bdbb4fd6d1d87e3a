"""Target firing rates of the synthetic components, shaped like a real SPD run's.

In a trained SPD decomposition about 1.7% of (position, component) pairs have CI > 0, the rates of
the components that fire are heavy-tailed (most fire rarely, a few fire on a large share of
tokens), and about a fifth of the components never fire. The harvest's cost follows these
numbers (firing lists, examples, co-firing pairs), so the synthetic gates are calibrated to them:
each alive component gets a log-normal rate, and exactly `DEAD_FRACTION` of each module's
components (rounded down) get none. Drawn on the CPU from a seeded generator, so they are the
same on every device.
"""

from __future__ import annotations

import math

import torch

MEDIAN_RATE = 0.01
RATE_SIGMA = 1.25
"""log(rate) ~ Normal(log(MEDIAN_RATE), RATE_SIGMA²): the mean alive rate is about 2.2%, which
with a fifth dead makes about 1.7% overall."""
MAX_RATE = 0.5
DEAD_FRACTION = 0.2


def target_rates(layout: list[tuple[str, int]], seed: int) -> torch.Tensor:
    """Per-component firing probability `float64 [C_total]` in layout order; 0 means dead."""
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for _, c in layout:
        normal = torch.randn(c, generator=generator, dtype=torch.float64)
        rate = torch.exp(normal * RATE_SIGMA + math.log(MEDIAN_RATE)).clamp_(max=MAX_RATE)
        dead = torch.randperm(c, generator=generator)[: int(c * DEAD_FRACTION)]
        rate[dead] = 0.0
        parts.append(rate)
    return torch.cat(parts)
