"""The daemon with `--provider openai` against the loopback chat-completions server: it labels
(and scores) the tiny source end to end, keeps the key out of every file, stops cleanly on a
rejected key, and survives `kill -9` in every phase with exactly one label per component."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.daemon.runner import (
    REPO,
    child_env,
    component_bytes,
    components,
    results,
    run_child,
    run_inprocess,
    spawn,
    tiny_run,
)
from tests.daemon.test_chaos import N_BATCHES, SLOW, TARGETS, _check_round, _state, _wait_for
from tests.daemon.test_daemon_scoring import answer, assert_scored_once
from tests.interpret.fake_openai import CONTENT_FAULTS, TRANSIENT_FAULTS, FakeChatServer, Fault

KEY = "sk-proj-daemon-openai-5fe1-never-print"
MODEL = "some-model"


def openai_env(**extra: str) -> dict[str, str]:
    """The child's environment without any OPENAI_* variable of the machine running the tests."""
    env = {k: v for k, v in child_env().items() if not k.startswith("OPENAI_")}
    return env | extra


def openai_args(srv: FakeChatServer, *extra: str) -> tuple[str, ...]:
    return ("--provider", "openai", "--base-url", srv.base_url, "--model", MODEL, *extra)


def alive_keys(data: Path) -> set[str]:
    return {c.component_key for c in components(tiny_run(data)) if c.firing_count > 0}


def test_a_local_server_labels_and_scores_the_tiny_source_without_a_key(tmp_path: Path) -> None:
    with FakeChatServer(answer=answer, latency=0.01) as srv:
        done = run_child(
            tmp_path,
            *openai_args(srv, "--context-tokens", "3", "--score", "detection,output"),
            env=openai_env(),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert {r.headers["authorization"] for r in srv.requests} == {"Bearer none"}
    labels = results(tiny_run(tmp_path))
    assert Counter(r.component_key for r in labels) == dict.fromkeys(alive_keys(tmp_path), 1)
    assert all((r.labeller, r.model) == ("openai", MODEL) for r in labels)
    assert all(not r.cost_known and r.input_tokens > 0 for r in labels)  # no price: unknown
    assert_scored_once(tmp_path, ("detection", "output"))
    assert f"openai {MODEL} (the base URL is a local server" in done.stderr


def test_key_and_prices_with_faults_cost_is_recorded_and_the_key_written_nowhere(
    tmp_path: Path,
) -> None:
    prices = ("--price-input-per-mtok", "0.5", "--price-output-per-mtok", "2")
    kinds = [f for f in (*TRANSIENT_FAULTS, *CONTENT_FAULTS) if f is not Fault.SLOW]  # fast
    with FakeChatServer(fault_rate=0.2, fault_kinds=kinds, seed=3, retry_after_s=0.02) as srv:
        done = run_child(
            tmp_path,
            *openai_args(srv, *prices, "--timeout", "5"),
            env=openai_env(OPENAI_API_KEY=KEY),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert {r.headers["authorization"] for r in srv.requests} == {f"Bearer {KEY}"}
        assert set(srv.outcomes()) - {"ok"}  # faults were met, and retried
    labels = results(tiny_run(tmp_path))
    assert {r.component_key for r in labels} == alive_keys(tmp_path)
    assert all(r.cost_known and r.cost_usd > 0 for r in labels)
    for r in labels:  # cached input at the full input price: the price options' upper bound
        paid = (r.input_tokens + r.cache_read_input_tokens) * 0.5 + r.output_tokens * 2.0
        assert r.cost_usd == pytest.approx(paid / 1e6)
    assert KEY not in done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_rejected_key_exits_1_naming_the_variable(tmp_path: Path) -> None:
    with FakeChatServer(faults=[Fault.AUTH] * 50) as srv:
        done = run_child(tmp_path, *openai_args(srv), env=openai_env(OPENAI_API_KEY=KEY))
    assert done.returncode == 1, done.stderr
    assert "OPENAI_API_KEY" in done.stderr and "Traceback" not in done.stderr
    assert KEY not in done.stderr + done.stdout
    assert KEY not in tiny_run(tmp_path).log_path.read_text()


def test_usage_mistakes_are_one_message_before_any_harvest(tmp_path: Path) -> None:
    env = openai_env(OPENAI_API_KEY=KEY)
    no_model = run_child(tmp_path, "--provider", "openai", "--labeller", "claude", env=env)
    assert no_model.returncode == 2 and "--provider openai needs --model" in no_model.stderr
    unpriced = run_child(
        tmp_path, "--provider", "openai", "--model", "llama3", "--budget-usd", "1", env=env
    )
    assert unpriced.returncode == 2 and "--price-input-per-mtok" in unpriced.stderr
    no_key = run_child(
        tmp_path,
        *("--provider", "openai", "--model", "gpt-4.1-mini", "--labeller", "claude"),
        env=openai_env(),
    )
    assert no_key.returncode == 2 and "OPENAI_API_KEY is not set" in no_key.stderr
    for done in (no_model, unpriced, no_key):
        assert "Traceback" not in done.stderr
    assert not tiny_run(tmp_path).components_path.exists()


@pytest.mark.slow
def test_kill_9_in_every_phase_against_the_chat_completions_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos test of `test_chaos.py` (one round), labelling through `--provider openai`
    against a server that fails 10% of requests: every alive component ends with exactly one
    label, none is lost, and the statistics equal an uninterrupted run's."""
    options = ("--n-batches", str(N_BATCHES), "--checkpoint-every", "0.1")
    monkeypatch.setenv("TINY_WIDE", "1")
    reference_dir = tmp_path / "reference"
    assert run_inprocess(reference_dir, *options, "--labeller", "none") == 0
    env = openai_env(**SLOW, OPENAI_API_KEY=KEY)
    kinds = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.UNAVAILABLE, Fault.DROP, *CONTENT_FAULTS)
    rng = random.Random(7)
    data = tmp_path / "chaos"
    log = tmp_path / "daemon.log"
    with FakeChatServer(
        fault_rate=0.1, fault_kinds=kinds, seed=7, latency=0.01, retry_after_s=0.02
    ) as srv:
        args = (*options, *openai_args(srv, "--max-concurrent", "4", "--timeout", "5"))
        run = tiny_run(data)
        hits: list[str] = []
        saved: list[int] = []
        for target in TARGETS:
            proc = spawn(data, *args, env=env, log=log)
            try:
                hit = _wait_for(target, proc, run, rng)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            hits.append(hit)
            saved.append(_state(run).batches_done)
            if hit == "exited":
                break
        final = spawn(data, *args, env=env, log=log)
        assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
        answered = Counter(srv.keys_answered())
        requested = Counter(srv.keys_requested())
    _check_round(run, tiny_run(reference_dir), saved)
    labelled = Counter(r.component_key for r in results(run))
    alive = alive_keys(data)
    kills = [h for h in hits if h not in ("exited", "timeout")]
    paid_twice = sum(1 for n in answered.values() if n > 1)
    print(
        f"openai chaos: kills hit {hits}; {len(alive)} alive, {len(labelled)} labelled, "
        f"duplicates {sum(n - 1 for n in labelled.values())}, lost {len(alive - set(labelled))}; "
        f"server: {sum(requested.values())} requests, {paid_twice} components answered more "
        "than once (killed before the answer was written)"
    )
    assert len(kills) >= 5 and "label" in hits, hits
    assert set(answered) == alive  # every label written was answered by the server
    assert all(r.labeller == "openai" and r.cost_usd == 0 for r in results(run))
    assert component_bytes(run) == component_bytes(tiny_run(reference_dir))
    assert KEY not in log.read_text()


def test_the_score_command_asks_a_local_openai_server(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline", "--context-tokens", "3") == 0
    command = [sys.executable, "-m", "autointerp", "score", "tiny", "--data-dir", str(tmp_path)]
    with FakeChatServer(answer=answer) as srv:
        done = subprocess.run(
            [*command, "--scorers", "detection", *openai_args(srv)],
            cwd=REPO, env=openai_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "bad_schema" not in srv.outcomes() and srv.requests
    assert f"scoring with openai {MODEL} (the base URL is a local server" in done.stderr
    scored = assert_scored_once(tmp_path, ("detection",))
    assert scored == alive_keys(tmp_path)
