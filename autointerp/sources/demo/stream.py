"""Positioned, deterministic token batches of generated stories.

Every row is generated from its own seed (stream name, shape, batch index, row), so batch `i` can
be produced without producing batches `0..i-1`, and a resumed harvest sees exactly the same data.
Different stream names (training, held-out evaluation, the demo's harvest stream) never share
stories' seeds.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autointerp.sources.demo.corpus import token_row
from autointerp.sources.demo.tokenizer import WordTokenizer


def story_batch(
    tokenizer: WordTokenizer, stream: str, index: int, batch_size: int, context_length: int
) -> torch.Tensor:
    """Batch `index` of `stream`: int64 `[batch_size, context_length]`."""
    rows = [
        token_row(f"{stream}/{batch_size}x{context_length}/{index}/{row}", context_length)
        for row in range(batch_size)
    ]
    return tokenizer.rows_to_tensor(rows)


def story_batches(
    tokenizer: WordTokenizer, stream: str, batch_size: int, context_length: int, start: int = 0
) -> Iterator[torch.Tensor]:
    """Batches `start, start+1, …` of `stream`; the stream never ends."""
    index = start
    while True:
        yield story_batch(tokenizer, stream, index, batch_size, context_length)
        index += 1
