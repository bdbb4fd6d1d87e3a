"""The run directory: where every result lives, and the only state recovery trusts.

`RunDir` names the files; `RunReader` is the one place that decodes them (labelled, failed,
cost, counts, config, state, live progress); `StateFile` is the one writer of `state.json`;
`RunLock` keeps a second process out. Durability comes from `files.py`: fsynced appends, atomic
replacement, torn-line-tolerant reads.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from autointerp.errors import RunLocked, UserError
from autointerp.files import iter_jsonl, read_json, write_json_atomic
from autointerp.schemas import (
    ArchitectureInfo,
    ComponentData,
    HarvestConfig,
    HeldOutData,
    InterpretationResult,
    LabelFailure,
    LiveProgress,
    ResumeRecord,
    RunState,
    ScoreRecord,
)

DEFAULT_DATA_DIR = ".data/autointerp"


def data_dir_from(cli_value: str | os.PathLike[str] | None) -> Path:
    """`--data-dir`, else `AUTOINTERP_DATA_DIR`, else `.data/autointerp`."""
    chosen = cli_value or os.environ.get("AUTOINTERP_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's directory (layout compatible with the reference pipeline)."""

    root: Path

    @classmethod
    def for_run(cls, data_dir: Path, run_id: str) -> RunDir:
        return cls(Path(data_dir) / run_id)

    @property
    def harvest_dir(self) -> Path:
        return self.root / "harvest"

    @property
    def config_path(self) -> Path:
        return self.harvest_dir / "config.json"

    @property
    def components_path(self) -> Path:
        return self.harvest_dir / "components.jsonl"

    @property
    def heldout_path(self) -> Path:
        return self.harvest_dir / "heldout.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.harvest_dir / "summary.json"

    @property
    def state_path(self) -> Path:
        return self.harvest_dir / "state.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.harvest_dir / "checkpoint"

    @property
    def interpretations_dir(self) -> Path:
        return self.root / "interpretations"

    @property
    def results_path(self) -> Path:
        return self.interpretations_dir / "results.jsonl"

    @property
    def failures_path(self) -> Path:
        return self.interpretations_dir / "failures.jsonl"

    @property
    def batches_dir(self) -> Path:
        """One file per Message Batch (`--batch`): what was submitted, and its id once known."""
        return self.interpretations_dir / "batches"

    @property
    def scores_dir(self) -> Path:
        return self.root / "scores"

    def score_path(self, scorer: str) -> Path:
        return self.scores_dir / f"{scorer}.jsonl"

    @property
    def scores_summary_path(self) -> Path:
        return self.scores_dir / "summary.json"

    @property
    def log_path(self) -> Path:
        return self.root / "autointerp.log"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @property
    def progress_path(self) -> Path:
        return self.root / "progress.json"

    def ensure(self) -> None:
        for d in (self.harvest_dir, self.checkpoint_dir, self.interpretations_dir):
            d.mkdir(parents=True, exist_ok=True)


def resolve_run(text: str, data_dir: str | os.PathLike[str] | None) -> RunDir:
    """A run directory given as a path, else as a run id under the data dir.

    A run directory is one with a `harvest/` folder. A UserError names every place it looked
    (absolute paths: a relative data dir depends on where the command runs).
    """
    as_path = Path(text).expanduser()
    under = data_dir_from(data_dir) / text
    candidates = [as_path] if under == as_path else [as_path, under]
    for candidate in candidates:
        if (candidate / "harvest").is_dir():
            return RunDir(candidate)
    looked = " or ".join(str(c.absolute()) for c in candidates)
    raise UserError(
        f"no run found at {looked}: no run directory (one with a harvest/ folder) there; give "
        "the run directory's path, or its run id with the --data-dir it was created with (or "
        "AUTOINTERP_DATA_DIR)"
    )


# ---------------------------------------------------------------- reading


class ComponentHead(msgspec.Struct):
    """The fields of a `ComponentData` line that counting needs (the statistics stay undecoded)."""

    component_key: str
    firing_count: int = 0
    activation_examples: list[msgspec.Raw] = []

    @property
    def alive(self) -> bool:
        """Fired at least once (a record with examples but no `firing_count` counts as alive)."""
        return self.firing_count > 0 or bool(self.activation_examples)


class HeldOutLookup:
    """`harvest/heldout.jsonl` by component key, for scoring labels as they arrive.

    Held-out lines run to tens of kilobytes each, so only each key's byte offset is kept; a line
    is read again when asked for. The file may still be growing (finalize appends the line
    before it hands the component on): a key not yet indexed makes the lookup read the lines
    appended since, complete lines only (a torn tail is read once it is whole). Scoring workers
    call it from several threads at once: indexing holds a lock (two threads indexing the same
    tail would count its bytes twice and point keys into the middle of lines).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets: dict[str, int] = {}
        self._indexed = 0
        """Bytes of the file already indexed (always at a line's end)."""
        self._head = msgspec.json.Decoder(ResultHead)
        self._decoder = msgspec.json.Decoder(HeldOutData)
        self._lock = threading.Lock()

    def _index_new_lines(self) -> None:
        if not self.path.exists():
            return
        with self._lock, open(self.path, "rb") as f:
            f.seek(self._indexed)
            while (line := f.readline()).endswith(b"\n"):
                start = self._indexed
                self._indexed += len(line)
                try:
                    key = self._head.decode(line).component_key
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                self._offsets.setdefault(key, start)  # the first line of a key wins

    def keys(self) -> set[str]:
        self._index_new_lines()
        return set(self._offsets)

    def get(self, key: str) -> HeldOutData | None:
        """The component's held-out windows; None when it has no line (dead, or not yet)."""
        if key not in self._offsets:
            self._index_new_lines()
        offset = self._offsets.get(key)
        if offset is None:
            return None
        with open(self.path, "rb") as f:
            f.seek(offset)
            return self._decoder.decode(f.readline())


class ResultHead(msgspec.Struct):
    """The fields of an `InterpretationResult` line that the ledger needs."""

    component_key: str
    cost_usd: float = 0.0
    cost_known: bool = True


class _ArchitectureOnly(msgspec.Struct):
    architecture: ArchitectureInfo


@dataclass
class ResultLedger:
    """What `results.jsonl` says: which components have a label and what the labels cost."""

    labelled: set[str] = field(default_factory=set)
    cost_usd: float = 0.0
    cost_known: bool = True


@dataclass
class ComponentCounts:
    """What `components.jsonl` says: complete lines, and the alive components among them."""

    written: int = 0
    alive_keys: list[str] = field(default_factory=list)

    @property
    def alive(self) -> int:
        return len(self.alive_keys)


class RunReader:
    """Decodes a run directory's files; never writes, never locks (safe beside a daemon)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def state(self) -> RunState:
        path = self.run.state_path
        return read_json(path, RunState) if path.exists() else RunState()

    def config(self) -> HarvestConfig | None:
        path = self.run.config_path
        return read_json(path, HarvestConfig) if path.exists() else None

    def architecture(self) -> ArchitectureInfo:
        """`harvest/config.json`'s "architecture" (all that labelling needs of the config)."""
        path = self.run.config_path
        if not path.exists():
            raise UserError(f"{path} is missing: this run has no harvest config")
        try:
            return msgspec.json.decode(path.read_bytes(), type=_ArchitectureOnly).architecture
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise UserError(f'{path} has no valid "architecture" entry ({e})') from None

    def harvest_is_complete(self) -> bool:
        return self.run.summary_path.exists() and self.run.components_path.exists()

    def results(self) -> ResultLedger:
        """Labelled keys and their cost (the first result of a key counts; repeats do not)."""
        ledger = ResultLedger()
        for record in iter_jsonl(self.run.results_path, ResultHead):
            if record.component_key not in ledger.labelled:
                ledger.labelled.add(record.component_key)
                ledger.cost_usd += record.cost_usd
                ledger.cost_known &= record.cost_known
        return ledger

    def labels(self) -> Iterator[InterpretationResult]:
        """Each labelled component's result, in file order (the first result of a key wins)."""
        seen: set[str] = set()
        for result in iter_jsonl(self.run.results_path, InterpretationResult):
            if result.component_key not in seen:
                seen.add(result.component_key)
                yield result

    def scores(self, scorer: str) -> dict[str, ScoreRecord]:
        """`scores/<scorer>.jsonl` by component (the first record of a key wins)."""
        out: dict[str, ScoreRecord] = {}
        for record in iter_jsonl(self.run.score_path(scorer), ScoreRecord):
            out.setdefault(record.component_key, record)
        return out

    def scoring_cost(self) -> tuple[float, bool]:
        """What every scorer's records cost, and whether every cost is known."""
        cost, known = 0.0, True
        if self.run.scores_dir.is_dir():
            for path in sorted(self.run.scores_dir.glob("*.jsonl")):
                for record in self.scores(path.stem).values():
                    cost += record.cost_usd
                    known &= record.cost_known
        return cost, known

    def failures(self) -> tuple[dict[str, LabelFailure], int]:
        """The latest failure of each key, and how many lines the file has."""
        latest: dict[str, LabelFailure] = {}
        lines = 0
        for failure in iter_jsonl(self.run.failures_path, LabelFailure):
            lines += 1
            latest[failure.component_key] = failure
        return latest, lines

    def heldout_keys(self) -> set[str]:
        """Components that have a `harvest/heldout.jsonl` line (only the key is decoded)."""
        return {r.component_key for r in iter_jsonl(self.run.heldout_path, ResultHead)}

    def heldout(self) -> Iterator[HeldOutData]:
        """The held-out windows of each component, in file order (the first line of a key wins)."""
        seen: set[str] = set()
        for record in iter_jsonl(self.run.heldout_path, HeldOutData):
            if record.component_key not in seen:
                seen.add(record.component_key)
                yield record

    def component_counts(self) -> ComponentCounts:
        counts = ComponentCounts()
        for head in iter_jsonl(self.run.components_path, ComponentHead):
            counts.written += 1
            if head.alive:
                counts.alive_keys.append(head.component_key)
        return counts

    def pending_components(self, is_pending: Callable[[str], bool]) -> Iterator[ComponentData]:
        """The alive components of `components.jsonl` for which `is_pending(key)`, in file order.

        Only those are fully decoded; the others are recognised from their key alone.
        """
        head, full = msgspec.json.Decoder(ComponentHead), msgspec.json.Decoder(ComponentData)
        for raw in iter_jsonl(self.run.components_path, msgspec.Raw):
            first = head.decode(raw)
            if first.alive and is_pending(first.component_key):
                yield full.decode(raw)

    def daemon_pid(self) -> int | None:
        """The pid recorded by the process holding the run lock, if that process is alive."""
        try:
            pid = int(self.run.lock_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        if pid <= 0:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def live_progress(self) -> LiveProgress | None:
        """The running process's last progress report, or None (none running, or unreadable)."""
        pid = self.daemon_pid()
        if pid is None:
            return None
        try:
            live = msgspec.json.decode(self.run.progress_path.read_bytes(), type=LiveProgress)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        return live if live.pid == pid else None


# ---------------------------------------------------------------- writing


class RunDirGuard:
    """Notices when the run directory is removed or replaced under a running process.

    The run lock guards a directory by its lock file; if someone deletes or moves the directory,
    a new process can lock the new one while this one still writes by path, and both would
    append to the same files. So writers check, before each checkpoint, state write and before
    finalize, that the lock file at the path is still the one this process locked.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._identity = self._current()

    def _current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.run.lock_path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        """Raise if the run directory this process locked is no longer at its path."""
        if self._current() != self._identity:
            raise RuntimeError(
                f"{self.run.root} was removed or replaced while this process was running; "
                "stopping so that two processes never write the same files (start it again to "
                "continue from what is in the directory now)"
            )


class StateFile:
    """The one writer of `state.json`: the harvest thread and the event loop both update it.

    Every write first checks that the run directory is still the one this process locked.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.guard = RunDirGuard(run)
        self._lock = threading.Lock()
        self._state = RunReader(run).state()

    def get(self) -> RunState:
        with self._lock:
            return msgspec.structs.replace(self._state)

    def update(self, **changes: object) -> RunState:
        with self._lock:
            self._state = msgspec.structs.replace(self._state, **changes)
            self._save()
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
            self._save()
            return record

    def _save(self) -> None:
        self.guard.check()
        write_json_atomic(self.run.state_path, self._state)


def write_live_progress(run: RunDir, progress: LiveProgress) -> None:
    """Replace `progress.json`; never recreates a run directory that was moved away."""
    write_json_atomic(run.progress_path, progress, create_parent=False)


class RunLock:
    """An exclusive lock on a run directory, so that two writers never duplicate work.

    Uses `flock`, which the kernel releases when the holder dies (also on `kill -9`), so a stale
    lock file never blocks a restart. The holder's pid is written into the file for the message.
    """

    def __init__(self, run_dir: RunDir) -> None:
        self.path = run_dir.lock_path
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(
                f"cannot use {self.path.parent} as the run directory ({e.strerror}); choose a "
                "writable --data-dir (or AUTOINTERP_DATA_DIR)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLocked(
                    f"another autointerp process (pid {holder}) is already working on "
                    f"{self.path.parent}; stop it first, or wait for it to finish"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
