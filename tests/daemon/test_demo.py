"""The daemon end to end on the embedded demo model (small harvest), offline labeller."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from autointerp.cli import main
from autointerp.daemon.run_state import RunState
from autointerp.schemas import ComponentData, InterpretationResult
from autointerp.store import RunDir, read_json, read_jsonl


def test_demo_runs_end_to_end_with_the_offline_labeller(tmp_path: Path) -> None:
    pytest.importorskip("autointerp.sources.demo")
    sizes = ("--n-batches", "3", "--batch-size", "8", "--context-length", "32")
    argv = ["daemon", "demo", "--device", "cpu", "--data-dir", str(tmp_path), "--plain", *sizes]
    assert main([*argv, "--labeller", "offline"]) == 0
    (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = RunDir(root)
    comps, report = read_jsonl(run.components_path, ComponentData)
    assert comps and not report.bad_lines
    alive = {c.component_key for c in comps if c.firing_count > 0}
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    labelled = Counter(r.component_key for r in results)
    assert alive and set(labelled) == alive and set(labelled.values()) == {1}
    assert all(r.labeller == "offline" and r.label for r in results)
    assert read_json(run.state_path, RunState).phase == "done"
