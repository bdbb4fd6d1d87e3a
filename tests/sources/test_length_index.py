"""The token length index: a restarted stream skips without re-tokenizing, and never trusts a
file that disagrees with the data."""

from __future__ import annotations

from pathlib import Path

from autointerp.sources.data import TokenStream, data_settings_from_config, length_index_for
from autointerp.sources.documents import InMemoryDocuments
from autointerp.sources.length_index import LengthIndex
from tests.sources.test_data import reference_batches
from tests.sources.word_tokenizer import WORDS, WordTokenizer

DOCS = [" ".join(WORDS[(i * 7) % 30 : (i * 7) % 30 + 1 + i % 6]) for i in range(900)]


def stream(index: LengthIndex, docs: list[str] = DOCS) -> tuple[TokenStream, WordTokenizer]:
    tokenizer = WordTokenizer(appends_eos=True)
    documents = InMemoryDocuments(docs, 5, "t")
    return TokenStream(documents, tokenizer, pretokenized=False, length_index=index), tokenizer


def test_restart_skips_without_tokenizing_what_it_skips(tmp_path: Path) -> None:
    index = LengthIndex(tmp_path / "x.lengths")
    expected = reference_batches(DOCS, 5, WordTokenizer(), 4, 8)
    first, _ = stream(index)
    assert [b.tolist() for b in first.batches(4, 8)] == expected  # one full pass records all
    assert len(index.load()) == len(DOCS)

    restarted, tokenizer = stream(index)
    late = len(expected) - 2
    assert [b.tolist() for b in restarted.batches(4, 8, start=late)] == expected[late:]
    assert tokenizer.calls < 300  # spot checks + the tail, not the 900 skipped documents


def test_partial_index_is_extended_and_torn_tail_cut(tmp_path: Path) -> None:
    index = LengthIndex(tmp_path / "x.lengths")
    expected = reference_batches(DOCS, 5, WordTokenizer(), 2, 5)
    s, _ = stream(index)
    for i, _batch in enumerate(s.batches(2, 5)):
        if i == 3:
            break
    recorded = index.load()
    assert 0 < len(recorded) < len(DOCS)
    with open(index.path, "ab") as f:
        f.write(b"\x07\x00\x00")  # a torn record from a crash mid-write
    assert index.load() == recorded
    again, _ = stream(index)
    assert [b.tolist() for b in again.batches(2, 5, start=10)] == expected[10:]
    assert [b.tolist() for b in again.batches(2, 5, start=1)] == expected[1:]
    assert len(index.load()) == len(DOCS)


def test_index_of_other_data_is_discarded(tmp_path: Path) -> None:
    index = LengthIndex(tmp_path / "x.lengths")
    s, _ = stream(index)
    list(s.batches(2, 5))
    other_docs = [d + " sun" for d in DOCS]  # every document one token longer
    expected = reference_batches(other_docs, 5, WordTokenizer(), 2, 5)
    other, _ = stream(index, other_docs)
    assert [b.tolist() for b in other.batches(2, 5, start=7)] == expected[7:]
    lengths = index.load()
    assert lengths and lengths[0] == len(other_docs_ids(other_docs)[0])


def other_docs_ids(docs: list[str]) -> list[list[int]]:
    order = InMemoryDocuments(docs, 5, "t")._order
    return [WordTokenizer(appends_eos=True).encode(docs[k]) for k in order]


def test_index_name_depends_on_data_and_tokenizer(tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("the cat\n")
    config = {"seed": 1, "task_config": {"dataset_name": str(data)}}
    settings = data_settings_from_config(config)
    a = length_index_for(settings, "tok-a", tmp_path).path
    assert a == length_index_for(settings, "tok-a", tmp_path).path
    assert a != length_index_for(settings, "tok-b", tmp_path).path
    reseeded = data_settings_from_config({**config, "seed": 2})
    assert a != length_index_for(reseeded, "tok-a", tmp_path).path
    data.write_text("the cat sat on the mat\n")
    assert a != length_index_for(settings, "tok-a", tmp_path).path
