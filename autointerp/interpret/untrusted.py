"""Make untrusted text (dataset tokens, model output) safe to place inside a prompt's data fence.

Data goes between `<data>` and `</data>` tags. Angle brackets inside data are replaced by look-alike
quotation marks, so no data can close the fence or open a tag of its own; control and invisible
formatting characters are removed (newlines and tabs become visible arrows); very long tokens are
cut in the middle with a note of how much was dropped.
"""

from __future__ import annotations

import unicodedata

import msgspec

MAX_TOKEN_CHARS = 32
"""Longest token shown whole; a longer one keeps its head and tail."""

FIRING_OPEN = "⟦"
FIRING_CLOSE = "⟧"
"""Marks around the firing token in an example; never produced by `clean`."""

_REPLACEMENTS = {
    "<": "‹",
    ">": "›",
    "\n": "↵",
    "\r": "↵",
    "\t": "⇥",
    FIRING_OPEN: "[",
    FIRING_CLOSE: "]",
}


def _visible(ch: str) -> str:
    if ch in _REPLACEMENTS:
        return _REPLACEMENTS[ch]
    # Cc: control characters (escape sequences, NUL, DEL); Cf: bidi overrides, zero-width marks.
    # Cs/Co/Cn: surrogates, private use, unassigned: nothing a reader can see.
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return ""
    return ch


def clean(text: str) -> str:
    """Text with nothing that could pass for markup, a fence or a terminal control sequence."""
    return "".join(_visible(ch) for ch in text)


def shorten(text: str, limit: int = MAX_TOKEN_CHARS) -> str:
    """Keep the head and tail of an over-long (cleaned) token and say how much was cut."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}…(+{len(text) - head - tail} chars)…{text[-tail:]}"


def token(text: str, limit: int = MAX_TOKEN_CHARS) -> str:
    """A cleaned, shortened token."""
    return shorten(clean(text), limit)


def quoted_token(text: str, limit: int = MAX_TOKEN_CHARS) -> str:
    """A cleaned, shortened token as a JSON string, so leading spaces stay visible: `" the"`."""
    return msgspec.json.encode(token(text, limit)).decode()
