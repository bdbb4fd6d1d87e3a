"""The command line as a new user meets it: short errors naming the command, the right usage for
each entry point, `--version`, and no warnings from imports it does not use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autointerp.cli import daemon_main, main

REPO = Path(__file__).resolve().parents[1]
CODE_DAEMON = "from autointerp.cli import daemon_main; raise SystemExit(daemon_main())"


def _cli(
    *argv: str, code: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    entry = ["-c", code] if code else ["-m", "autointerp"]
    command = [sys.executable, *entry, *argv]
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("argv", "command", "words"),
    [
        (["daemon", "demo", "--ci-threshold", "abc"], "autointerp daemon", "'abc' is not a number"),
        (["daemon", "demo", "--bogus"], "autointerp daemon", "unrecognized arguments: --bogus"),
        (["interpret", "r", "--max-concurrent", "0"], "autointerp interpret", "at least 1"),
        (["harvest", "demo", "--n-batches", "2.5"], "autointerp harvest", "not a whole number"),
        (["status"], "autointerp status", "required: run"),
        (["frobnicate"], "autointerp", "invalid choice: 'frobnicate'"),
    ],
)
def test_a_usage_error_is_two_lines_naming_the_command(
    argv: list[str], command: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{command}: error: ") and words in lines[0], err
    assert len(lines) == 2 and f"'{command} --help'" in lines[1]
    assert "usage:" not in err and "_float" not in err and "_int" not in err


def test_each_entry_point_names_itself_in_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        daemon_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: autointerp-daemon ")
    with pytest.raises(SystemExit):
        daemon_main(["demo", "--nope"])
    assert capsys.readouterr().err.startswith("autointerp-daemon: error: unrecognized arguments")
    with pytest.raises(SystemExit):
        main(["daemon", "--help"])
    assert capsys.readouterr().out.startswith("usage: autointerp daemon ")


@pytest.mark.parametrize("argv", [["--version"], ["daemon", "--version"], ["status", "--version"]])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "autointerp 0.1.0"


def test_no_numpy_warning_when_numpy_is_missing(tmp_path: Path) -> None:
    """torch warns "Failed to initialize NumPy" on import without NumPy; nothing here uses it."""
    fake = tmp_path / "numpy"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'numpy'\", name='numpy')\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    probe = _cli(code="import torch", env=env)
    assert "Failed to initialize NumPy" in probe.stderr  # the fake really hides NumPy
    for argv in (["--help"], ["daemon", "--help"]):
        done = _cli(*argv, env=env)
        assert done.returncode == 0 and "NumPy" not in done.stderr, done.stderr
    data = tmp_path / "data"
    run = _cli(
        "py:tests.daemon.tiny_source:make", "--labeller", "none", "--plain",
        "--data-dir", str(data), "--n-batches", "2", code=CODE_DAEMON, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "NumPy" not in run.stderr + run.stdout
