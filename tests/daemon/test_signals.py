"""Signals on a real daemon subprocess labelling through the loopback Messages API.

SIGTERM/SIGINT: in-flight requests finish (within the grace period), exit 0, nothing is lost and
a restart labels the rest without asking for any component twice. A second signal exits at once
with 130, still consistent. SIGHUP is ignored.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec

from tests.daemon.runner import REPO, child_env, components, results, spawn, state, tiny_run
from tests.interpret.fake_api import FakeMessagesServer

KEY = "sk-ant-test-SECRET-0123456789"


def _claude(server: FakeMessagesServer, *extra: str) -> tuple[str, ...]:
    return ("--labeller", "claude", "--base-url", server.base_url, "--max-concurrent", "3", *extra)


def _env() -> dict[str, str]:
    return child_env(ANTHROPIC_API_KEY=KEY)


def _wait_until(condition, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"daemon exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "timed out waiting for the daemon"
        time.sleep(0.01)


def _labelled(path: Path) -> int:
    return len(results(tiny_run(path))) if tiny_run(path).results_path.exists() else 0


def _alive(data: Path) -> set[str]:
    return {c.component_key for c in components(tiny_run(data)) if c.firing_count > 0}


def test_sigterm_while_labelling_finishes_in_flight_work_and_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with FakeMessagesServer(latency=0.4) as server:
        proc = spawn(tmp_path, *_claude(server, "--grace-period", "10"), env=_env(), log=log)
        _wait_until(lambda: _labelled(tmp_path) >= 3, proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()[-2000:]
        took = time.monotonic() - sent
        asked = Counter(server.keys_requested())
    first = {r.component_key for r in results(tiny_run(tmp_path))}
    # Every request that was sent got its answer recorded: in-flight work was not dropped.
    assert set(asked) == first
    assert took < 10
    assert len(first) < len(_alive(tmp_path))
    with FakeMessagesServer() as server:
        again = spawn(tmp_path, *_claude(server), env=_env(), log=log)
        assert again.wait(timeout=120) == 0, log.read_text()[-2000:]
        asked.update(server.keys_requested())
    labelled = Counter(r.component_key for r in results(tiny_run(tmp_path)))
    assert set(labelled) == _alive(tmp_path) and set(labelled.values()) == {1}
    assert set(asked.values()) == {1}  # no component was sent to the API twice
    assert {(r.labeller, r.label) for r in results(tiny_run(tmp_path))} == {
        ("claude", f"fake label for {key}") for key in labelled
    }
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_grace_period_bounds_the_wait_for_slow_requests(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with FakeMessagesServer(latency=lambda rng: 0.2 if rng.random() < 0.5 else 30.0) as server:
        proc = spawn(tmp_path, *_claude(server, "--grace-period", "1"), env=_env(), log=log)
        _wait_until(lambda: _labelled(tmp_path) >= 1, proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]
        assert time.monotonic() - sent < 6
    labelled = Counter(r.component_key for r in results(tiny_run(tmp_path)))
    assert set(labelled.values()) == {1}


def test_second_sigint_exits_130_at_once_and_the_run_stays_consistent(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with FakeMessagesServer(latency=5.0) as server:
        proc = spawn(tmp_path, *_claude(server, "--grace-period", "30"), env=_env(), log=log)
        _wait_until(lambda: len(server.requests) >= 1, proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None  # the first Ctrl-C waits for in-flight requests
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert time.monotonic() - sent < 3
    with FakeMessagesServer() as server:
        again = spawn(tmp_path, *_claude(server), env=_env(), log=log)
        assert again.wait(timeout=120) == 0, log.read_text()[-2000:]
    labelled = Counter(r.component_key for r in results(tiny_run(tmp_path)))
    assert set(labelled) == _alive(tmp_path) and set(labelled.values()) == {1}


def test_sighup_is_ignored_and_status_works_while_the_daemon_runs(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with FakeMessagesServer(latency=0.3) as server:
        proc = spawn(tmp_path, *_claude(server), env=_env(), log=log)
        _wait_until(lambda: tiny_run(tmp_path).state_path.exists(), proc)
        proc.send_signal(signal.SIGHUP)
        command = ["status", "tiny", "--json", "--data-dir", str(tmp_path)]
        status = subprocess.run(
            [sys.executable, "-m", "autointerp", *command],
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        assert msgspec.json.decode(status.stdout)["daemon_pid"] == proc.pid
        assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]
    labelled = Counter(r.component_key for r in results(tiny_run(tmp_path)))
    assert set(labelled) == _alive(tmp_path)


def test_sigterm_during_harvest_checkpoints_and_the_restart_resumes_there(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    env = child_env(TINY_STEP_DELAY="0.05")
    options = ("--labeller", "offline", "--n-batches", "200", "--checkpoint-every", "300")
    proc = spawn(tmp_path, *options, env=env, log=log)
    run = tiny_run(tmp_path)
    _wait_until(lambda: run.state_path.exists() and len(state(run).starts) == 1, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    saved = state(run).batches_done
    assert 0 < saved < 200  # checkpointed at shutdown, long before --checkpoint-every
    again = spawn(tmp_path, *options, env=child_env(), log=log)
    assert again.wait(timeout=120) == 0, log.read_text()[-2000:]
    assert [s.batches_done for s in state(run).starts] == [0, saved]
    assert state(run).phase == "done"
