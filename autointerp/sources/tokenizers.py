"""The few things the data stream needs from a tokenizer, and the HuggingFace adapter for them.

Kept this small so tests can use a simple in-repo tokenizer, and so `transformers` is imported only
when a real run needs it.
"""

from __future__ import annotations

from typing import Any, Protocol

from autointerp.errors import UserError


class TextTokenizer(Protocol):
    name: str
    eos_token_id: int | None

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without BOS; some tokenizers append EOS themselves."""
        ...

    def decode(self, token_id: int) -> str:
        """The text of one token id, special tokens included."""
        ...


class HFTokenizer:
    """A `transformers` tokenizer behind `TextTokenizer`."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tok = tokenizer
        self.name = name
        self.eos_token_id: int | None = tokenizer.eos_token_id

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        encoded = self._tok(texts, add_special_tokens=False)["input_ids"]
        return [list(ids) for ids in encoded]

    def decode(self, token_id: int) -> str:
        return str(self._tok.decode([token_id], skip_special_tokens=False))


def load_hf_tokenizer(name_or_path: str) -> HFTokenizer:
    """`AutoTokenizer.from_pretrained`, with missing package or unreachable hub as a UserError."""
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise UserError(
            f"loading tokenizer {name_or_path!r} needs the `transformers` package ({e}). "
            "Install it into this environment: pip install transformers"
        ) from None
    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:
        raise UserError(
            f"cannot load tokenizer {name_or_path!r}: {type(e).__name__}: {_first_line(e)}. "
            "Check the name or local path; without network, use a tokenizer already in the "
            "HuggingFace cache (HF_HUB_OFFLINE=1) or pass --tokenizer <local directory>."
        ) from None
    return HFTokenizer(tok, name_or_path)


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else ""
