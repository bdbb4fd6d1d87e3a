"""The synthetic token stream: independent Zipf-distributed token ids, one seeded batch at a time.

Each batch comes from its own CPU generator seeded by (stream, batch index), so batch `i` is the
same whatever came before it: `batches(start=i)` is exactly the tail of `batches()`, a resumed
harvest sees the same data, and the tokens are the same on every device (the model's weights are
not: they are drawn on the device). Natural text has a Zipf-like unigram distribution, which is
what makes a few input tokens dominate the token tables; that is all the harvest's cost depends
on, so there is no grammar.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

ZIPF_EXPONENT = 1.0
ZIPF_OFFSET = 2.7
"""p(id) ∝ 1 / (id + 1 + offset)^exponent (Zipf–Mandelbrot): id 0 is the most frequent token."""

HARVEST_STREAM = 1
CALIBRATION_STREAM = 2
"""Seed streams: the harvest's batches and the batches that calibrate the gates never coincide."""


def token_name(token_id: int) -> str:
    """`tok<id>`: readable, unique, and trivially mapped back to the id."""
    return f"tok{token_id}"


class ZipfStream:
    """Endless batches `int64 [batch, context]` on the CPU, deterministic per batch index."""

    def __init__(self, vocab_size: int, seed: int) -> None:
        ranks = torch.arange(1, vocab_size + 1, dtype=torch.float64)
        weights = (ranks + ZIPF_OFFSET) ** -ZIPF_EXPONENT
        self.vocab_size = vocab_size
        self.probabilities = weights / weights.sum()
        self._cdf = self.probabilities.cumsum(0)
        self._seed = seed

    def batch(self, stream: int, index: int, batch_size: int, context_length: int) -> torch.Tensor:
        """Batch `index` of `stream`: inverse-CDF samples of one seeded uniform draw."""
        generator = torch.Generator().manual_seed(_batch_seed(self._seed, stream, index))
        uniform = torch.rand(batch_size, context_length, generator=generator, dtype=torch.float64)
        tokens = torch.searchsorted(self._cdf, uniform, right=True)
        return tokens.clamp_(max=self.vocab_size - 1)

    def batches(
        self, stream: int, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        index = start
        while True:
            yield self.batch(stream, index, batch_size, context_length)
            index += 1


def _batch_seed(seed: int, stream: int, index: int) -> int:
    """Distinct 63-bit seeds for distinct (seed, stream, index) with index < 2^40."""
    return ((seed * 16 + stream) << 40) + index
