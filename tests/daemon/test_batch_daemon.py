"""The daemon with `--batch` against the loopback Message Batches server: `kill -9` during a
submission, while batches are polled and while their results are written, then a restart;
every alive component ends with exactly one label, the server counts no entry paid twice, and
the recorded cost is half the list price of exactly what the server billed."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from autointerp.interpret.llm.batch_ledger import BatchRecord
from autointerp.interpret.llm.pricing import HAIKU_4_5, Usage, batch_price, cost_usd
from autointerp.store import RunDir
from tests.daemon.runner import (
    child_env,
    components,
    results,
    run_child,
    run_inprocess,
    spawn,
    tiny_run,
)
from tests.daemon.test_daemon_scoring import answer, assert_scored_once
from tests.daemon.test_daemon_scoring import records as score_records
from tests.interpret.fake_batches import FakeBatchServer

KEY = "sk-ant-batch-daemon-3c1d-never-print"
POLL = 0.01


def batch_args() -> tuple[str, ...]:
    return (
        "--labeller", "claude", "--batch", "--batch-requests", "16", "--batch-max-wait-s", "0.3",
        "--batch-poll-s", "0.1", "--timeout", "1", "--plain",
    )  # fmt: skip


def records(run: RunDir) -> list[BatchRecord]:
    out = []
    for path in run.batches_dir.glob("*.json"):
        try:
            out.append(msgspec.json.decode(path.read_bytes(), type=BatchRecord))
        except (OSError, msgspec.DecodeError):
            continue  # replaced while read
    return out


def refused_once(custom_id: str, params: object, submission: int) -> str | None:
    """In the first batch, a fifth of the questions are refused (asked again in a later one)."""
    return "refusal" if submission == 0 and zlib.crc32(custom_id.encode()) % 5 == 0 else None


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for(target: str, proc: subprocess.Popen[bytes], run: RunDir, rng: random.Random) -> str:
    """Poll until the daemon is at `target`; return what the kill hit."""
    known = {r.local_id for r in records(run)}
    labelled = lines(run.results_path)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        fresh = [r for r in records(run) if r.local_id not in known]
        if target == "submission" and any(r.status == "submitting" for r in fresh):
            return "submission"
        if target == "polling" and any(r.status == "in_progress" for r in fresh):
            time.sleep(rng.uniform(0.0, 0.3))
            return "polling"
        if target == "results" and lines(run.results_path) > labelled:
            return "results"
        time.sleep(POLL)
    return "exited" if proc.poll() is not None else "timeout"


def test_kill_9_in_submission_polling_and_results_pays_once_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_WIDE", "1")  # enough components for several batches
    assert run_inprocess(tmp_path, "--labeller", "none") == 0  # the harvest, once
    run = tiny_run(tmp_path)
    alive = {c.component_key for c in components(run) if c.firing_count > 0}
    rng = random.Random(11)
    log = tmp_path / "daemon.log"
    with FakeBatchServer(
        seed=11,
        process_s=0.8,
        create_latency_s=0.15,  # a window in which the batch exists but its id is not ours yet
        entry_fault_rate=0.25,
        entry_fault_kinds=["errored_transient", "expired"],
        entry_outcome=refused_once,  # asked again as a new entry, both paid for
    ) as srv:
        env = child_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url)
        hits = []
        for target in ("submission", "polling", "results", "submission", "polling", "results"):
            proc = spawn(tmp_path, *batch_args(), env=env, log=log)
            try:
                hits.append(wait_for(target, proc, run, rng))
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
        final = spawn(tmp_path, *batch_args(), env=env, log=log)
        assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
        paid_twice = srv.paid_twice()
        billed = Usage(**srv.billed_usage())
        created = srv.batches_created()
    labels = results(run)
    notes = Counter(r.note.split(":")[0] for r in records(run) if r.note)
    print(
        f"batch chaos: kills hit {hits}; {len(created)} batches created, {len(alive)} alive; "
        f"records: {dict(notes)}"
    )
    assert {"submission", "polling", "results"} <= set(hits), hits
    assert paid_twice == []
    assert Counter(r.component_key for r in labels) == dict.fromkeys(alive, 1)
    recorded = Usage(
        sum(r.input_tokens for r in labels),
        sum(r.output_tokens for r in labels),
        sum(r.cache_creation_input_tokens for r in labels),
        sum(r.cache_read_input_tokens for r in labels),
    )
    assert recorded == billed  # every billed entry recorded once, nothing more
    half = cost_usd(batch_price(HAIKU_4_5), billed)
    assert sum(r.cost_usd for r in labels) == pytest.approx(half)
    assert all(r.cost_known for r in labels)
    assert {r.batch_id for r in records(run) if r.status != "abandoned"} <= set(created)
    assert KEY not in log.read_text()
    assert all(KEY.encode() not in p.read_bytes() for p in run.root.rglob("*") if p.is_file())


def test_labels_and_scores_go_through_batches_once_each_at_half_price(tmp_path: Path) -> None:
    """`--batch --score`: labels, then the scorers' questions, in batches; `status` shows them."""
    with FakeBatchServer(seed=2, process_s=0.3, answer=answer) as srv:
        env = child_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url)
        done = run_child(tmp_path, *batch_args(), "--score", "detection,output", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert srv.paid_twice() == []
        billed = Usage(**srv.billed_usage())
        asked_directly = len(srv.requests)  # plain /v1/messages requests
    assert asked_directly == 0  # everything went through batches
    labelled = assert_scored_once(tmp_path, ("detection", "output"))
    run = tiny_run(tmp_path)
    scored = [r for name in ("detection", "output") for r in score_records(tmp_path, name)]
    spent = sum(r.cost_usd for r in results(run)) + sum(r.cost_usd for r in scored)
    assert spent == pytest.approx(cost_usd(batch_price(HAIKU_4_5), billed))
    assert len(labelled) == len(results(run))
    assert "batches: " in done.stdout  # the summary's batch line
    status = subprocess.run(
        [sys.executable, "-m", "autointerp", "status", "tiny", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert status.returncode == 0 and "batches " in status.stdout and " ended" in status.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--labeller", "offline", "--batch"), "--batch asks the API, but the labeller is offline"),
        (("--batch-requests", "5"), "go with --batch"),
        (("--labeller", "claude", "--batch", "--batch-requests", "200000"), "at most 100,000"),
        (
            ("--labeller", "claude", "--batch", "--provider", "openai", "--model", "m"),
            "--provider openai has none here",
        ),
    ],
)
def test_batch_mistakes_are_one_message_before_any_work(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    env = child_env(ANTHROPIC_API_KEY=KEY, OPENAI_API_KEY=KEY)
    done = run_child(tmp_path, *extra, env=env)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "tiny").exists()


def test_the_budget_counts_what_waits_in_batches(tmp_path: Path) -> None:
    """20,000 requests may wait at once: the budget counts their estimated cost as they are
    asked, so it stops new components instead of being overrun by what is in flight."""
    budget = 0.005  # a few labels at the batch price
    with FakeBatchServer(seed=4, process_s=0.3) as srv:
        env = child_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url)
        done = run_child(tmp_path, *batch_args(), "--budget-usd", str(budget), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        billed = Usage(**srv.billed_usage())
    labels = results(tiny_run(tmp_path))
    alive = {c.component_key for c in components(tiny_run(tmp_path)) if c.firing_count > 0}
    spent = sum(r.cost_usd for r in labels)
    assert 0 < len(labels) < len(alive)
    assert spent == pytest.approx(cost_usd(batch_price(HAIKU_4_5), billed))
    assert spent <= budget
    assert "budget" in done.stdout + done.stderr
