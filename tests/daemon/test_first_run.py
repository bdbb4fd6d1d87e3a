"""What a new user hits first: options checked against the source before anything is written,
where the run directory is, how to resume, live progress in `status`, an API that cannot be
reached, and the end of a harvest-only run."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from tests.daemon.runner import (
    REPO,
    child_env,
    components,
    run_child,
    run_inprocess,
    spawn,
    state,
    tiny_run,
)

DAEMON = "from autointerp.cli import daemon_main; raise SystemExit(daemon_main())"


def _demo(data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DAEMON, "demo", "--device", "cpu", "--plain",
         "--data-dir", str(data), *argv],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_bad_context_length_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    refused = _demo(tmp_path, "--context-length", "100000")
    assert refused.returncode == 2, refused.stderr
    assert "reads at most 64 tokens" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "demo" / "harvest" / "config.json").exists()
    fixed = _demo(tmp_path, "--n-batches", "2", "--batch-size", "4", "--context-length", "32")
    assert fixed.returncode == 0, fixed.stderr  # no --force-new-harvest needed


def test_options_the_source_would_ignore_are_refused(tmp_path: Path) -> None:
    for option, value in (("--dataset", "stories.txt"), ("--tokenizer", "gpt2"),
                          ("--text-column", "story"), ("--cache-dir", str(tmp_path))):  # fmt: skip
        refused = _demo(tmp_path / "data", option, value)
        assert refused.returncode == 2, refused.stderr
        assert f"{option} cannot be used with the demo" in refused.stderr
    assert not (tmp_path / "data").exists()
    tiny = run_child(tmp_path / "data", "--labeller", "none", "--dataset", "x.txt")
    assert tiny.returncode == 2 and "--dataset cannot be used" in tiny.stderr


def test_the_run_directory_is_shown_at_start_and_a_stop_says_how_to_resume(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    options = ("--labeller", "offline", "--n-batches", "300", "--checkpoint-every", "300")
    proc = spawn(tmp_path, *options, env=child_env(TINY_STEP_DELAY="0.05"), log=log)
    run = tiny_run(tmp_path)
    deadline = time.monotonic() + 60
    while not (run.state_path.exists() and state(run).starts):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    out = log.read_text()
    where = str(run.root.absolute())
    start_line = next(line for line in out.splitlines() if "run tiny in" in line)
    assert where in start_line
    summary = out[out.index("autointerp run tiny (") :]
    assert f"run dir   {where}" in summary
    assert "phase stopped" in summary and "run the same command again to resume" in summary


def test_status_shows_the_live_position_between_checkpoints(tmp_path: Path) -> None:
    options = ("--labeller", "none", "--n-batches", "400", "--checkpoint-every", "300")
    proc = spawn(tmp_path, *options, env=child_env(TINY_STEP_DELAY="0.03"), log=tmp_path / "o")
    command = [sys.executable, "-m", "autointerp", "status", "tiny", "--data-dir", str(tmp_path)]
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            done = subprocess.run([*command, "--json"], cwd=REPO, env=child_env(),
                                  capture_output=True, text=True)  # fmt: skip
            status = msgspec.json.decode(done.stdout) if done.returncode == 0 else {}
            live = status.get("live")
            if live and live["batches_done"] >= 5:
                break
            time.sleep(0.2)
        assert status["batches_done"] == 0  # nothing checkpointed yet: the live file tells
        assert live["pid"] == proc.pid and live["phase"] == "harvest"
        text = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
        assert "batches now (0 checkpointed)" in text and "live       as of" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_an_unreachable_api_stops_the_run_quickly_naming_the_url(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    started = time.monotonic()
    done = run_child(
        tmp_path, "--labeller", "claude", "--base-url", url,
        env=child_env(ANTHROPIC_API_KEY="sk-ant-unreachable-test", TINY_WIDE="1"), timeout=120,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert took < 40, took  # was ~2.5 minutes per component, 8 at a time
    assert url.removeprefix("http://") in done.stderr and "cannot reach the API" in done.stderr
    assert "Traceback" not in done.stderr
    run = tiny_run(tmp_path)
    assert len(components(run)) == 96  # finalize went on without labelling: nothing stalled
    assert state(run).finalize_complete


def test_a_harvest_only_run_ends_done_and_says_how_to_label(tmp_path: Path) -> None:
    done = run_child(tmp_path, "--labeller", "none")
    assert done.returncode == 0, done.stderr
    assert "phase done (harvest only)" in done.stdout
    assert f"autointerp interpret {tiny_run(tmp_path).root.absolute()}" in done.stdout
    assert run_inprocess(tmp_path, "--labeller", "none") == 0


def test_a_broken_invariant_is_a_bug_with_a_traceback_in_the_log_not_a_usage_error(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DAEMON, "py:tests.daemon.tiny_source:make_broken", "--plain",
         "--labeller", "none", "--data-dir", str(tmp_path)],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    log = tiny_run(tmp_path).log_path
    assert (
        "ci must be [4, 16, 15] (modules concatenated in layout order), got (4, 16, 14)"
        in done.stderr
        and f"details in {log}" in done.stderr
    )
    assert "Traceback" not in done.stderr and "Traceback" in log.read_text()
