"""Untrusted text through every context the report puts it in: HTML text and attributes,
JavaScript data, and file names / URLs."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autointerp.report.escape import attr, js_data, page_name, text, visible

HOSTILE = [
    "<script>alert(1)</script>",
    "</script><script>window.pwned=1</script>",
    "<img src=x onerror=window.pwned=1>",
    '" onmouseover="window.pwned=1',
    "' onfocus='x",
    "&lt;already escaped&gt; &amp;",
    "\x1b[31mred\x1b[0m\x00\x07",
    "abc\u202edcba",
    "line\u2028sep\u2029para",
    "<!-- comment --> ]]> <![CDATA[",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_html_text_and_attributes_hold_no_markup(hostile: str) -> None:
    for out in (text(hostile), attr(hostile)[1:-1]):
        assert not set(out) & set("<>\"'"), out
        assert "\u202e" not in out and "\x1b" not in out and "\x00" not in out
    assert text("<b>") == "&lt;b&gt;"
    assert attr('a"b') == '"a&quot;b"'


def test_invisible_and_reordering_characters_are_written_out() -> None:
    assert visible("abc\u202edcba") == "abc\\u202edcba"
    assert visible("\x1b[31m") == "\\u001b[31m"
    assert visible("a\nb\tc") == "a↵b⇥c"
    assert visible("a\nb", keep_newlines=True) == "a\nb"
    assert visible("a\u2028b") == "a\\u2028b"
    assert visible("zero\u200bwidth") == "zero\\u200bwidth"
    for fine in ("plain", " leading space", "é 中文 🙂", "no\u00a0break"):
        assert visible(fine) == fine


@pytest.mark.parametrize("hostile", HOSTILE)
def test_javascript_data_round_trips_and_cannot_close_a_script(hostile: str) -> None:
    value = {"label": hostile, "rows": [[hostile, 1, None, 0.5]]}
    out = js_data(value)
    assert json.loads(out) == value
    assert "<" not in out and ">" not in out and "&" not in out
    assert "\u2028" not in out and "\u2029" not in out


@given(st.text())
def test_javascript_data_round_trips_any_text(value: str) -> None:
    out = js_data([value])
    assert json.loads(out) == [value]
    assert not re.search(r"</|<!--|[\u2028\u2029]", out)


SAFE_NAME = re.compile(r"[A-Za-z0-9._~-]+\.html")


@pytest.mark.parametrize(
    "key",
    [
        "blocks.0.attn.q_proj:12",
        "../../etc/passwd:0",
        "a/b\\c:1",
        ".hidden:1",
        "%3A:1",
        "~7E:1",
        "ключ.模块:3",
        "x" * 500 + ":1",
        *HOSTILE,
    ],
)
def test_page_names_are_safe_file_names_and_urls(key: str) -> None:
    name = page_name(key)
    assert SAFE_NAME.fullmatch(name), name
    assert not name.startswith(".") and len(name) <= 200


def test_page_names_keep_readable_keys_readable() -> None:
    assert page_name("blocks.0.attn.q_proj:12") == "blocks.0.attn.q_proj~3A12.html"


@given(st.lists(st.text(min_size=1, max_size=300), min_size=2, max_size=20, unique=True))
def test_page_names_are_one_to_one(keys: list[str]) -> None:
    names = [page_name(k) for k in keys]
    assert len(set(names)) == len(names)
    assert all(SAFE_NAME.fullmatch(n) for n in names)
