"""Where a user learns that the report exists: the daemon's final summary and `status`."""

from __future__ import annotations

from autointerp.daemon.dashboard import summary_lines
from autointerp.daemon.progress import LabellingView, View
from autointerp.daemon.status import collect, describe
from tests.report.runs import Written


def test_status_prints_the_report_command(fresh_run: Written) -> None:
    out = describe(collect(fresh_run.run))
    assert f"browse     autointerp report {fresh_run.run.root.absolute()}" in out.splitlines()


def test_the_final_summary_prints_the_report_command_once_there_are_labels() -> None:
    labelled = View(run_dir="/runs/my run", labelling=LabellingView(done=3))
    assert "  browse    autointerp report '/runs/my run'" in summary_lines(labelled)
    nothing_yet = View(run_dir="/runs/r", labelling=LabellingView(done=0))
    assert not any("autointerp report" in line for line in summary_lines(nothing_yet))
