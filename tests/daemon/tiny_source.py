"""A tiny real torch model implementing the `Source` protocol, for daemon tests.

A few "modules" with different numbers of components: each computes CI as `clamp(x W + b, 0, 1)`
from the token embeddings, so CI is exactly 0 for many (token, component) pairs and some
components never fire (dead). Batches are a deterministic function of their index, so
`batches(start=i)` is exactly the tail of `batches()`. An optional per-step delay lets the chaos
tests kill the daemon inside each phase. Load it with the spec `py:tests.daemon.tiny_source:make`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import torch

from autointerp.schemas import ArchitectureInfo

VOCAB = 48
EMBED = 8
LAYOUT: list[tuple[str, int]] = [("layers.0.mlp", 6), ("layers.0.attn", 4), ("layers.1.mlp", 5)]
WIDE_LAYOUT: list[tuple[str, int]] = [
    ("layers.0.mlp", 40),
    ("layers.0.attn", 24),
    ("layers.1.mlp", 32),
]
"""`TINY_WIDE=1`: more components, so that finalize and labelling last long enough to kill."""
DEAD_INDEX = 4
"""In the last module, a component whose bias keeps it below zero for every token: it never
fires."""

DEFAULTS = {"n_batches": 12, "batch_size": 4, "context_length": 16}


class TinySource:
    """Deterministic tiny decomposed model; `step_delay` seconds of sleep per batch."""

    def __init__(
        self,
        step_delay: float = 0.0,
        decode_delay: float = 0.0,
        layout: list[tuple[str, int]] = LAYOUT,
        n_data_batches: int = 10_000,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.run_id = "tiny"
        self.description = "tiny test model"
        self.layout = list(layout)
        self.vocab_size = VOCAB
        self.device = torch.device(device)
        self.harvest_defaults = dict(DEFAULTS)
        self.max_context: int | None = None
        self.step_delay = step_delay
        self.decode_delay = decode_delay
        self._n_data_batches = n_data_batches
        n_total = sum(c for _, c in self.layout)
        self.architecture = ArchitectureInfo(
            n_layers=2,
            c=max(c for _, c in self.layout),
            model_class="tests.daemon.tiny_source.TinySource",
            dataset_name="tiny-synthetic",
            dataset_description="deterministic pseudo-random token ids",
            module_c=dict(self.layout),
        )
        g = torch.Generator().manual_seed(seed)
        self._embed = torch.randn(VOCAB, EMBED, generator=g)
        self._w = torch.randn(EMBED, n_total, generator=g) * 0.8
        self._b = torch.randn(n_total, generator=g) * 0.3 - 0.4
        self.dead_key = f"{self.layout[-1][0]}:{DEAD_INDEX}"
        self._b[n_total - self.layout[-1][1] + DEAD_INDEX] = -1e6
        self._unembed = torch.randn(EMBED, VOCAB, generator=g)
        for name in ("_embed", "_w", "_b", "_unembed"):
            setattr(self, name, getattr(self, name).to(self.device))

    def decode(self, token_id: int) -> str:
        if self.decode_delay:
            time.sleep(self.decode_delay)
        return f"t{token_id}"

    def batches(
        self, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        for index in range(start, self._n_data_batches):
            g = torch.Generator().manual_seed(1_000_003 * (index + 1))
            tokens = torch.randint(0, VOCAB, (batch_size, context_length), generator=g)
            yield tokens.to(self.device)

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.step_delay:
            time.sleep(self.step_delay)
        with torch.inference_mode():
            h = self._embed[tokens]
            ci = torch.clamp(h @ self._w + self._b, 0.0, 1.0)
            probs = torch.softmax(h @ self._unembed, dim=-1)
        return ci.float(), probs.float()

    def fingerprint(self) -> dict[str, str]:
        return {"model": "tiny", "vocab": str(VOCAB), "layout": repr(self.layout)}


def make(device: torch.device | str = "cpu") -> TinySource:
    """Factory for the `py:` spec. Environment knobs for the chaos tests: `TINY_STEP_DELAY` and
    `TINY_DECODE_DELAY` (seconds per batch / per decoded token), `TINY_WIDE=1` (more components).
    """
    env = os.environ
    return TinySource(
        step_delay=float(env.get("TINY_STEP_DELAY", "0")),
        decode_delay=float(env.get("TINY_DECODE_DELAY", "0")),
        layout=WIDE_LAYOUT if env.get("TINY_WIDE") == "1" else LAYOUT,
        device=device,
    )


class BrokenSource(TinySource):
    """A source with a bug: its CI has one column fewer than its layout says."""

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ci, probs = super().step(tokens)
        return ci[..., :-1], probs


def make_broken(device: torch.device | str = "cpu") -> BrokenSource:
    return BrokenSource(device=device)
