"""The embedded demo: a tiny decomposed story model that runs offline on a laptop CPU.

`autointerp-daemon demo` harvests it with `DEMO_DEFAULTS`; `python -m
autointerp.sources.demo.build` rebuilds its weights.
"""

from __future__ import annotations

import torch

from autointerp.sources.demo.source import DemoSource
from autointerp.sources.demo.weights_file import load_weights, weights_sha256

DEMO_DEFAULTS: dict[str, int] = {"n_batches": 40, "batch_size": 32, "context_length": 64}
"""Harvest sizes for the demo: 81,920 tokens (the whole run takes a few seconds on a CPU)."""

__all__ = ["DEMO_DEFAULTS", "DemoSource", "open_demo_source"]


def open_demo_source(device: torch.device | str = "cpu") -> DemoSource:
    """Load the shipped weights onto `device`."""
    model, tokenizer = load_weights()
    return DemoSource(model, tokenizer, torch.device(device), weights_sha256(), DEMO_DEFAULTS)
