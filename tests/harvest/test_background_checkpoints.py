"""Checkpoints written in a background thread: exact, one at a time, errors surface, and
`state.json` never names a checkpoint before it is committed. Real files and real threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from autointerp.harvest import Harvester, HarvestPass, finalize, load_checkpoint
from autointerp.harvest import writer as writer_module
from autointerp.harvest.checkpoint import Commit, read_manifest
from autointerp.harvest.config import HarvestOptions, harvest_config, reconcile_config
from autointerp.harvest.snapshot import HostSnapshot, snapshot_bytes
from autointerp.harvest.writer import CheckpointWriter
from autointerp.store import RunDir, RunLock, StateFile
from tests.daemon.tiny_source import TinySource
from tests.harvest.helpers import decode, harvest, make_stream
from tests.harvest.same_state import assert_same_state

LAYOUT = [("a", 5), ("b", 3)]
STREAM_ARGS = (11, 8, 7, 6, 2, 9, 0.0)


def _new(device: str = "cpu") -> Harvester:
    return Harvester(LAYOUT, 7, 0.0, 3, 2, device, 42)


def _writer(directory: Path, device: str = "cpu") -> CheckpointWriter:
    return CheckpointWriter(directory, snapshot=HostSnapshot(torch.device(device)))


def _copy(h: Harvester) -> Harvester:
    return Harvester.from_state_dict(h.state_dict(), h.device)


def _check_background_round_trip(tmp_path: Path, device: str) -> None:
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:3], _new(device))
    at_snapshot = _copy(h)
    writer = _writer(tmp_path, device)
    writer.save(h, {"batches_done": 3})
    harvest(stream[3:], h)  # the harvest goes on while the snapshot is written
    (commit,) = writer.wait()
    writer.close()
    assert commit.manifest.n_batches == 3 and commit.path.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    loaded = load_checkpoint(tmp_path, device)
    assert loaded is not None and loaded[1] == {"batches_done": 3}
    assert_same_state(loaded[0], at_snapshot)  # tables, examples, generator, scalars
    harvest(stream[3:], loaded[0])
    assert_same_state(loaded[0], h)
    assert list(finalize(loaded[0], decode)) == list(finalize(h, decode))


def test_background_write_is_the_state_at_the_snapshot_exactly(tmp_path: Path) -> None:
    _check_background_round_trip(tmp_path, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_background_write_from_pinned_snapshot_on_cuda(tmp_path: Path) -> None:
    _check_background_round_trip(tmp_path, "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_snapshot_buffers_on_cuda_are_pinned_in_place_at_their_exact_size() -> None:
    h = harvest(make_stream(*STREAM_ARGS)[:2], _new("cuda"))
    snapshot = HostSnapshot(torch.device("cuda"))
    snapshot.prepare(h)
    view = snapshot.take(h)
    assert all(t.is_pinned() for t in view.sections.values() if t.nbytes)
    assert snapshot_bytes(h) == sum(t.nbytes for t in view.sections.values())
    snapshot.release()


class _Cudart:
    """Records cudaHostRegister / cudaHostUnregister (this machine has no CUDA to pin with)."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.registered: list[int] = []
        self.unregistered: list[int] = []

    def cudaHostRegister(self, ptr: int, nbytes: int, flags: int) -> int:
        if self.refuse:
            return 2  # cudaErrorMemoryAllocation
        self.registered.append(ptr)
        return 0

    def cudaHostUnregister(self, ptr: int) -> int:
        self.unregistered.append(ptr)
        return 0


@pytest.mark.parametrize("refuse", [False, True])
def test_every_buffer_pinned_for_a_snapshot_is_unpinned_once_before_it_is_freed(
    monkeypatch: pytest.MonkeyPatch, refuse: bool
) -> None:
    cudart = _Cudart(refuse)
    monkeypatch.setattr(torch.cuda, "cudart", lambda: cudart)
    h = harvest(make_stream(*STREAM_ARGS)[:2], _new())
    snapshot = HostSnapshot(torch.device("cuda"))  # only its buffers' pinning is exercised
    snapshot.prepare(h)
    snapshot.wait_ready()
    # Exactly the tables' size: no power-of-two rounding.
    assert snapshot_bytes(h) == sum(t.nbytes for t in snapshot._buffers.values())
    pinned = list(cudart.registered)
    assert len(pinned) == (0 if refuse else sum(1 for t in snapshot._buffers.values() if t.nbytes))
    snapshot.release()
    assert sorted(cudart.unregistered) == sorted(pinned)


def test_a_checkpoint_requested_during_a_write_waits_for_it(tmp_path: Path) -> None:
    """At most one write in flight: the second `save` returns only after the first committed,
    and each manifest names its own state."""
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:2], _new())
    writer = _writer(tmp_path)
    release = threading.Event()
    events: list[str] = []

    def first_committed(commit: Commit) -> None:
        events.append(f"first committed at batch {commit.manifest.n_batches}")
        release.wait(timeout=30)  # the write stays in flight until released

    writer.save(h, {"batches_done": 2}, first_committed)
    harvest(stream[2:3], h)
    second = threading.Thread(
        target=lambda: (writer.save(h, {"batches_done": 3}), events.append("second saved"))
    )
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive(), "the second checkpoint did not wait for the first write"
    assert writer.in_flight and events == ["first committed at batch 2"]
    assert read_manifest(tmp_path).extra == {"batches_done": 2}  # type: ignore[union-attr]
    release.set()
    second.join(timeout=30)
    commits = writer.wait()
    assert [c.manifest.n_batches for c in commits] == [2, 3]
    assert events[-1] == "second saved"
    assert read_manifest(tmp_path).extra == {"batches_done": 3}  # type: ignore[union-attr]
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None
    assert_same_state(loaded[0], h)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("state-")]) == 1


def test_an_error_in_the_background_write_is_raised_in_the_harvest_thread(
    tmp_path: Path,
) -> None:
    """The write fails in its thread (its directory cannot be created); the caller's next
    `poll`, `save` or `wait` raises that very error, once."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    h = harvest(make_stream(*STREAM_ARGS)[:1], _new())
    writer = _writer(blocker / "checkpoint")
    raised_in: list[str] = []
    writer.save(h, {"batches_done": 1})
    with pytest.raises((FileExistsError, NotADirectoryError)):
        try:
            writer.wait()
        finally:
            raised_in.append(threading.current_thread().name)
    assert raised_in == [threading.current_thread().name]
    assert writer.poll() == []  # raised once, not again


def test_an_error_in_the_commit_callback_surfaces_too(tmp_path: Path) -> None:
    h = harvest(make_stream(*STREAM_ARGS)[:1], _new())
    writer = _writer(tmp_path)

    def refuse(commit: Commit) -> None:
        raise RuntimeError("the run directory was replaced")

    writer.save(h, {"batches_done": 1}, refuse)
    with pytest.raises(RuntimeError, match="replaced"):
        writer.save(h, {"batches_done": 1})


# ---------------------------------------------------------------- the pass

N_BATCHES = 8


def _pass(run: RunDir, stop: threading.Event, **kwargs: object) -> HarvestPass:
    source = TinySource()
    config = harvest_config(source, HarvestOptions(n_batches=N_BATCHES))
    reconcile_config(run, config, force_new=False)
    kwargs.setdefault("checkpoint_every_s", 0.0)
    return HarvestPass(source, config, run, StateFile(run), stop=stop, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def background_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "CPU_BACKGROUND", True)


def _component_lines(run: RunDir) -> bytes:
    return run.components_path.read_bytes()


def test_a_pass_with_background_checkpoints_stops_resumes_and_equals_one_pass(
    tmp_path: Path, background_on_cpu: None
) -> None:
    reference = RunDir(tmp_path / "reference")
    with RunLock(reference):
        _pass(reference, threading.Event()).run()

    run = RunDir(tmp_path / "run")
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def on_progress(progress: object) -> None:
        state = StateFile(run).get()
        manifest = read_manifest(run.checkpoint_dir)
        on_disk = 0 if manifest is None else int(manifest.extra["batches_done"])
        seen.append((state.batches_done, on_disk))
        if getattr(progress, "batches_done", 0) == 5:
            stop.set()

    with RunLock(run):
        _pass(run, stop, on_progress=on_progress).run()
    assert all(state <= on_disk for state, on_disk in seen), seen
    state = StateFile(run).get()
    assert state.batches_done == 5 and not state.harvest_complete
    assert read_manifest(run.checkpoint_dir).extra["batches_done"] == 5  # type: ignore[union-attr]
    with RunLock(run):
        _pass(run, threading.Event()).run()
    assert _component_lines(run) == _component_lines(reference)
    state = StateFile(run).get()
    assert state.harvest_complete and state.batches_done == N_BATCHES
    assert [s.batches_done for s in state.starts] == [0, 5]


def test_a_failing_final_checkpoint_fails_the_pass_with_its_error(tmp_path: Path) -> None:
    """The final checkpoint is written in the background while finalize runs; when it fails
    (its directory became a file), the pass raises that error instead of completing."""
    run = RunDir(tmp_path / "run")

    def break_disk(progress: object) -> None:
        if getattr(progress, "batches_done", 0) == N_BATCHES and run.checkpoint_dir.is_dir():
            run.checkpoint_dir.rmdir()  # empty: no periodic checkpoint was due
            run.checkpoint_dir.write_bytes(b"")

    with RunLock(run), pytest.raises(FileExistsError):
        _pass(run, threading.Event(), on_progress=break_disk, checkpoint_every_s=3600).run()
    state = StateFile(run).get()
    assert not state.harvest_complete and not state.finalize_complete
