"""The synthetic source: a random SPD-shaped model for benchmarks, made at run time, no downloads.

`autointerp-daemon synthetic[:simplestories|:pile|:tiny]` harvests a Llama-like model with random
weights whose q/k/v/o/up/down maps are sums of rank-one components, with causal-importance gates
calibrated to a real SPD run's firing statistics (`rates.py`), over a seeded Zipf token stream.

This module imports no torch (the source-argument parser reads `SHAPES`); `open_synthetic_source`
imports the model when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autointerp.errors import UserError
from autointerp.sources.synthetic.shapes import DEFAULT_SHAPE, SHAPES, SyntheticShape

if TYPE_CHECKING:
    import torch

    from autointerp.sources.synthetic.source import SyntheticSource

__all__ = ["DEFAULT_SHAPE", "SHAPES", "SyntheticShape", "open_synthetic_source"]


def open_synthetic_source(
    shape: str = DEFAULT_SHAPE, device: torch.device | str = "cpu", seed: int = 0
) -> SyntheticSource:
    """Draw the model of shape `shape` on `device` and calibrate its gates (blocking)."""
    import torch

    from autointerp.sources.synthetic.source import SyntheticSource

    if shape not in SHAPES:
        raise UserError(f"no synthetic shape {shape!r}; the shapes are {', '.join(SHAPES)}")
    return SyntheticSource(SHAPES[shape], torch.device(device), seed)
