"""Helpers to run the real daemon (in-process or as a subprocess) on the tiny test source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

from autointerp.cli import main
from autointerp.files import read_json, read_jsonl
from autointerp.schemas import ComponentData, InterpretationResult, RunState
from autointerp.store import RunDir

REPO = Path(__file__).resolve().parents[2]
TINY = "py:tests.daemon.tiny_source:make"


def daemon_args(data_dir: Path, *extra: str) -> list[str]:
    return ["daemon", TINY, "--data-dir", str(data_dir), "--plain", "--status-every", "60", *extra]


def run_inprocess(data_dir: Path, *extra: str) -> int:
    return main(daemon_args(data_dir, *extra))


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def spawn(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the daemon as a child process; its stdout and stderr go to `log` (or are dropped)."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "autointerp", *daemon_args(data_dir, *extra)],
            cwd=REPO,
            env=env or child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def run_child(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autointerp", *daemon_args(data_dir, *extra)],
        cwd=REPO,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tiny_run(data_dir: Path) -> RunDir:
    return RunDir.for_run(data_dir, "tiny")


def components(run: RunDir) -> list[ComponentData]:
    records, report = read_jsonl(run.components_path, ComponentData)
    assert not report.bad_lines
    return records


def results(run: RunDir) -> list[InterpretationResult]:
    records, report = read_jsonl(run.results_path, InterpretationResult)
    assert not report.bad_lines
    return records


def state(run: RunDir) -> RunState:
    return read_json(run.state_path, RunState)


def component_bytes(run: RunDir) -> list[bytes]:
    """components.jsonl as canonical lines (decoded and re-encoded), for exact comparison."""
    return [msgspec.json.encode(c) for c in components(run)]
