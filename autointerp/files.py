"""Durable files: atomic replacement of state files, fsynced JSONL appends, tolerant reads.

Appends are flushed and fsynced per record, JSON state files are replaced atomically, and readers
skip a torn last line (a crash mid-append) and say so instead of failing. These primitives know
nothing of runs; `store.py` gives them their meaning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from autointerp.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")


def fsync_dir(path: Path) -> None:
    """Make a rename or a file creation in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_encoder = msgspec.json.Encoder()


def encode_line(record: Any) -> bytes:
    return _encoder.encode(record) + b"\n"


def write_bytes_atomic(path: Path, data: bytes, *, create_parent: bool = True) -> None:
    """Write to a temp file beside `path`, fsync, rename over it, fsync the directory.

    A crash at any point leaves either the old file or the new one, never a mixture. With
    `create_parent=False` a missing directory is an error (FileNotFoundError), never recreated.
    """
    path = Path(path)
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any, *, create_parent: bool = True) -> None:
    data = msgspec.json.format(_encoder.encode(obj), indent=2) + b"\n"
    write_bytes_atomic(path, data, create_parent=create_parent)


def read_json(path: Path, type: type[T]) -> T:
    """Decode a JSON state file; a corrupt file is a clear error naming the path."""
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=type)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise UserError(f"{path} is not a valid {getattr(type, '__name__', type)}: {e}") from e


def _trim_torn_tail(path: Path) -> int:
    """Cut a partial last line left by a crash mid-append; return how many bytes were cut.

    Without this, the next append would be glued onto the fragment and both would be lost.
    """
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


class JsonlAppender:
    """Append-only JSONL file: each record is written, flushed and fsynced before `append` returns.

    One appender per file per process; callers in an event loop run `append` in a thread
    (`asyncio.to_thread`) from a single writer task so that appends stay ordered.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        if existed:
            cut = _trim_torn_tail(self.path)
            if cut:
                log.warning("%s: removed a torn last line (%d bytes) left by a crash", path, cut)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        if not existed:
            fsync_dir(self.path.parent)

    def append(self, record: Any) -> None:
        self._file.write(encode_line(record))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class JsonlReport:
    """What a tolerant read found besides the records."""

    path: Path
    records: int = 0
    torn_tail: bool = False
    bad_lines: list[int] = field(default_factory=list)

    def describe(self) -> str | None:
        parts = []
        if self.torn_tail:
            parts.append("a torn last line (a crash mid-write) was skipped")
        if self.bad_lines:
            shown = ", ".join(map(str, self.bad_lines[:5]))
            more = "…" if len(self.bad_lines) > 5 else ""
            parts.append(f"{len(self.bad_lines)} unreadable line(s) skipped (line {shown}{more})")
        return f"{self.path}: " + "; ".join(parts) if parts else None


def iter_jsonl(path: Path, type: type[T], report: JsonlReport | None = None) -> Iterator[T]:
    """Yield the records of a JSONL file, skipping (and reporting) lines that do not decode.

    A missing file yields nothing. A last line without its newline is a torn append: skipped.
    """
    path = Path(path)
    if report is None:
        report = JsonlReport(path)
    if not path.exists():
        return
    decoder = msgspec.json.Decoder(type)
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                if line.strip():
                    report.torn_tail = True
                break
            if not line.strip():
                continue
            try:
                record = decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                report.bad_lines.append(lineno)
                continue
            report.records += 1
            yield record
    message = report.describe()
    if message:
        log.warning(message)


def read_jsonl(path: Path, type: type[T]) -> tuple[list[T], JsonlReport]:
    report = JsonlReport(Path(path))
    return list(iter_jsonl(path, type, report)), report
