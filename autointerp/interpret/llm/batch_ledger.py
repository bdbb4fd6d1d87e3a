"""The batch ledger: what was submitted as a batch, kept so that nothing is ever submitted twice.

One small JSON file per batch in `<run>/interpretations/batches/`, replaced atomically (temp
file, fsync, rename). The record is written *before* the submission goes out (status
`submitting`, no id yet) and rewritten with the server's id the moment the submission is
accepted. A restart therefore finds every batch it may have paid for:

- with an id: poll it and read its results, never submit its entries again;
- without an id (killed mid-submission, or the answer was lost): an orphan the server may have
  created. The client looks for it in the server's list and adopts it, or, once sure it does
  not exist, abandons the record and submits again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec

from autointerp.errors import UserError
from autointerp.files import write_bytes_atomic

log = logging.getLogger(__name__)

BatchStatus = Literal["submitting", "in_progress", "ended", "abandoned"]


class BatchRecord(msgspec.Struct, kw_only=True):
    local_id: str
    """Our name for it (the file's name), known before the server's id."""
    submitted_at: float
    """Unix time the submission was decided (before it went out)."""
    custom_ids: list[str]
    batch_id: str | None = None
    status: BatchStatus = "submitting"
    ended_at: float | None = None
    """Unix time we saw it ended."""
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0
    note: str = ""
    """Why it was abandoned, or how an orphan was adopted."""

    @property
    def open(self) -> bool:
        """Submitted (or maybe submitted) and not yet ended."""
        return self.status in ("submitting", "in_progress")


_decoder = msgspec.json.Decoder(BatchRecord)


class BatchLedger:
    """The records of one run directory's batches, and which batch last holds each entry."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.records: dict[str, BatchRecord] = {}
        self._latest: dict[str, str] = {}
        """custom_id -> local_id of the latest record holding it (abandoned ones excluded)."""
        for record in sorted(self._read(), key=lambda r: r.submitted_at):
            self.records[record.local_id] = record
            self._index(record)

    def _read(self) -> Iterator[BatchRecord]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.json")):
            try:
                yield _decoder.decode(path.read_bytes())
            except (msgspec.DecodeError, OSError) as e:
                raise UserError(
                    f"cannot read the batch record {path} ({e}); it says which batch was paid "
                    "for, so it is not skipped: restore it, or move it away if that batch is "
                    "known to be finished"
                ) from None

    def _index(self, record: BatchRecord) -> None:
        if record.status != "abandoned":
            for cid in record.custom_ids:
                self._latest[cid] = record.local_id
            return
        orphaned = {cid for cid in record.custom_ids if self._latest.get(cid) == record.local_id}
        for cid in orphaned:
            del self._latest[cid]
        if orphaned:  # back to the latest earlier batch holding them, as a restart would read
            for earlier in sorted(self.records.values(), key=lambda r: r.submitted_at):
                if earlier.status != "abandoned":
                    for cid in orphaned.intersection(earlier.custom_ids):
                        self._latest[cid] = earlier.local_id

    # ---- queries
    def holding(self, custom_id: str) -> BatchRecord | None:
        """The latest batch that holds this entry (not abandoned), if any."""
        local = self._latest.get(custom_id)
        return None if local is None else self.records[local]

    def forget(self, custom_id: str, record: BatchRecord) -> None:
        """This entry's outcome in `record` is spent (errored, expired): submit it again.
        (On disk nothing changes: a restart finds the newer batch, or the spent outcome.)"""
        if self._latest.get(custom_id) == record.local_id:
            del self._latest[custom_id]

    def known_batch_ids(self) -> set[str]:
        return {r.batch_id for r in self.records.values() if r.batch_id is not None}

    def open_records(self) -> list[BatchRecord]:
        return [r for r in self.records.values() if r.open]

    # ---- changes (each one durable before it returns)
    def intend(self, custom_ids: list[str], submitted_at: float) -> BatchRecord:
        record = BatchRecord(
            local_id=f"{int(submitted_at * 1000):013d}-{uuid.uuid4().hex[:8]}",
            submitted_at=submitted_at,
            custom_ids=custom_ids,
        )
        self.save(record)
        return record

    def save(self, record: BatchRecord) -> None:
        write_bytes_atomic(self.directory / f"{record.local_id}.json", msgspec.json.encode(record))
        self.records[record.local_id] = record
        self._index(record)
