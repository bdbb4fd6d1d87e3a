"""The HuggingFace adapters (`datasets`, `transformers`) against small stand-ins for the calls we
use, installed as importable modules (neither package is installed here, and nothing may download
in tests)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from autointerp.errors import UserError
from autointerp.sources.documents import load_hf_documents
from autointerp.sources.tokenizers import load_hf_tokenizer


class MapDataset:
    """`datasets.Dataset`-shaped: seeded `shuffle`, `len`, column slices, `column_names`."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.column_names = list(rows[0])

    def shuffle(self, seed: int) -> MapDataset:
        order = torch.randperm(len(self.rows), generator=torch.Generator().manual_seed(seed))
        return MapDataset([self.rows[i] for i in order.tolist()])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice) -> dict[str, list[Any]]:
        part = self.rows[key]
        return {c: [r[c] for r in part] for c in self.column_names}


class StreamDataset:
    """`datasets.IterableDataset`-shaped: `shuffle(seed, buffer_size)`, iteration, no columns."""

    column_names = None

    def __init__(self, rows: list[dict[str, Any]], seed: int | None = None) -> None:
        self.rows, self.seed = rows, seed
        self.iterations = 0

    def shuffle(self, seed: int, buffer_size: int) -> StreamDataset:
        assert buffer_size > 0
        return StreamDataset(self.rows, seed)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.iterations += 1
        g = torch.Generator().manual_seed(self.seed or 0)
        for i in torch.randperm(len(self.rows), generator=g).tolist():
            yield self.rows[i]


ROWS = [{"story": f"story {i}", "id": i} for i in range(2500)]


def install_datasets(monkeypatch: pytest.MonkeyPatch, loader: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("datasets")

    def load_dataset(name: str, split: str, streaming: bool) -> Any:
        calls.append({"name": name, "split": split, "streaming": streaming})
        return loader(name, split, streaming)

    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_map_dataset_shuffled_and_positioned(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = install_datasets(monkeypatch, lambda *_: MapDataset(ROWS))
    docs = load_hf_documents(
        "SimpleStories/SimpleStories",
        split="train",
        column_candidates=("story", "text"),
        seed=3,
        streaming=False,
        buffer_size=1000,
    )
    assert calls == [{"name": "SimpleStories/SimpleStories", "split": "train", "streaming": False}]
    everything = list(docs.iter_from(0))
    assert everything == [r["story"] for r in MapDataset(ROWS).shuffle(3).rows]
    assert list(docs.iter_from(1500)) == everything[1500:]  # crosses the 1024-row slices
    assert list(docs.iter_from(2500)) == []


def test_streaming_dataset_positioned(monkeypatch: pytest.MonkeyPatch) -> None:
    install_datasets(monkeypatch, lambda *_: StreamDataset(ROWS))
    docs = load_hf_documents(
        "big/stream",
        split="train",
        column_candidates=("story",),
        seed=9,
        streaming=True,
        buffer_size=10,
    )
    everything = list(docs.iter_from(0))
    assert len(everything) == len(ROWS)
    assert list(docs.iter_from(777)) == everything[777:]


def test_dataset_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*_: Any) -> Any:
        raise ConnectionError("Couldn't reach 'x' on the Hub\nmore detail")

    install_datasets(monkeypatch, unreachable)
    with pytest.raises(UserError, match="HF_DATASETS_OFFLINE=1") as e:
        load_hf_documents(
            "x", split="train", column_candidates=("t",), seed=0, streaming=False, buffer_size=1
        )
    assert "Couldn't reach 'x' on the Hub" in str(e.value) and "more detail" not in str(e.value)
    install_datasets(monkeypatch, lambda *_: MapDataset(ROWS))
    with pytest.raises(UserError, match="pass --text-column"):
        load_hf_documents(
            "x", split="train", column_candidates=("text",), seed=0, streaming=False, buffer_size=1
        )


class PreTrainedTokenizerLike:
    """The `transformers` tokenizer calls the adapter makes; appends EOS like SimpleStories."""

    eos_token_id = 1

    def __call__(self, texts: list[str], add_special_tokens: bool) -> dict[str, Any]:
        assert add_special_tokens is False
        return {"input_ids": [[2 + len(w) for w in t.split()] + [1] for t in texts]}

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        assert skip_special_tokens is False
        return "[EOS]" if ids == [1] else f"w{ids[0]}"


def install_transformers(monkeypatch: pytest.MonkeyPatch, from_pretrained: Any) -> None:
    module = types.ModuleType("transformers")
    module.AutoTokenizer = types.SimpleNamespace(from_pretrained=from_pretrained)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers", module)


def test_hf_tokenizer_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    install_transformers(monkeypatch, lambda name: PreTrainedTokenizerLike())
    tok = load_hf_tokenizer("SimpleStories/test-SimpleStories-gpt2-1.25M")
    assert tok.name == "SimpleStories/test-SimpleStories-gpt2-1.25M"
    assert tok.eos_token_id == 1
    assert tok.encode_batch(["ab c", ""]) == [[4, 3, 1], [1]]
    assert tok.decode(1) == "[EOS]" and tok.decode(7) == "w7"


def test_hf_tokenizer_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}")

    install_transformers(monkeypatch, missing)
    with pytest.raises(UserError, match="cannot load tokenizer 'gpt2'") as e:
        load_hf_tokenizer("gpt2")
    assert "--tokenizer <local directory>" in str(e.value)
