"""Escaping for every context untrusted text reaches: HTML text and attributes, JavaScript data,
and file names / URLs.

Labels, reasoning, tokens and module names come from datasets and models, so any of them may
hold markup, `</script>`, quotes, control characters or bidi overrides. Every renderer goes
through these helpers; nothing builds HTML from raw text.
"""

from __future__ import annotations

import hashlib
import html
import string
import unicodedata
from typing import Any

import msgspec

_NAMED = {"\n": "↵", "\r": "↵", "\t": "⇥"}
_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
"""Control characters, format characters (bidi overrides, zero-width marks), surrogates, private
use, unassigned code points and the line/paragraph separators: nothing a reader can see, and some
(U+202E) reorder the text around them."""


def _shown(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if unicodedata.category(ch) in _HIDDEN:
        return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
    return ch  # a space other than " " (no-break, ideographic): shown as it is


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every invisible or reordering character written out (`\\u202e`), so what the
    reader sees is what the text holds; newlines become `↵` unless `keep_newlines`."""
    if text.isprintable():  # the common case, checked in C: nothing to replace
        return text
    if keep_newlines and "\n" in text:
        return "\n".join(visible(line) for line in text.split("\n"))
    return "".join(ch if ch.isprintable() else _shown(ch) for ch in text)


def text(value: object, *, keep_newlines: bool = False) -> str:
    """HTML text content (also safe inside a double-quoted attribute): visible, then escaped."""
    return html.escape(visible(str(value), keep_newlines=keep_newlines), quote=True)


def attr(value: object) -> str:
    """A double-quoted attribute value, quotes included: `title=` + attr(x)."""
    return '"' + text(value) + '"'


_encoder = msgspec.json.Encoder()
_JS_UNSAFE = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def js_data(value: Any) -> str:
    """JSON that is also a safe JavaScript expression inside a `<script>` element or file.

    `<`, `>` and `&` only occur inside JSON strings, so escaping them as `\\u003c` keeps the value
    and means `</script>` or `<!--` can never end or change the script; U+2028/2029 are line
    terminators in older JavaScript parsers.
    """
    data = _encoder.encode(value)
    for raw, escaped in _JS_UNSAFE:
        data = data.replace(raw, escaped)
    return data.decode()


_SAFE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
_MAX_NAME = 160


def page_name(key: str) -> str:
    """A component page's file name: `blocks.0.attn.q_proj:12` -> `blocks.0.attn.q_proj~3A12.html`.

    Letters, digits, `.`, `_` and `-` stay; every other byte of the UTF-8 key becomes `~XX`, so the
    mapping is one-to-one and the name needs no further encoding in a URL or on any file system
    (no `/`, `%`, `:` or `..`). A leading `.` is encoded too (no hidden files); a name that would be
    too long for a file system keeps its head and a hash of the key.
    """
    parts = [
        ch if ch in _SAFE_NAME_CHARS else "".join(f"~{b:02X}" for b in ch.encode()) for ch in key
    ]
    name = "".join(parts)
    if name.startswith("."):
        name = "~2E" + name[1:]
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        head = name[: _MAX_NAME - 22]
        cut = head.rfind("~")
        if cut >= len(head) - 2:  # never keep half of a `~XX`
            head = head[:cut]
        name = head + "~~" + digest
    return name + ".html"
