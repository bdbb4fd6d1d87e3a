"""`autointerp score` on a real harvested and labelled run: one record per component and scorer,
exactly once across restarts and `kill -9`, the offline simulator without a key, clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec

from autointerp.files import read_jsonl
from autointerp.schemas import ScoreRecord
from autointerp.store import RunReader
from tests.daemon.runner import REPO, child_env, results, run_inprocess, tiny_run
from tests.interpret.fake_api import FakeMessagesServer
from tests.interpret.test_scorers import oracle

SCORERS = ("detection", "fuzzing", "intruder", "simulation", "output")
KEY = "sk-ant-score-cmd-5521"


def score(
    data: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "autointerp", "score", "tiny", "--data-dir", str(data)]
    return subprocess.run([*command, *extra], cwd=REPO, env=env or child_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def records(data: Path, scorer: str) -> list[ScoreRecord]:
    found, report = read_jsonl(tiny_run(data).score_path(scorer), ScoreRecord)
    assert not report.bad_lines and not report.torn_tail
    return found


def test_offline_scoring_writes_one_record_per_component_and_scorer_once(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline", "--context-tokens", "3") == 0
    labelled = {r.component_key for r in results(tiny_run(tmp_path))}
    done = score(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "scoring with offline (no ANTHROPIC_API_KEY)" in done.stderr
    for scorer in SCORERS:
        keys = Counter(r.component_key for r in records(tmp_path, scorer))
        assert set(keys) == labelled and set(keys.values()) == {1}, scorer
        assert all(r.answerer == "offline" and r.cost_usd == 0 for r in records(tmp_path, scorer))
    # Each scorer read its side of the offline labeller's answer; intruder read none.
    labels = {r.component_key: r for r in results(tiny_run(tmp_path))}
    for r in records(tmp_path, "detection"):
        assert (r.side, r.label) == ("input", labels[r.component_key].input_label)
    for r in records(tmp_path, "output"):
        assert (r.side, r.label) == ("output", labels[r.component_key].output_label)
    assert all((r.side, r.label) == ("", "") for r in records(tmp_path, "intruder"))
    summary = msgspec.json.decode(tiny_run(tmp_path).scores_summary_path.read_bytes())
    assert set(summary) == set(SCORERS)
    assert summary["detection"]["overall"]["n"] + summary["detection"]["overall"][
        "unscored"
    ] == len(labelled)
    status = subprocess.run(
        [sys.executable, "-m", "autointerp", "status", "tiny", "--data-dir", str(tmp_path),
         "--json"],
        cwd=REPO, env=child_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    shown = msgspec.json.decode(status.stdout)["scores"]
    assert set(shown) == set(SCORERS)
    assert shown["detection"]["n"] == summary["detection"]["overall"]["n"]
    before = {s: tiny_run(tmp_path).score_path(s).read_bytes() for s in SCORERS}
    again = score(tmp_path)
    assert again.returncode == 0 and "0 (component, scorer) pairs to score" in again.stderr
    assert before == {s: tiny_run(tmp_path).score_path(s).read_bytes() for s in SCORERS}


def test_kill_9_while_scoring_then_restart_scores_each_pair_exactly_once(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline", "--context-tokens", "3") == 0
    run = tiny_run(tmp_path)
    labelled = {r.component_key for r in results(run)}
    env = child_env(ANTHROPIC_API_KEY=KEY)
    args = ("--scorers", "detection,intruder", "--max-concurrent", "2")
    with FakeMessagesServer(answer=oracle, latency=0.05) as srv:
        command = [sys.executable, "-m", "autointerp", "score", "tiny", "--data-dir",
                   str(tmp_path), "--base-url", srv.base_url, *args]  # fmt: skip
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        path = run.score_path("detection")
        deadline = time.monotonic() + 60
        while not (path.exists() and path.read_bytes().count(b"\n") >= 3):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        first = {s: set(RunReader(run).scores(s)) for s in ("detection", "intruder")}
        asked_before = len(srv.requests)
        again = subprocess.run([*command], cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stderr
        resent = len(srv.requests) - asked_before
    for scorer in ("detection", "intruder"):
        keys = Counter(r.component_key for r in records(tmp_path, scorer))
        assert set(keys) == labelled and set(keys.values()) == {1}, scorer
        assert all(r.answerer == "claude" for r in records(tmp_path, scorer))
    # The restart asked only for what had no record (plus, at most, what was in flight).
    remaining = sum(len(labelled - first[s]) for s in first)
    assert remaining > 0  # the kill did land mid-run
    assert resent <= 4 * remaining + 8
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_user_mistakes_are_one_clear_message(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "none", "--heldout-per-component", "0",
                         "--negatives-per-component", "0",
                         "--hard-negatives-per-component", "0") == 0  # fmt: skip
    bad = score(tmp_path, "--scorers", "detection,vibes")
    assert bad.returncode == 2 and "unknown vibes" in bad.stderr
    no_heldout = score(tmp_path)
    assert no_heldout.returncode == 2 and "heldout.jsonl is missing" in no_heldout.stderr
    for done in (bad, no_heldout):
        assert "Traceback" not in done.stderr
