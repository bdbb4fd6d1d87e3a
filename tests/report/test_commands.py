"""`autointerp report` and `autointerp serve` as a user meets them: one-line errors (exit 2),
and no torch imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autointerp.cli import main
from tests.report.runs import Written

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["report", "serve"])
def test_a_missing_run_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path / "nowhere"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autointerp: no run found at ") and "\n" not in err


def test_a_run_not_finalized_is_one_line(
    fresh_run: Written, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_run.run.summary_path.unlink()
    assert main(["report", str(fresh_run.run.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not finalized yet" in err and "autointerp serve" in err and "\n" not in err


def test_out_that_is_not_a_report_is_refused(
    fresh_run: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("")
    assert main(["report", str(fresh_run.run.root), "--out", str(tmp_path / "docs")]) == 2
    assert "not a report written by autointerp" in capsys.readouterr().err


def test_report_writes_the_site_without_importing_torch(fresh_run: Written) -> None:
    code = (
        "import sys; from autointerp.cli import main; rc = main(['report', sys.argv[1]]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; raise SystemExit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fresh_run.run.root)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    index = fresh_run.run.root / "report" / "index.html"
    assert index.is_file() and index.as_uri() in done.stdout
