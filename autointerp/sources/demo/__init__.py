"""The embedded demo: a tiny decomposed story model that runs offline on a laptop CPU.

`autointerp-daemon demo` harvests it with `DEMO_DEFAULTS`; `python -m
autointerp.sources.demo.build` rebuilds its weights.
"""

from __future__ import annotations

import torch

from autointerp.sources.demo.source import DemoSource
from autointerp.sources.demo.weights_file import load_weights, weights_sha256

DEMO_DEFAULTS: dict[str, int] = {"n_batches": 200, "batch_size": 32, "context_length": 64}
"""Harvest sizes for the demo: 409,600 tokens, well under a minute on 2 CPU cores."""

__all__ = ["DEMO_DEFAULTS", "DemoSource", "open_demo_source"]


def open_demo_source(
    device: torch.device | str = "cpu", n_batches_hint: int | None = None
) -> DemoSource:
    """Load the shipped weights onto `device`.

    `n_batches_hint` exists for parity with SPD sources; the demo's stream is generated on demand
    and endless, so it needs no hint.
    """
    del n_batches_hint
    model, tokenizer = load_weights()
    return DemoSource(model, tokenizer, torch.device(device), weights_sha256(), DEMO_DEFAULTS)
