"""The Source protocol: what the harvest needs from wherever CI values come from, nothing more.

An SPD run (wandb or local directory) and the embedded demo both implement it; the harvest engine
and the daemon see only this.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import torch

from autointerp.schemas import ArchitectureInfo


class Source(Protocol):
    run_id: str
    """Directory name under the data dir: the wandb run id, or a stable id for a local run."""

    description: str
    """Human-readable origin for the dashboard, e.g. `wandb:goodfire/spd/abcd1234` or `demo`."""

    layout: list[tuple[str, int]]
    """Ordered `(module_path, n_components)`; CI columns are concatenated in this order."""

    vocab_size: int
    """Rows of the input embedding (not `tokenizer.vocab_size`)."""

    architecture: ArchitectureInfo
    device: torch.device

    harvest_defaults: Mapping[str, int]
    """Suggested `n_batches` / `batch_size` / `context_length` (any subset; the user's options
    override them), e.g. the demo's own sizes or an SPD run's `max_seq_len`."""

    max_context: int | None
    """The most tokens per sequence the model reads (None: no known limit). Checked before
    anything is written, so that a bad `--context-length` is refused up front."""

    def decode(self, token_id: int) -> str:
        """The text of one token id (called once per distinct id)."""
        ...

    def batches(
        self, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        """Token batches `int64 [batch_size, context_length]` from batch index `start` on.

        Deterministic: `batches(..., start=i)` yields exactly what `batches(...)` yields after
        skipping its first `i` batches, so a resumed harvest sees the same data.
        """
        ...

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the decomposed model: `(ci [B,S,n_total] float32, output_probs [B,S,V] float32)`.

        Both on `self.device`, computed without autocast, under `torch.inference_mode()`.
        """
        ...

    def fingerprint(self) -> dict[str, str]:
        """What identifies the model and data, recorded in `harvest/config.json`."""
        ...
