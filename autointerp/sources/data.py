"""The token-batch stream: documents tokenized, joined with EOS and cut into contexts, as SPD does.

Positioned and deterministic: `batches(B, L, start=i)` yields exactly what an uninterrupted
`batches(B, L)` yields after its first `i` batches. To find where batch `i` begins, the stream
remembers the token length of every document it has tokenized, in memory and (optionally) in a
`LengthIndex` file, so a restarted process skips to batch `i` without tokenizing the documents
before it; without the file it tokenizes them once (no batches are built for them).

Already tokenized datasets (rows of token ids, e.g. SPD's Pile runs) are not packed: each row of at
least `L` tokens gives one context, its first `L` tokens, as SPD's loader does.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autointerp.errors import UserError
from autointerp.sources.documents import (
    DEFAULT_TEXT_COLUMNS,
    Document,
    Documents,
    is_local_dataset,
    load_hf_documents,
    load_local_documents,
)
from autointerp.sources.length_index import LengthIndex
from autointerp.sources.tokenizers import TextTokenizer

log = logging.getLogger(__name__)

ENCODE_CHUNK = 256
"""Documents tokenized per call (fast tokenizers parallelise within a call)."""
INDEX_FLUSH = 4096
"""Document lengths buffered before they are appended to the length index file."""


class TokenStream:
    """Batches of `int64 [batch_size, context_length]` token ids from a document source."""

    def __init__(
        self,
        documents: Documents,
        tokenizer: TextTokenizer,
        *,
        pretokenized: bool,
        length_index: LengthIndex | None = None,
    ) -> None:
        self.documents = documents
        self.tokenizer = tokenizer
        self.pretokenized = pretokenized
        self._cumulative: list[int] = []
        """`_cumulative[k]`: tokens in documents 0..k of the stream (EOS included)."""
        self._index = None if pretokenized else length_index
        self._unwritten: list[int] = []
        if self._index is not None:
            self._adopt(self._index.load())

    def _adopt(self, counts: list[int]) -> None:
        """Trust recorded lengths only if the first and last recorded documents still match."""
        if not counts or self._index is None:
            return
        checks = sorted({0, *range(max(0, len(counts) - 2), len(counts))})
        for k in checks:
            doc = next(iter(self.documents.iter_from(k)), None)
            actual = None if doc is None else len(self._encode([doc])[0])
            if actual != counts[k]:
                log.warning(
                    "token length index %s does not match the data (document %d): rebuilding it",
                    self._index.path,
                    k,
                )
                self._index.discard()
                return
        self._cumulative = list(itertools.accumulate(counts))

    def batches(
        self, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        if batch_size < 1 or context_length < 1 or start < 0:
            raise ValueError(f"bad batch request {batch_size=} {context_length=} {start=}")
        if self.pretokenized:
            return self._row_batches(batch_size, context_length, start)
        return self._packed_batches(batch_size, context_length, start)

    def _packed_batches(self, batch_size: int, context_length: int, start: int) -> Iterator[Any]:
        need = batch_size * context_length
        first_doc, offset = self._locate(start * need)
        buf: list[int] = []
        for doc, ids in enumerate(self._encoded_from(first_doc), start=first_doc):
            buf.extend(ids[offset:] if doc == first_doc else ids)
            while len(buf) >= need:
                yield torch.tensor(buf[:need], dtype=torch.int64).view(batch_size, context_length)
                del buf[:need]

    def _row_batches(self, batch_size: int, context_length: int, start: int) -> Iterator[Any]:
        rows = (
            doc[:context_length]
            for doc in self.documents.iter_from(0)
            if isinstance(doc, list) and len(doc) >= context_length
        )
        rows = itertools.islice(rows, start * batch_size, None)
        while len(chunk := list(itertools.islice(rows, batch_size))) == batch_size:
            yield torch.tensor(chunk, dtype=torch.int64)

    def _locate(self, token_offset: int) -> tuple[int, int]:
        """(document index, offset inside it) of the stream's token number `token_offset`."""
        if not self._cumulative or self._cumulative[-1] <= token_offset:
            for _ in self._encoded_from(len(self._cumulative)):
                if self._cumulative[-1] > token_offset:
                    break
        doc = bisect.bisect_right(self._cumulative, token_offset)
        if doc == len(self._cumulative):
            return doc, 0  # past the end of the data: nothing to yield
        return doc, token_offset - (self._cumulative[doc - 1] if doc else 0)

    def _encoded_from(self, first_doc: int) -> Iterator[list[int]]:
        """Token ids of each document from `first_doc` on, EOS-terminated exactly once."""
        docs = self.documents.iter_from(first_doc)
        doc = first_doc
        try:
            while chunk := list(itertools.islice(docs, ENCODE_CHUNK)):
                for ids in self._encode(chunk):
                    if doc == len(self._cumulative):
                        self._cumulative.append(len(ids) + (self._cumulative[-1] if doc else 0))
                        self._record(len(ids))
                    doc += 1
                    yield ids
        finally:
            self._flush_index()

    def _record(self, count: int) -> None:
        if self._index is None:
            return
        self._unwritten.append(count)
        if len(self._unwritten) >= INDEX_FLUSH:
            self._flush_index()

    def _flush_index(self) -> None:
        if self._index is None or not self._unwritten:
            return
        before = len(self._cumulative) - len(self._unwritten)
        if not self._index.append(before, self._unwritten):
            self._index = None  # another writer or an I/O problem: stop recording, stay correct
        self._unwritten = []

    def _encode(self, chunk: list[Document]) -> list[list[int]]:
        texts = [d if isinstance(d, str) else "" for d in chunk]
        eos = self.tokenizer.eos_token_id
        encoded = self.tokenizer.encode_batch(texts)
        if eos is None:
            return encoded
        # SimpleStories-style tokenizers append EOS to every encode: never double it.
        return [ids if ids and ids[-1] == eos else [*ids, eos] for ids in encoded]


@dataclass(frozen=True)
class DataSettings:
    """Which data the run streams: the SPD run's own dataset unless overridden."""

    dataset: str
    split: str
    text_columns: tuple[str, ...]
    """Column names to try, in order (an explicit --text-column alone when given)."""
    tokenizer: str | None
    seed: int
    streaming: bool
    buffer_size: int
    context_length: int

    def describe(self) -> str:
        return f"{self.dataset} (split {self.split}, column {self.text_columns[0]})"


def data_settings_from_config(
    config: dict[str, Any],
    *,
    dataset: str | None = None,
    tokenizer: str | None = None,
    text_column: str | None = None,
) -> DataSettings:
    """Read the data fields of SPD's `final_config.yaml`, applying the CLI overrides."""
    task = config.get("task_config") or {}
    if not isinstance(task, dict):
        task = {}
    config_column = task.get("column_name")
    if text_column:
        columns: tuple[str, ...] = (text_column,)
    else:
        ordered = [c for c in (config_column, *DEFAULT_TEXT_COLUMNS) if isinstance(c, str)]
        columns = tuple(dict.fromkeys(ordered))
    chosen_dataset = dataset or task.get("dataset_name")
    if not chosen_dataset:
        raise UserError(
            "the run's config names no dataset (task_config.dataset_name): pass --dataset"
        )
    overridden = dataset is not None
    return DataSettings(
        dataset=str(chosen_dataset),
        split=str(task.get("train_data_split") or "train"),
        text_columns=columns,
        tokenizer=tokenizer or config.get("tokenizer_name"),
        seed=int(config.get("seed") or 0),
        streaming=bool(task.get("streaming", False)) and not overridden,
        buffer_size=int(task.get("buffer_size") or 1000),
        context_length=int(task.get("max_seq_len") or 512),
    )


def open_documents(settings: DataSettings) -> Documents:
    """The document source named by the settings: a local file, else a HuggingFace dataset."""
    if is_local_dataset(settings.dataset):
        return load_local_documents(
            Path(settings.dataset), column_candidates=settings.text_columns, seed=settings.seed
        )
    return load_hf_documents(
        settings.dataset,
        split=settings.split,
        column_candidates=settings.text_columns,
        seed=settings.seed,
        streaming=settings.streaming,
        buffer_size=settings.buffer_size,
    )


def build_token_stream(
    documents: Documents, tokenizer: TextTokenizer, length_index: LengthIndex | None = None
) -> TokenStream:
    """Pack text documents; take rows of token ids as they are (decided by the first document)."""
    first = next(iter(documents.iter_from(0)), None)
    if first is None:
        raise UserError(f"dataset {documents.name} holds no documents")
    return TokenStream(
        documents, tokenizer, pretokenized=isinstance(first, list), length_index=length_index
    )


def length_index_for(settings: DataSettings, tokenizer_name: str, index_dir: Path) -> LengthIndex:
    """The length index file of this exact data: dataset (and a local file's size and mtime),
    split, columns, seed, shuffle buffer and tokenizer all enter its name."""
    identity: dict[str, Any] = {
        "dataset": settings.dataset,
        "split": settings.split,
        "columns": list(settings.text_columns),
        "seed": settings.seed,
        "streaming": settings.streaming,
        "buffer_size": settings.buffer_size,
        "tokenizer": tokenizer_name,
    }
    local = Path(settings.dataset).expanduser()
    if local.is_file():
        stat = local.stat()
        identity["file"] = [str(local.resolve()), stat.st_size, stat.st_mtime_ns]
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return LengthIndex(Path(index_dir) / f"{key}.lengths")
