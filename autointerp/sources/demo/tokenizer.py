"""Word-level tokenizer over the story grammar's closed vocabulary.

Token strings carry their leading space (`" cat"`), so `decode` of a sequence joined gives readable
text and `decode(id)` gives exactly what the dashboard and prompts should show for one token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from autointerp.sources.demo.corpus import EOS, VOCABULARY


class WordTokenizer:
    """Bijection between the grammar's token strings and ids `0..len(vocabulary)-1`."""

    def __init__(self, vocabulary: Sequence[str] = VOCABULARY) -> None:
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("vocabulary has duplicate tokens")
        self.vocabulary = list(vocabulary)
        self._ids = {token: i for i, token in enumerate(self.vocabulary)}
        self.eos_id = self._ids[EOS]

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self._ids[t] for t in tokens]

    def decode(self, token_id: int) -> str:
        return self.vocabulary[token_id]

    def decode_text(self, ids: Sequence[int]) -> str:
        return "".join(self.vocabulary[i] for i in ids)

    def rows_to_tensor(self, rows: Sequence[Sequence[str]]) -> torch.Tensor:
        """Equal-length token-string rows as an `int64 [len(rows), len(row)]` tensor."""
        return torch.tensor([self.encode(row) for row in rows], dtype=torch.int64)
