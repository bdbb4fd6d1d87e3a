"""`autointerp-daemon demo --plain` end to end in a subprocess: no API key, so the offline
labeller; one result per alive component."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from autointerp.files import read_json, read_jsonl
from autointerp.schemas import ComponentData, InterpretationResult, RunState
from autointerp.store import RunDir
from tests.daemon.runner import REPO, child_env

# What the `autointerp-daemon` console script runs.
DAEMON_ENTRY = "from autointerp.cli import daemon_main; raise SystemExit(daemon_main())"


def test_demo_runs_end_to_end_with_the_offline_labeller(tmp_path: Path) -> None:
    sizes = ("--n-batches", "3", "--batch-size", "8", "--context-length", "32")
    argv = ["demo", "--device", "cpu", "--data-dir", str(tmp_path), "--plain", *sizes]
    done = subprocess.run(
        [sys.executable, "-c", DAEMON_ENTRY, *argv],
        cwd=REPO,
        env=child_env(),  # without ANTHROPIC_API_KEY
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "phase done" in done.stdout
    assert "labeller: offline labeller (no ANTHROPIC_API_KEY)" in done.stderr  # said, not guessed
    run = RunDir(tmp_path / "demo")
    comps, report = read_jsonl(run.components_path, ComponentData)
    assert comps and not report.bad_lines
    alive = {c.component_key for c in comps if c.firing_count > 0}
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    labelled = Counter(r.component_key for r in results)
    assert alive and set(labelled) == alive and set(labelled.values()) == {1}
    assert all(r.labeller == "offline" and r.label for r in results)
    assert read_json(run.state_path, RunState).phase == "done"
