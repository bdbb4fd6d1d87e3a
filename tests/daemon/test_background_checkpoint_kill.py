"""kill -9 while a checkpoint is written in the background: `state.json` must not name it.

The daemon runs as a real subprocess with background checkpoints switched on for the CPU and a
slow disk (every write of the payload takes 30 ms longer), so that the harvest goes on for many
batches while a checkpoint is being written. It is killed while the second checkpoint's temp
file exists; then `state.json` names at most what the manifest on disk commits, the load ignores
the uncommitted file, and a restart resumes from the manifest and ends with exactly the records
of an uninterrupted pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from autointerp.harvest.checkpoint import read_manifest
from autointerp.schemas import RunState
from autointerp.store import RunDir
from tests.daemon.runner import (
    REPO,
    child_env,
    component_bytes,
    daemon_args,
    run_inprocess,
    tiny_run,
)

N_BATCHES = 100
OPTIONS = ("--n-batches", str(N_BATCHES), "--checkpoint-every", "1.5", "--labeller", "none")
CHILD = """
import sys, time
from autointerp.harvest import checkpoint, writer
writer.CPU_BACKGROUND = True
real_write = checkpoint._HashingWriter.write
def slow_write(self, data):  # a slow disk; the bytes are still written
    time.sleep(0.03)
    return real_write(self, data)
checkpoint._HashingWriter.write = slow_write
from autointerp.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _state(run: RunDir) -> RunState:
    try:
        return msgspec.json.decode(run.state_path.read_bytes(), type=RunState)
    except (FileNotFoundError, msgspec.DecodeError):
        return RunState()


def _being_written(run: RunDir) -> list[int]:
    """Batch numbers of payload temp files in the checkpoint directory."""
    try:
        names = os.listdir(run.checkpoint_dir)
    except FileNotFoundError:
        return []
    return [int(n.split("-")[1]) for n in names if n.startswith(".state-") and ".tmp" in n]


@pytest.mark.slow
def test_kill_9_during_a_background_write_keeps_state_json_behind_the_manifest(
    tmp_path: Path,
) -> None:
    assert run_inprocess(tmp_path / "reference", *OPTIONS) == 0
    reference = tiny_run(tmp_path / "reference")

    data = tmp_path / "killed"
    run = tiny_run(data)
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *daemon_args(data, *OPTIONS)],
        cwd=REPO,
        env=child_env(TINY_STEP_DELAY="0.05"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    in_flight: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            committed = _state(run).batches_done
            in_flight = [b for b in _being_written(run) if b > committed > 0]
            if in_flight:
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    assert in_flight, (tmp_path / "daemon.log").read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL

    state = _state(run)
    manifest = read_manifest(run.checkpoint_dir)
    assert manifest is not None
    on_disk = int(manifest.extra["batches_done"])
    assert 0 < state.batches_done <= on_disk < N_BATCHES, (state.batches_done, on_disk)
    assert not state.harvest_complete
    left = _being_written(run)
    assert all(b > on_disk for b in left), (left, on_disk)  # uncommitted, ignored by the load

    assert run_inprocess(data, *OPTIONS) == 0
    assert component_bytes(run) == component_bytes(reference)
    starts = _state(run).starts
    assert [s.batches_done for s in starts] == [0, on_disk]
