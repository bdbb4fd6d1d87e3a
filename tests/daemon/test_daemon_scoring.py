"""`--score` on the daemon: each label is scored right after it is written, through the
labeller's client and budget, exactly once across restarts and `kill -9`; the dashboard's summary
and `status` show each scorer's mean with its interval."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from autointerp.files import read_jsonl
from autointerp.schemas import ScoreRecord
from autointerp.store import RunReader
from tests.daemon.runner import REPO, child_env, results, run_child, spawn, tiny_run
from tests.interpret.fake_api import FakeMessagesServer, default_answer
from tests.interpret.test_scorers import oracle

ALL = ("detection", "fuzzing", "intruder", "simulation", "output")
KEY = "sk-ant-daemon-score-7720"


def records(data: Path, scorer: str) -> list[ScoreRecord]:
    found, report = read_jsonl(tiny_run(data).score_path(scorer), ScoreRecord)
    assert not report.bad_lines and not report.torn_tail
    return found


def answer(body: dict[str, Any]) -> str:
    """Labels for labelling prompts, well-formed answers for the scorers' questions."""
    system = "".join(block["text"] for block in body["system"])
    return oracle(body) if system.startswith("You test an interpretation") else default_answer(body)


def assert_scored_once(data: Path, scorers: tuple[str, ...]) -> set[str]:
    labelled = {r.component_key for r in results(tiny_run(data))}
    assert labelled
    for scorer in scorers:
        keys = Counter(r.component_key for r in records(data, scorer))
        assert set(keys) == labelled and set(keys.values()) == {1}, scorer
    return labelled


def test_offline_daemon_scores_each_label_once_and_shows_the_means(tmp_path: Path) -> None:
    done = run_child(tmp_path, "--labeller", "offline", "--context-tokens", "3", "--score")
    assert done.returncode == 0, done.stderr
    assert_scored_once(tmp_path, ALL)
    summary = msgspec.json.decode(tiny_run(tmp_path).scores_summary_path.read_bytes())
    assert set(summary) == set(ALL)
    # The final summary names each scorer's mean, its interval and n.
    n = summary["detection"]["overall"]["n"]
    assert "scoring   " in done.stdout and f"n={n}" in done.stdout
    mean = summary["detection"]["overall"]["mean"]
    assert f"detection {mean:.3f} [" in done.stdout
    status = subprocess.run(
        [sys.executable, "-m", "autointerp", "status", "tiny", "--data-dir", str(tmp_path)],
        cwd=REPO, env=child_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "detection" in status.stdout and "output" in status.stdout
    # A second start finds every pair scored: nothing is written twice.
    before = {s: tiny_run(tmp_path).score_path(s).read_bytes() for s in ALL}
    again = run_child(tmp_path, "--labeller", "offline", "--context-tokens", "3", "--score")
    assert again.returncode == 0, again.stderr
    assert before == {s: tiny_run(tmp_path).score_path(s).read_bytes() for s in ALL}


def test_a_later_start_scores_the_labels_of_an_earlier_one(tmp_path: Path) -> None:
    """Labels written without --score are scored when the run is started again with it."""
    first = run_child(tmp_path, "--labeller", "offline", "--context-tokens", "3")
    assert first.returncode == 0 and not tiny_run(tmp_path).scores_dir.exists()
    again = run_child(
        tmp_path, "--labeller", "offline", "--context-tokens", "3", "--score", "detection,output"
    )
    assert again.returncode == 0, again.stderr
    assert_scored_once(tmp_path, ("detection", "output"))
    assert not tiny_run(tmp_path).score_path("fuzzing").exists()


def test_claude_labels_are_scored_as_they_arrive_through_one_client(tmp_path: Path) -> None:
    env = child_env(ANTHROPIC_API_KEY=KEY)
    with FakeMessagesServer(answer=answer, latency=0.05) as srv:
        done = run_child(
            tmp_path, "--context-tokens", "3", "--base-url", srv.base_url, "--max-concurrent",
            "2", "--score", "detection,output", env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    labelled = assert_scored_once(tmp_path, ("detection", "output"))
    labels = results(tiny_run(tmp_path))
    scores = records(tmp_path, "detection") + records(tmp_path, "output")
    # Streaming: scoring began while labels were still being written.
    assert min(r.timestamp for r in scores) < max(r.timestamp for r in labels)
    assert all(r.answerer == "claude" for r in scores)
    assert all(r.cost_usd > 0 for r in scores if r.n)  # no trials (too little data): no request
    by_key = {r.component_key: r for r in labels}
    assert all(r.label == by_key[r.component_key].output_label for r in records(tmp_path, "output"))
    # One budget and one account: the run's cost is labels plus scores.
    total = sum(r.cost_usd for r in labels) + sum(r.cost_usd for r in scores)
    assert f"cost ${total:,.4f}" in done.stdout
    assert len(labelled) == 14
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_scoring_stops_at_the_shared_budget(tmp_path: Path) -> None:
    budget = "0.01"
    env = child_env(ANTHROPIC_API_KEY=KEY)
    with FakeMessagesServer(answer=answer) as srv:
        done = run_child(
            tmp_path, "--context-tokens", "3", "--base-url", srv.base_url, "--score",
            "--budget-usd", budget, env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    run = tiny_run(tmp_path)
    spent = sum(r.cost_usd for r in results(run)) + RunReader(run).scoring_cost()[0]
    # Requests already sent when the budget ran out still count: at most one round over.
    assert float(budget) <= spent < float(budget) + 0.01
    assert "budget" in done.stdout


def test_kill_9_while_the_daemon_scores_then_restart_scores_each_pair_once(
    tmp_path: Path,
) -> None:
    env = child_env(ANTHROPIC_API_KEY=KEY)
    run = tiny_run(tmp_path)
    args = ("--context-tokens", "3", "--max-concurrent", "2", "--score", "detection,intruder")
    with FakeMessagesServer(answer=answer, latency=0.05) as srv:
        proc = spawn(tmp_path, *args, "--base-url", srv.base_url, env=env)
        path = run.score_path("detection")
        deadline = time.monotonic() + 60
        while not (path.exists() and path.read_bytes().count(b"\n") >= 3):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        scored_before = {s: set(RunReader(run).scores(s)) for s in ("detection", "intruder")}
        again = run_child(tmp_path, *args, "--base-url", srv.base_url, env=env, timeout=120)
        assert again.returncode == 0, again.stderr
    labelled = assert_scored_once(tmp_path, ("detection", "intruder"))
    assert Counter(r.component_key for r in results(run)).most_common(1)[0][1] == 1
    assert any(labelled - keys for keys in scored_before.values())  # the kill landed mid-run


def test_score_without_labels_or_held_out_windows_is_refused(tmp_path: Path) -> None:
    none = run_child(tmp_path, "--labeller", "none", "--score")
    assert none.returncode == 2 and "--score needs labels" in none.stderr
    bare = run_child(
        tmp_path, "--labeller", "offline", "--score", "--heldout-per-component", "0",
        "--negatives-per-component", "0", "--hard-negatives-per-component", "0",
    )  # fmt: skip
    assert bare.returncode == 2 and "--score needs held-out windows" in bare.stderr
    unknown = run_child(tmp_path, "--labeller", "offline", "--score", "vibes")
    assert unknown.returncode == 2 and "unknown vibes" in unknown.stderr
    for done in (none, bare, unknown):
        assert "Traceback" not in done.stderr
