"""The token stream against a slow obvious reference, and the document readers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.errors import UserError
from autointerp.sources.data import (
    TokenStream,
    build_token_stream,
    data_settings_from_config,
    open_documents,
)
from autointerp.sources.documents import InMemoryDocuments, load_local_documents
from tests.sources.word_tokenizer import WORDS, WordTokenizer


def reference_batches(
    docs: list[str], seed: int, tokenizer: WordTokenizer, batch_size: int, context_length: int
) -> list[list[list[int]]]:
    """Shuffle, tokenize every document, end each with one EOS, concatenate, cut, batch."""
    order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed)).tolist()
    flat: list[int] = []
    for k in order:
        ids = [tokenizer.ids.get(w, 1) for w in docs[k].split()]
        flat.extend([*ids, 0])
    need = batch_size * context_length
    return [
        torch.tensor(flat[i * need : (i + 1) * need]).view(batch_size, context_length).tolist()
        for i in range(len(flat) // need)
    ]


documents = st.lists(
    st.lists(st.sampled_from([*WORDS, "zebra"]), max_size=12).map(" ".join), max_size=30
)


@settings(max_examples=60, deadline=None)
@given(
    docs=documents,
    seed=st.integers(0, 5),
    batch_size=st.integers(1, 4),
    context_length=st.integers(1, 9),
    start=st.integers(0, 12),
    appends_eos=st.booleans(),
)
def test_stream_matches_reference_from_any_start(
    docs: list[str],
    seed: int,
    batch_size: int,
    context_length: int,
    start: int,
    appends_eos: bool,
) -> None:
    tokenizer = WordTokenizer(appends_eos=appends_eos)
    expected = reference_batches(docs, seed, tokenizer, batch_size, context_length)
    fresh = TokenStream(InMemoryDocuments(docs, seed, "t"), tokenizer, pretokenized=False)
    resumed = [b.tolist() for b in fresh.batches(batch_size, context_length, start=start)]
    assert resumed == expected[start:]
    # Same stream again: the remembered document lengths must give the same answer.
    for s in (start, 0, max(0, start - 1)):
        again = [b.tolist() for b in fresh.batches(batch_size, context_length, start=s)]
        assert again == expected[s:]
    for b in fresh.batches(batch_size, context_length):
        assert b.dtype == torch.int64 and b.shape == (batch_size, context_length)


def test_skip_tokenizes_only_what_it_must() -> None:
    docs = [" ".join(WORDS[i % 10 : i % 10 + 5]) for i in range(200)]
    tokenizer = WordTokenizer()
    stream = TokenStream(InMemoryDocuments(docs, 0, "t"), tokenizer, pretokenized=False)
    first = next(iter(stream.batches(2, 8, start=3)))
    assert tokenizer.calls <= 256 + 256  # one skip chunk, one yield chunk; not the whole corpus
    assert first.tolist() == reference_batches(docs, 0, tokenizer, 2, 8)[3]


def test_order_depends_on_seed_only() -> None:
    docs = [f"doc {i}" for i in range(50)]
    a = list(InMemoryDocuments(docs, 1, "a").iter_from(0))
    assert a == list(InMemoryDocuments(docs, 1, "b").iter_from(0))
    assert a != list(InMemoryDocuments(docs, 2, "c").iter_from(0))
    assert sorted(a) == sorted(docs)
    assert list(InMemoryDocuments(docs, 1, "a").iter_from(7)) == a[7:]


def test_txt_line_and_blank_line_modes(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("the cat\n\nsat on\n")  # has a blank line: block mode
    assert sorted(load_local_documents(lines, column_candidates=(), seed=0).items) == [
        "sat on",
        "the cat",
    ]
    per_line = tmp_path / "per_line.txt"
    per_line.write_text("the cat\nsat on\na mat\n")
    assert len(load_local_documents(per_line, column_candidates=(), seed=0).items) == 3
    blocks = tmp_path / "blocks.txt"
    blocks.write_text("the cat\nsat on\n\n  \nthe dog\nran\n")
    assert sorted(load_local_documents(blocks, column_candidates=(), seed=0).items) == [
        "the cat\nsat on",
        "the dog\nran",
    ]


def test_jsonl_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"story": "a cat", "text": "t1"}\n\n{"story": "a dog", "text": "t2"}\n')
    docs = load_local_documents(path, column_candidates=("story", "text"), seed=0)
    assert sorted(docs.items) == ["a cat", "a dog"]
    docs = load_local_documents(path, column_candidates=("text",), seed=0)
    assert sorted(docs.items) == ["t1", "t2"]
    with pytest.raises(UserError, match="pass --text-column"):
        load_local_documents(path, column_candidates=("body",), seed=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2 is not valid JSON"):
        load_local_documents(bad, column_candidates=("text",), seed=0)


def test_local_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_local_documents(tmp_path / "none.txt", column_candidates=(), seed=0)
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(UserError, match=r"\.txt, \.jsonl or \.parquet"):
        load_local_documents(tmp_path / "x.csv", column_candidates=(), seed=0)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="holds no documents"):
        load_local_documents(tmp_path / "empty.txt", column_candidates=(), seed=0)


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        path.write_bytes(b"PAR1")
        with pytest.raises(UserError, match="pip install pyarrow"):
            load_local_documents(path, column_candidates=("text",), seed=0)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a cat", "a dog"], "n": [1, 2]}), path)
    docs = load_local_documents(path, column_candidates=("story", "text"), seed=0)
    assert sorted(docs.items) == ["a cat", "a dog"]


def test_pretokenized_rows_are_not_packed(tmp_path: Path) -> None:
    path = tmp_path / "tok.jsonl"
    rows = [list(range(i, i + 3 + i % 5)) for i in range(30)]
    path.write_text("".join(json.dumps({"input_ids": r}) + "\n" for r in rows))
    docs = load_local_documents(path, column_candidates=("input_ids",), seed=4)
    stream = build_token_stream(docs, WordTokenizer())
    assert stream.pretokenized
    full = [b.tolist() for b in stream.batches(2, 5)]
    expected_rows = [r[:5] for r in docs.iter_from(0) if isinstance(r, list) and len(r) >= 5]
    assert full == [expected_rows[i : i + 2] for i in range(0, len(expected_rows) - 1, 2)]
    assert [b.tolist() for b in stream.batches(2, 5, start=2)] == full[2:]


def test_settings_from_config_and_overrides(tmp_path: Path) -> None:
    config = {
        "seed": 7,
        "tokenizer_name": "SimpleStories/test-SimpleStories-gpt2-1.25M",
        "task_config": {
            "dataset_name": "SimpleStories/SimpleStories",
            "column_name": "story",
            "max_seq_len": 512,
            "train_data_split": "train",
            "streaming": False,
            "buffer_size": 1000,
        },
    }
    s = data_settings_from_config(config)
    assert (s.dataset, s.split, s.text_columns, s.seed) == (
        "SimpleStories/SimpleStories",
        "train",
        ("story", "text"),
        7,
    )
    assert s.tokenizer == "SimpleStories/test-SimpleStories-gpt2-1.25M"
    assert s.context_length == 512
    local = tmp_path / "mine.txt"
    local.write_text("the cat\n")
    o = data_settings_from_config(config, dataset=str(local), tokenizer="gpt2", text_column="body")
    assert (o.dataset, o.tokenizer, o.text_columns) == (str(local), "gpt2", ("body",))
    assert open_documents(o).name == str(local)
    with pytest.raises(UserError, match="pass --dataset"):
        data_settings_from_config({"seed": 0})
