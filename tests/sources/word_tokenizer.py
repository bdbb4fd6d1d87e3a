"""A tiny whitespace word tokenizer implementing `TextTokenizer`, for tests (no downloads)."""

from __future__ import annotations

WORDS = [
    "the",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "a",
    "mat",
    "big",
    "small",
    "red",
    "blue",
    "and",
    "then",
    "she",
    "he",
    "saw",
    "it",
    "was",
    "happy",
    "sad",
    "tree",
    "house",
    "sun",
    "moon",
    "day",
    "night",
    "girl",
    "boy",
    "ball",
    "played",
    "with",
    "friend",
    "home",
    "went",
    "to",
]


class WordTokenizer:
    """Ids: 0 `<eos>`, 1 `<unk>`, then WORDS. `appends_eos` mimics SimpleStories tokenizers."""

    def __init__(self, appends_eos: bool = False) -> None:
        self.vocab = ["<eos>", "<unk>", *WORDS]
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.appends_eos = appends_eos
        self.eos_token_id: int | None = 0
        self.name = f"word-tokenizer(eos={appends_eos})"
        self.vocab_size = len(self.vocab)
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        ids = [self.ids.get(w, 1) for w in text.split()]
        return [*ids, 0] if self.appends_eos else ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        self.calls += len(texts)
        return [self.encode(t) for t in texts]

    def decode(self, token_id: int) -> str:
        return self.vocab[token_id] if token_id < len(self.vocab) else f"<id{token_id}>"
