"""kill -9 the daemon again and again in every phase; the restarts must still end exactly right.

The daemon runs as a real subprocess on the tiny source (slowed per batch so that each phase
lasts long enough). Each round waits for a moment in its target phase (harvest, a checkpoint
being written, finalize, labelling), sends SIGKILL, checks what a restart will resume from, and
starts again. At the end: every alive component has exactly one label, every file parses, the
statistics equal an uninterrupted run's, and no restart after a checkpoint began at batch 0.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from autointerp.files import read_jsonl
from autointerp.schemas import ComponentData, InterpretationResult, RunState
from autointerp.store import RunDir
from tests.daemon.runner import child_env, component_bytes, run_inprocess, spawn, tiny_run

N_BATCHES = 30
OPTIONS = ("--n-batches", str(N_BATCHES), "--checkpoint-every", "0.1", "--labeller", "offline")
SLOW = {"TINY_WIDE": "1", "TINY_STEP_DELAY": "0.04", "TINY_DECODE_DELAY": "0.002"}
TARGETS = ["harvest", "checkpoint", "harvest", "finalize", "label", "label"]
ROUND_SEEDS = (11, 23)
POLL = 0.002


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _state(run: RunDir) -> RunState:
    try:
        return msgspec.json.decode(run.state_path.read_bytes(), type=RunState)
    except (FileNotFoundError, msgspec.DecodeError):
        return RunState()


def _checkpoint_being_written(run: RunDir) -> bool:
    try:
        return any(".tmp" in name for name in os.listdir(run.checkpoint_dir))
    except FileNotFoundError:
        return False


def _wait_for(target: str, proc: subprocess.Popen[bytes], run: RunDir, rng: random.Random) -> str:
    """Poll until the daemon is inside `target`; return what the kill hit ('exited' if none)."""
    s0 = _state(run)
    starts, checkpoint0 = len(s0.starts), s0.last_checkpoint_at
    components0, results0 = _size(run.components_path), _size(run.results_path)
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        s = _state(run)
        started = len(s.starts) > starts
        checkpointed = s.last_checkpoint_at != checkpoint0
        if target == "harvest" and started and checkpointed and not s.harvest_complete:
            time.sleep(rng.uniform(0.0, 0.2))
            return "harvest" if not _state(run).harvest_complete else "after harvest"
        if target == "checkpoint" and started and _checkpoint_being_written(run):
            return "checkpoint"
        if target == "checkpoint" and started and s.harvest_complete:
            return "after harvest"
        if target == "finalize" and _size(run.components_path) > components0:
            return "finalize" if not _state(run).finalize_complete else "after finalize"
        if target == "label" and _size(run.results_path) > results0:
            return "label"
        time.sleep(POLL)
    return "exited" if proc.poll() is not None else "timeout"


def _kill_round(
    data: Path, env: dict[str, str], rng: random.Random, log: Path
) -> tuple[list[str], list[int]]:
    """One harvest-to-done life of a run, killed once per target; then a clean finish."""
    run = tiny_run(data)
    hits: list[str] = []
    checkpointed_before_restart: list[int] = []
    for target in TARGETS:
        proc = spawn(data, *OPTIONS, env=env, log=log)
        try:
            hit = _wait_for(target, proc, run, rng)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        hits.append(hit)
        checkpointed_before_restart.append(_state(run).batches_done)
        if hit == "exited":
            break
    final = spawn(data, *OPTIONS, env=env, log=log)
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
    return hits, checkpointed_before_restart


def _check_round(run: RunDir, reference: RunDir, checkpointed_before_restart: list[int]) -> None:
    # The files parse completely and every alive component has exactly one label.
    comps, report = read_jsonl(run.components_path, ComponentData)
    assert not report.bad_lines and not report.torn_tail
    results, report = read_jsonl(run.results_path, InterpretationResult)
    assert not report.bad_lines and not report.torn_tail
    alive = {c.component_key for c in comps if c.firing_count > 0}
    labelled = Counter(r.component_key for r in results)
    assert set(labelled) == alive and set(labelled.values()) == {1}

    # Statistics equal those of one uninterrupted pass over the same batches.
    assert component_bytes(run) == component_bytes(reference)

    # Every restart resumed from (at least) the last checkpoint, never from batch 0 after one.
    s = _state(run)
    resumed = [start.batches_done for start in s.starts]
    assert resumed == sorted(resumed)
    for start, saved in zip(s.starts[1:], checkpointed_before_restart, strict=False):
        assert start.batches_done >= saved
    assert any(0 < b < N_BATCHES for b in resumed), resumed
    assert s.phase == "done"


@pytest.mark.slow
def test_kill_9_in_every_phase_then_resume_gives_exact_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_WIDE", "1")
    assert run_inprocess(tmp_path / "reference", *OPTIONS[:2], "--labeller", "none") == 0
    reference = tiny_run(tmp_path / "reference")
    env = child_env(**SLOW)
    all_hits: list[str] = []
    for seed in ROUND_SEEDS:
        data = tmp_path / f"chaos-{seed}"
        hits, saved = _kill_round(data, env, random.Random(seed), tmp_path / "daemon.log")
        _check_round(tiny_run(data), reference, saved)
        all_hits += hits
    print("chaos kills hit:", all_hits)
    kills = [h for h in all_hits if h not in ("exited", "timeout")]
    assert len(kills) >= 10, all_hits
    assert {"harvest", "finalize", "label"} <= set(all_hits), all_hits
