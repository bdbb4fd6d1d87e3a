"""`autointerp status` reads a run without writing anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from tests.daemon.runner import REPO, child_env, run_inprocess, tiny_run


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_status_reports_a_finished_run_and_writes_nothing(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline") == 0
    run = tiny_run(tmp_path)
    before = _tree(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autointerp",
            "status",
            "tiny",
            "--data-dir",
            str(tmp_path),
            "--json",
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    status = msgspec.json.decode(done.stdout)
    assert status["phase"] == "done" and status["daemon_pid"] is None
    assert status["labelled"] == status["alive"] == 14 and status["remaining"] == 0
    assert status["components_written"] == status["components_total"] == 15
    assert _tree(tmp_path) == before
    text = subprocess.run(
        [sys.executable, "-m", "autointerp", "status", str(run.root)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "phase      done" in text and "14 labelled" in text


def test_status_of_a_missing_run_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autointerp", "status", "nope", "--data-dir", str(tmp_path)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no run directory" in done.stderr
