"""Where the documents come from: local text/JSONL/Parquet files or a HuggingFace dataset.

Every source yields its documents in one fixed, seeded shuffled order and can start at any
document index, so the token stream built on top can resume deterministically. A document is a
string, or a list of token ids for datasets that are already tokenized.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from autointerp.errors import UserError

Document = str | list[int]
LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")
DEFAULT_TEXT_COLUMNS = ("text", "story")
_HF_SLICE = 1024


class Documents(Protocol):
    name: str

    def iter_from(self, index: int) -> Iterator[Document]:
        """The documents in stream order, starting at document number `index`."""
        ...


@dataclass
class InMemoryDocuments:
    """A list of documents read from a local file, in a seeded random order."""

    items: Sequence[Document]
    seed: int
    name: str

    def __post_init__(self) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        self._order = torch.randperm(len(self.items), generator=generator).tolist()

    def iter_from(self, index: int) -> Iterator[Document]:
        for k in self._order[index:]:
            yield self.items[k]


@dataclass
class HFDocuments:
    """A HuggingFace `datasets` split, shuffled with the run's seed (as SPD's loader does)."""

    dataset: Any
    column: str
    seed: int
    streaming: bool
    buffer_size: int
    name: str

    def __post_init__(self) -> None:
        if self.streaming:
            self._shuffled = self.dataset.shuffle(seed=self.seed, buffer_size=self.buffer_size)
        else:
            self._shuffled = self.dataset.shuffle(seed=self.seed)

    def iter_from(self, index: int) -> Iterator[Document]:
        if self.streaming:
            for row in itertools.islice(iter(self._shuffled), index, None):
                yield _as_document(row[self.column])
            return
        for lo in range(index, len(self._shuffled), _HF_SLICE):
            for value in self._shuffled[lo : lo + _HF_SLICE][self.column]:
                yield _as_document(value)


def _as_document(value: Any) -> Document:
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(v) for v in value]


def is_local_dataset(spec: str) -> bool:
    """A file we read ourselves; anything else (a hub name, a saved dataset directory) is given
    to `datasets.load_dataset`."""
    return spec.lower().endswith(LOCAL_SUFFIXES) or Path(spec).expanduser().is_file()


def load_local_documents(
    path: Path, *, column_candidates: Sequence[str], seed: int
) -> InMemoryDocuments:
    """Read a .txt (one document per line, or blank-line separated), .jsonl or .parquet file."""
    path = path.expanduser()
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        items: list[Document] = _read_txt(path)
    elif suffix == ".jsonl":
        items = _read_jsonl(path, column_candidates)
    elif suffix == ".parquet":
        items = _read_parquet(path, column_candidates)
    else:
        raise UserError(
            f"dataset file {path} has an unknown type: use .txt, .jsonl or .parquet, "
            "or give a HuggingFace dataset name"
        )
    if not items:
        raise UserError(f"dataset file {path} holds no documents")
    return InMemoryDocuments(items=items, seed=seed, name=str(path))


def _read_txt(path: Path) -> list[Document]:
    text = path.read_text(encoding="utf-8")
    if re.search(r"\n[ \t]*\n", text):
        blocks = re.split(r"\n[ \t]*\n", text)
        return [b.strip() for b in blocks if b.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_jsonl(path: Path, column_candidates: Sequence[str]) -> list[Document]:
    items: list[Document] = []
    column: str | None = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno} is not a JSON object")
            if column is None:
                column = _pick_column(path, list(row), column_candidates)
            if column not in row:
                raise UserError(f"{path}:{lineno} has no {column!r} field")
            items.append(_as_document(row[column]))
    return items


def _read_parquet(path: Path, column_candidates: Sequence[str]) -> list[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            f"reading {path} needs pyarrow: pip install pyarrow (or use .txt / .jsonl)"
        ) from None
    names = list(pq.read_schema(path).names)
    column = _pick_column(path, names, column_candidates)
    return [_as_document(v) for v in pq.read_table(path, columns=[column]).column(0).to_pylist()]


def _pick_column(where: object, available: list[str], candidates: Sequence[str]) -> str:
    for name in candidates:
        if name in available:
            return name
    raise UserError(
        f"{where} has none of the text columns {list(candidates)} (it has {available}): "
        "pass --text-column NAME"
    )


def load_hf_documents(
    name: str,
    *,
    split: str,
    column_candidates: Sequence[str],
    seed: int,
    streaming: bool,
    buffer_size: int,
) -> HFDocuments:
    """`datasets.load_dataset(name, split=...)`; missing package or unreachable hub → UserError."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"loading dataset {name!r} needs the `datasets` package: pip install datasets "
            "(or pass --dataset FILE.txt|.jsonl|.parquet)"
        ) from None
    try:
        dataset = datasets.load_dataset(name, split=split, streaming=streaming)
    except Exception as e:
        lines = str(e).strip().splitlines()
        raise UserError(
            f"cannot load dataset {name!r} (split {split!r}): {type(e).__name__}: "
            f"{lines[0][:300] if lines else ''}. Check the name; without network use a cached "
            "copy (HF_DATASETS_OFFLINE=1) or pass --dataset FILE.txt|.jsonl|.parquet."
        ) from None
    available = list(getattr(dataset, "column_names", None) or [])
    column = _pick_column(f"dataset {name!r}", available, column_candidates) if available else ""
    column = column or column_candidates[0]
    return HFDocuments(
        dataset=dataset,
        column=column,
        seed=seed,
        streaming=streaming,
        buffer_size=buffer_size,
        name=name,
    )
