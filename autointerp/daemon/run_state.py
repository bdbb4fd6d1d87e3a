"""`harvest/state.json`: which phases of a run are complete, and where each start resumed from.

Written atomically at every phase boundary and at every start, so `status` and the chaos tests
can read what happened (e.g. that a restart continued from batch 40, not from batch 0).
"""

from __future__ import annotations

import os
import threading
import time

import msgspec

from autointerp.daemon.guard import RunDirGuard
from autointerp.schemas import Phase
from autointerp.store import RunDir, read_json, write_json_atomic


class ResumeRecord(msgspec.Struct):
    """One start of the daemon on this run."""

    started_at: float
    pid: int
    phase: Phase
    batches_done: int
    """Harvest batches already accumulated in the checkpoint this start resumed from."""
    components_written: int


class RunState(msgspec.Struct, kw_only=True):
    harvest_complete: bool = False
    finalize_complete: bool = False
    labelling_complete: bool = False
    n_batches: int = 0
    batches_done: int = 0
    """As of the last checkpoint (the position a restart resumes from)."""
    n_tokens: int = 0
    n_components: int = 0
    last_checkpoint_at: float | None = None
    last_batch_at: float | None = None
    """When the last harvest batch finished (labelling should start within seconds of it)."""
    harvest_completed_at: float | None = None
    finalize_completed_at: float | None = None
    labelling_completed_at: float | None = None
    starts: list[ResumeRecord] = []

    @property
    def phase(self) -> Phase:
        """The phase still to do (`done` when all three are complete)."""
        if not self.harvest_complete:
            return "harvest"
        if not self.finalize_complete:
            return "finalize"
        return "done" if self.labelling_complete else "label"


def load_state(run: RunDir) -> RunState:
    return read_json(run.state_path, RunState) if run.state_path.exists() else RunState()


def save_state(run: RunDir, state: RunState) -> None:
    write_json_atomic(run.state_path, state)


class StateFile:
    """The one writer of `state.json`: the harvest thread and the event loop both update it.

    Every write first checks that the run directory is still the one this daemon locked.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.guard = RunDirGuard(run)
        self._lock = threading.Lock()
        self._state = load_state(run)

    def get(self) -> RunState:
        with self._lock:
            return msgspec.structs.replace(self._state)

    def update(self, **changes: object) -> RunState:
        with self._lock:
            self._state = msgspec.structs.replace(self._state, **changes)
            self.guard.check()
            save_state(self.run, self._state)
            return self._state

    def record_start(self, batches_done: int, components_written: int) -> ResumeRecord:
        with self._lock:
            s = self._state
            record = ResumeRecord(
                started_at=time.time(),
                pid=os.getpid(),
                phase=s.phase,
                batches_done=batches_done,
                components_written=components_written,
            )
            self._state = msgspec.structs.replace(s, starts=[*s.starts, record])
            self.guard.check()
            save_state(self.run, self._state)
            return record
