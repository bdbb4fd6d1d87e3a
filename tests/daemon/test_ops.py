"""The ops files: the systemd unit's essentials; bin/autointerp-tmux on a private tmux server."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon.runner import REPO

UNIT = REPO / "systemd" / "autointerp-daemon@.service"
TMUX_SCRIPT = REPO / "bin" / "autointerp-tmux"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text().replace("\\\n", " "))
    return parser


def test_systemd_unit_stops_gracefully_and_keeps_the_key_out_of_the_unit() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert service["EnvironmentFile"].startswith("/etc/")
    assert "%I" in service["ExecStart"]
    grace = float(re.search(r"--grace-period (\d+)", service["ExecStart"]).group(1))  # type: ignore[union-attr]
    assert float(service["TimeoutStopSec"]) > grace
    assert service["RestartPreventExitStatus"] == "2"
    settings = [line for line in UNIT.read_text().splitlines() if not line.startswith("#")]
    assert not any("ANTHROPIC" in line or "sk-ant" in line for line in settings)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_script_starts_a_session_passes_arguments_intact_and_reattaches(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "argv"
    fake_daemon = tmp_path / "daemon"
    # Records the argv it gets (what the script must pass through intact), then idles.
    record = f'printf "%s\\n" "$@" "key=${{ANTHROPIC_API_KEY:-}}" > {seen}'
    fake_daemon.write_text(f"#!/usr/bin/env bash\n{record}\nsleep 30\n")
    fake_daemon.chmod(0o755)
    key_file = tmp_path / "env"
    key_file.write_text("ANTHROPIC_API_KEY=from-the-file\n")
    key_file.chmod(0o600)
    env = {
        **os.environ,
        "TMUX_TMPDIR": str(tmp_path),  # a private tmux server, not the user's
        "AUTOINTERP_DAEMON": str(fake_daemon),
        "AUTOINTERP_ENV_FILE": str(key_file),
    }
    env.pop("TMUX", None)
    args = ["-d", "wandb:ent/proj/abc123", "--data-dir", "/tmp/with space", "--seed", "$(x)"]
    try:
        first = subprocess.run([TMUX_SCRIPT, *args], env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr
        deadline = time.monotonic() + 10
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen.read_text().splitlines() == [*args[1:], "key=from-the-file"]
        again = subprocess.run([TMUX_SCRIPT, *args], env=env, capture_output=True, text=True)
        assert again.returncode == 0 and "re-attaching" in again.stderr
        key_file.chmod(0o644)
        other = subprocess.run([TMUX_SCRIPT, "-d", "demo"], env=env, capture_output=True, text=True)
        assert other.returncode == 2 and "chmod 600" in other.stderr
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_script_takes_detach_after_the_source_and_keeps_it_from_the_daemon(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "argv"
    fake_daemon = tmp_path / "daemon"
    fake_daemon.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {seen}\nsleep 30\n')
    fake_daemon.chmod(0o755)
    env = {
        **os.environ,
        "TMUX_TMPDIR": str(tmp_path),  # a private tmux server, not the user's
        "AUTOINTERP_DAEMON": str(fake_daemon),
        "AUTOINTERP_ENV_FILE": str(tmp_path / "no-env-file"),
        "AUTOINTERP_TMUX_SESSION": "autointerp-detach-test",
    }
    env.pop("TMUX", None)
    try:
        # No terminal: an attach would fail, so exit 0 with a live session means it did not try.
        started = subprocess.run(
            [TMUX_SCRIPT, "demo", "--seed", "3", "-d"],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        assert started.returncode == 0, started.stderr
        assert "started" in started.stderr
        deadline = time.monotonic() + 10
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen.read_text().splitlines() == ["demo", "--seed", "3"]
        sessions = subprocess.run(
            ["tmux", "list-sessions", "-F", "#{session_name} #{session_attached}"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert sessions.stdout.splitlines() == ["autointerp-detach-test 0"]
        # The long form, after the source too: the running session is left alone, not attached.
        again = subprocess.run(
            [TMUX_SCRIPT, "demo", "--detach"],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        assert again.returncode == 0 and "re-attaching" in again.stderr
        helped = subprocess.run(
            [TMUX_SCRIPT, "demo", "--help"], env=env, capture_output=True, text=True, timeout=30
        )
        assert helped.returncode == 2 and "usage:" in helped.stderr
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)
