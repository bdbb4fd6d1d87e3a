"""A second daemon on the same run, and a changed harvest configuration, are refused (exit 2)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from autointerp.store import RunLock
from tests.daemon.runner import (
    child_env,
    components,
    run_child,
    run_inprocess,
    spawn,
    state,
    tiny_run,
)


def test_second_daemon_on_the_same_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = tiny_run(tmp_path)
    with RunLock(run):
        done = run_child(tmp_path, "--labeller", "none")
    assert done.returncode == 2
    assert f"pid {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not run.config_path.exists()


def test_changed_configuration_is_refused_with_the_differences(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "none", "--n-batches", "4") == 0
    run = tiny_run(tmp_path)
    before = run.components_path.read_bytes()
    done = run_child(tmp_path, "--labeller", "none", "--n-batches", "5", "--ci-threshold", "0.5")
    assert done.returncode == 2, done.stderr
    assert "n_batches: 4 → 5" in done.stderr
    assert "ci_threshold: 0.0 → 0.5" in done.stderr
    assert "--force-new-harvest" in done.stderr and "Traceback" not in done.stderr
    assert run.components_path.read_bytes() == before


def test_force_new_harvest_moves_the_old_run_aside(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline", "--n-batches", "4") == 0
    run = tiny_run(tmp_path)
    old_components = run.components_path.read_bytes()
    old_results = run.results_path.read_bytes()
    assert (
        run_inprocess(tmp_path, "--labeller", "none", "--n-batches", "5", "--force-new-harvest")
        == 0
    )
    backups = list(run.root.glob("backup-*"))
    assert len(backups) == 1
    assert (backups[0] / "harvest" / "components.jsonl").read_bytes() == old_components
    assert (backups[0] / "interpretations" / "results.jsonl").read_bytes() == old_results
    assert state(run).batches_done == 5 and len(components(run)) > 0


def test_a_pass_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path: Path) -> None:
    done = run_child(tmp_path, "--labeller", "none", "--examples-per-component", "10000000000")
    assert done.returncode == 2, done.stderr
    assert "the harvest needs" in done.stderr and "Traceback" not in done.stderr
    assert not tiny_run(tmp_path).config_path.exists()  # nothing written: a rerun is not "changed"


def test_a_run_directory_moved_away_under_the_daemon_stops_it(tmp_path: Path) -> None:
    env = child_env(TINY_STEP_DELAY="0.05")
    args = ("--labeller", "offline", "--n-batches", "400", "--checkpoint-every", "0.2")
    proc = spawn(tmp_path, *args, env=env, log=tmp_path / "out.log")
    run = tiny_run(tmp_path)
    deadline = time.monotonic() + 60
    while not (run.state_path.exists() and state(run).batches_done > 0):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    moved = tmp_path / "moved"
    run.root.rename(moved)
    assert proc.wait(timeout=30) == 1
    assert "removed or replaced" in (tmp_path / "out.log").read_text()
    assert not run.root.exists()  # nothing was recreated at the old path
    assert (moved / "harvest" / "state.json").exists()
