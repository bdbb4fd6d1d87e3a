"""The story grammar is deterministic, closed over its vocabulary, and has the structure the
demo's components are meant to pick up."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.sources.demo.corpus import (
    BOYS,
    COLOURS,
    EOS,
    GIRLS,
    OBJECTS,
    VOCABULARY,
    story,
    token_row,
)
from autointerp.sources.demo.tokenizer import WordTokenizer

NAMES = {" " + n for n in GIRLS + BOYS}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_stories_are_closed_structured_and_deterministic(seed: int) -> None:
    told = story(random.Random(seed))
    assert told == story(random.Random(seed))
    assert set(told) <= set(VOCABULARY)
    assert EOS not in told
    for before, after in itertools.pairwise(told):
        if before == " named":
            assert after in NAMES
    assert told.count(' "') == told.count('"'), "every quote is closed"
    colours = {" " + c for c in COLOURS}
    objects = {" " + o for o in OBJECTS}
    for i, token in enumerate(told[:-1]):
        if token == " had":
            assert told[i + 2] in colours and told[i + 3] in objects


@settings(max_examples=20, deadline=None)
@given(seed=st.text(max_size=8), length=st.integers(1, 200))
def test_token_rows_have_exact_length_and_depend_only_on_seed(seed: str, length: int) -> None:
    row = token_row(seed, length)
    assert len(row) == length
    assert row == token_row(seed, length)


def test_tokenizer_round_trips_the_vocabulary() -> None:
    tokenizer = WordTokenizer()
    assert 200 <= len(tokenizer) <= 400
    assert tokenizer.decode(tokenizer.eos_id) == EOS
    ids = tokenizer.encode(VOCABULARY)
    assert ids == list(range(len(VOCABULARY)))
    assert [tokenizer.decode(i) for i in ids] == VOCABULARY
    text = tokenizer.decode_text(tokenizer.encode(story(random.Random(3))))
    assert text.startswith(" ") and "  " not in text
