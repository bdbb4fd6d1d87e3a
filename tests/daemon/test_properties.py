"""Property tests: the configuration diff and the terminal-text cleaner."""

from __future__ import annotations

import unicodedata

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from autointerp.daemon.dashboard import clean
from autointerp.harvest.config import IGNORED_FIELDS, config_differences
from autointerp.schemas import ArchitectureInfo, HarvestConfig

BASE = HarvestConfig(
    run_id="r",
    source="demo",
    source_fingerprint={"model": "m"},
    layout=[("a", 2), ("b", 3)],
    vocab_size=10,
    n_batches=100,
    batch_size=8,
    context_length=16,
    ci_threshold=0.0,
    examples_per_component=20,
    context_tokens_per_side=10,
    top_k=10,
    seed=0,
    architecture=ArchitectureInfo(2, 3, "M", "d", "desc"),
)
COMPARED = [f for f in HarvestConfig.__struct_fields__ if f not in IGNORED_FIELDS]
NEW_VALUES = {
    "run_id": st.text(min_size=1, max_size=5),
    "source_fingerprint": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    "layout": st.lists(st.tuples(st.text(max_size=3), st.integers(1, 9)), max_size=3),
    "vocab_size": st.integers(1, 10**6),
    "n_batches": st.integers(1, 10**6),
    "batch_size": st.integers(1, 512),
    "context_length": st.integers(1, 4096),
    "ci_threshold": st.floats(0, 1),
    "examples_per_component": st.integers(0, 100),
    "context_tokens_per_side": st.integers(0, 50),
    "top_k": st.integers(1, 100),
    "seed": st.integers(0, 2**31),
    "heldout_per_component": st.integers(0, 100),
    "negatives_per_component": st.integers(0, 100),
    "hard_negatives_per_component": st.integers(0, 100),
}


@st.composite
def changes(draw: st.DrawFn) -> dict[str, object]:
    names = draw(st.sets(st.sampled_from(COMPARED)))
    return {name: draw(NEW_VALUES[name]) for name in names}


@given(changes(), st.text(max_size=5))
def test_the_diff_names_exactly_the_fields_that_changed(
    change: dict[str, object], description: str
) -> None:
    new = msgspec.structs.replace(BASE, source=description, **change)
    diffs = config_differences(BASE, new)
    named = {line.split(":", 1)[0] for line in diffs}
    expected = {k for k, v in change.items() if getattr(BASE, k) != v}
    assert named == expected
    assert all("→" in line for line in diffs)


@given(st.text(), st.integers(2, 300))
def test_clean_leaves_no_control_characters_and_respects_the_limit(text: str, limit: int) -> None:
    out = clean(text, limit)
    assert len(out) <= limit
    assert not any(unicodedata.category(ch) == "Cc" for ch in out)
    assert "\u2028" not in out and "\u2029" not in out
    assert clean(out, limit) == out
