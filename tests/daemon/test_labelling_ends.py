"""Labelling that cannot go on (a rejected key) or may not (the budget) ends the daemon cleanly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.daemon.runner import child_env, components, results, run_child, state, tiny_run
from tests.interpret.fake_api import FakeMessagesServer, Fault

KEY = "sk-ant-test-REJECTED-9876543210"


def test_rejected_key_exits_1_with_a_message_and_keeps_the_harvest(tmp_path: Path) -> None:
    with FakeMessagesServer(faults=[Fault.AUTH] * 50) as server:
        done = run_child(
            tmp_path,
            *("--labeller", "claude", "--base-url", server.base_url),
            env=child_env(ANTHROPIC_API_KEY=KEY),
        )
    assert done.returncode == 1, done.stderr
    assert "ANTHROPIC_API_KEY" in done.stderr and "Traceback" not in done.stderr
    assert KEY not in done.stderr + done.stdout
    run = tiny_run(tmp_path)
    assert KEY not in run.log_path.read_text()
    assert state(run).batches_done == 12  # the harvest pass is checkpointed, not lost


def test_a_spend_limit_mid_run_stops_with_the_reason_and_keeps_every_label(
    tmp_path: Path,
) -> None:
    """The organization's monthly limit comes as a 429 `rate_limit_error` with
    `enforced_spend_limit_reached` and no retry-after: retried as a rate limit it would never
    end. The daemon stops once, says why, and keeps the labels it was paid for."""
    paid = 4
    script = [None] * paid + [Fault.SPEND_LIMIT] * 200
    with FakeMessagesServer(faults=script) as server:
        done = run_child(
            tmp_path,
            *("--labeller", "claude", "--base-url", server.base_url, "--max-concurrent", "1"),
            env=child_env(ANTHROPIC_API_KEY=KEY),
        )
        refused = server.outcomes().count("spend_limit")
    assert done.returncode == 1, done.stderr
    assert "spend limit reached" in done.stderr and "Traceback" not in done.stderr
    assert refused == 1  # stopped at the first refusal, no retry storm
    assert KEY not in done.stderr + done.stdout
    assert len(results(tiny_run(tmp_path))) == paid


def test_budget_stops_labelling_but_finalize_completes_and_a_restart_finishes(
    tmp_path: Path,
) -> None:
    claude = ("--labeller", "claude")
    env = child_env(ANTHROPIC_API_KEY=KEY, TINY_WIDE="1")
    with FakeMessagesServer() as server:
        done = run_child(
            tmp_path,
            *claude,
            *("--base-url", server.base_url, "--budget-usd", "0.002", "--max-concurrent", "1"),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        run = tiny_run(tmp_path)
        alive = {c.component_key for c in components(run) if c.firing_count > 0}
        first = len(results(run))
        assert 0 < first < len(alive)
        assert state(run).phase == "label" and len(components(run)) == 96
        assert "budget" in done.stdout + done.stderr
        again = run_child(tmp_path, *claude, "--base-url", server.base_url, env=env)
        assert again.returncode == 0, again.stderr
    labelled = Counter(r.component_key for r in results(run))
    assert set(labelled) == alive and set(labelled.values()) == {1}
    assert state(run).phase == "done"
