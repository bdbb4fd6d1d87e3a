"""Checkpoints that do not stall the harvest: snapshot between updates, write in the background.

`CheckpointWriter.save` holds the harvest thread only for a host snapshot of the state
(`snapshot.py`); a background thread then writes it with `write_checkpoint` (atomic: temp file,
fsync, rename, manifest last) and calls `on_commit` once the manifest names it, so whatever
`on_commit` records (the pass: `state.json`'s `batches_done`) never points past what is on disk.
At most one write is in flight: `save` first waits for the previous one. A write that fails
raises its error in the harvest thread at the next `poll`, `save` or `wait`, never silently.

Without room for a snapshot in host memory (`snapshot_refusal`), or where background writing does
not pay (`CPU_BACKGROUND`), `save` writes synchronously from the live tables, as checkpoints
always did. `save(live=True)` writes the live tables in the background with no snapshot at all:
for the final checkpoint, which overlaps finalize (that only reads the tables), and for a stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from autointerp.harvest.checkpoint import Commit, write_checkpoint
from autointerp.harvest.harvester import Harvester
from autointerp.harvest.payload import StateView, live_view
from autointerp.harvest.snapshot import (
    HostSnapshot,
    available_host_bytes,
    snapshot_bytes,
    snapshot_refusal,
)

log = logging.getLogger(__name__)

OnCommit = Callable[[Commit], None]
"""Called in the writing thread once a checkpoint is committed (an error in it surfaces like a
failed write)."""

CPU_BACKGROUND = False
"""Whether a CPU harvest writes its periodic checkpoints in the background (CUDA always does).
No: on a CPU the write is CPU work (encoding, hashing, copying into the page cache), and the
harvest already uses every idle core. `bench/checkpoint.py` at the SimpleStories shape on a
2-core CPU: a synchronous write held the harvest 1.6-1.8 s; a snapshot held it 0.16 s, but the
updates beside the background write took 2.3-2.5 s longer (the harvest's two OpenMP threads
wait for the core the writer holds), so 2.5-2.7 s in all (README, "Resume"). Tests set it to run
the background path on a CPU."""


class CheckpointWriter:
    """Saves checkpoints of one harvest pass into `directory`, one at a time."""

    def __init__(
        self,
        directory: Path | str,
        *,
        snapshot: HostSnapshot | None,
        writer_threads: int | None = None,
    ) -> None:
        """`snapshot` None: every `save` but a live one writes synchronously. `writer_threads`:
        torch's CPU threads in the background thread (None: torch's default)."""
        self.directory = Path(directory)
        self.snapshot = snapshot
        self.writer_threads = writer_threads
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._done: list[Commit] = []
        self._error: BaseException | None = None

    @classmethod
    def for_harvest(
        cls, directory: Path | str, harvester: Harvester, *, background: bool | None = None
    ) -> CheckpointWriter:
        """The writer for a pass: in the background where that pays (CUDA always; a CPU per
        `CPU_BACKGROUND`) and a snapshot fits in host memory; its buffers allocated meanwhile."""
        device = harvester.device
        if background is None:
            background = device.type != "cpu" or CPU_BACKGROUND
        snapshot = None
        if background:
            need = snapshot_bytes(harvester)
            reason = snapshot_refusal(need, available_host_bytes())
            if reason is None:
                snapshot = HostSnapshot(device)
                snapshot.prepare(harvester)
                log.info(
                    "checkpoints: snapshot (%.2f GiB of host memory), written in the background",
                    need / 2**30,
                )
            else:
                log.warning("checkpoints are written synchronously (the harvest waits): %s", reason)
        return cls(directory, snapshot=snapshot, writer_threads=1 if device.type == "cpu" else None)

    @property
    def background(self) -> bool:
        return self.snapshot is not None

    @property
    def in_flight(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def save(
        self,
        harvester: Harvester,
        extra: dict[str, Any],
        on_commit: OnCommit | None = None,
        *,
        live: bool = False,
    ) -> float:
        """Start a checkpoint of `harvester` now; returns the seconds the caller was held.

        Waits for the previous write first (raising its error). `live`: the pass's last
        checkpoint: write the live tables in the background (the caller must not update the
        harvester until `wait` returns) and free the snapshot's buffers.
        """
        t0 = time.monotonic()
        self._join()
        self._raise()
        if live:
            if self.snapshot is not None:
                self.snapshot.release()
            self._start(live_view(harvester), extra, on_commit)
        elif self.snapshot is None:
            self._write(live_view(harvester), extra, on_commit, background=False)
            self._raise()
        else:
            self._start(self.snapshot.take(harvester), extra, on_commit)
        return time.monotonic() - t0

    def poll(self) -> list[Commit]:
        """Checkpoints committed since the last call; raises if a write failed."""
        if self._thread is not None and not self._thread.is_alive():
            self._join()
        self._raise()
        with self._lock:
            done, self._done = self._done, []
        return done

    def wait(self) -> list[Commit]:
        """Wait for the write in flight; then as `poll`."""
        self._join()
        return self.poll()

    def close(self) -> None:
        """Wait for the write in flight (raising its error) and free the snapshot's buffers."""
        try:
            self.wait()
        finally:
            if self.snapshot is not None:
                self.snapshot.release()

    def _start(self, view: StateView, extra: dict[str, Any], on_commit: OnCommit | None) -> None:
        self._thread = threading.Thread(
            target=self._write,
            args=(view, extra, on_commit),
            kwargs={"background": True},
            name="checkpoint-writer",
        )
        self._thread.start()

    def _write(
        self,
        view: StateView,
        extra: dict[str, Any],
        on_commit: OnCommit | None,
        *,
        background: bool,
    ) -> None:
        try:
            if background and self.writer_threads is not None:
                torch.set_num_threads(self.writer_threads)  # this thread's setting only
            commit = write_checkpoint(self.directory, view, extra)
            if on_commit is not None:
                on_commit(commit)
            with self._lock:
                self._done.append(commit)
        except BaseException as e:  # raised in the harvest thread by `_raise`
            with self._lock:
                self._error = e

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error
