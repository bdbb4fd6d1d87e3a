"""The dashboard renders hostile labels as inert text, and plain mode prints lines to a pipe."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import time
from pathlib import Path

import msgspec
from rich.console import Console

from autointerp.daemon.dashboard import Dashboard, clean, plain_line, render, summary_lines
from autointerp.daemon.progress import LabelLine, LabellingView, SharedProgress, View
from autointerp.interpret.llm.stats import BatchProgress
from autointerp.interpret.scoring.runner import ScoringSnapshot
from autointerp.interpret.scoring.summary import MeanScore
from tests.daemon.runner import REPO, child_env, daemon_args

HOSTILE = [
    LabelLine("layers.0.mlp:1", "[bold red]ALERT[/bold red] and [/] unbalanced [", "high"),
    LabelLine("layers.0.mlp:2", "\x1b[2J\x1b[31mred\x1b[0m clears the screen", "low"),
    LabelLine("layers.0.mlp:3", "line one\nline two\r\tcarriage", "medium"),
    LabelLine(
        "[link=http://x]k[/link]:4", "[link=https://evil.example]click[/link] :smile:", "low"
    ),
]


def _view(**changes: object) -> View:
    base = dict(
        run_id="run[bold]",
        source="demo",
        device="cpu",
        labeller="offline labeller (no ANTHROPIC_API_KEY)",
        started_at=time.time() - 65,
        phase="label",
        n_batches=10,
        batches_done=10,
        n_components=20,
        components_written=12,
        alive_written=11,
        queue_depth=3,
        labelling=LabellingView(
            done=4,
            failed=1,
            in_flight=2,
            concurrency_limit=8,
            last_error="HTTP 529 [red]overloaded[/red]",
            recent=tuple(HOSTILE),
        ),
        now=time.time(),
    )
    base.update(changes)
    return View(**base)  # type: ignore[arg-type]


def _render(view: View, color: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out, width=140, force_terminal=color, color_system="truecolor" if color else None
    )
    console.print(render(view))
    return out.getvalue()


def test_hostile_labels_render_literally_without_styling_or_escapes() -> None:
    text = _render(_view(), color=False)
    assert "[bold red]ALERT[/bold red] and [/] unbalanced [" in text
    assert "[link=https://evil.example]click[/link] :smile:" in text
    assert "\x1b" not in text
    assert "line one line two" in text and "carriage" in text
    assert "offline labeller (no ANTHROPIC_API_KEY)" in text
    assert "run[bold]" in text


def test_hostile_labels_add_no_styles_in_a_colour_terminal() -> None:
    coloured = _render(_view(), color=True)
    assert "\x1b[2J" not in coloured and "\x1b[31mred" not in coloured
    assert "\x1b]8;" not in coloured  # no hyperlink escapes from [link=...]
    assert "[bold red]ALERT" in coloured


def test_clean_strips_control_characters_and_bounds_length() -> None:
    assert clean("a\nb\x1b[31mc\x00d") == "a b [31mc d"
    assert len(clean("x" * 1000, limit=50)) == 50


def test_plain_line_has_the_progress_counts() -> None:
    line = plain_line(_view())
    assert "\n" not in line
    assert "phase=label" in line and "finalize=12/20" in line and "in_flight=2/8" in line


def test_scoring_shows_each_scorers_mean_interval_and_cost() -> None:
    scoring = ScoringSnapshot(
        scored=374,
        failed=2,
        queued=5,
        in_flight=3,
        cost_usd=0.42,
        means={
            "detection": MeanScore(0.667, 0.648, 0.686, 187),
            "intruder": MeanScore(0.366, 0.325, 0.407, 174),
            "output": MeanScore(None, None, None, 0),
        },
    )
    lab = dataclasses.replace(_view().labelling, scoring=scoring)  # type: ignore[type-var]
    view = _view(labelling=lab)
    text = _render(view, color=False)
    assert "374 scored · 2 failed · 3 in flight · 5 queued · cost $0.4200" in text
    assert "detection 0.667 [0.648, 0.686] n=187" in text
    assert "intruder 0.366 [0.325, 0.407] n=174" in text and "output — n=0" in text
    assert "scored=374" in plain_line(view) and "detection=0.667" in plain_line(view)
    assert "    detection 0.667 [0.648, 0.686] n=187" in summary_lines(view)


def test_batches_show_their_counts_eta_and_waiting_requests() -> None:
    batch = BatchProgress(
        submitted=5, in_progress=2, ended=3, unresolved=1, queued=40, waiting=1200, eta_s=754.0
    )
    lab = dataclasses.replace(_view().labelling, batch=batch)  # type: ignore[type-var]
    view = _view(labelling=lab)
    text = _render(view, color=False)
    shown = "batches: 5 submitted · 2 in progress · 3 ended · 1 being looked up · ETA 0:12:34"
    assert shown in text
    assert "requests: 1,200 waiting for results · 40 to send · 0 retries" in text
    line = plain_line(view)
    assert "waiting=1200" in line and "in_flight=" not in line
    assert "batches_submitted=5 batches_open=3 batches_ended=3 batch_eta=0:12:34" in line
    assert any(s.startswith("  batches: 5 submitted") for s in summary_lines(view))
    fresh = msgspec.structs.replace(batch, eta_s=None, ended=0)
    lab = dataclasses.replace(lab, batch=fresh)
    assert "ETA ? (most <1h)" in _render(_view(labelling=lab), color=False)


def test_dashboard_prints_plain_lines_periodically_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = SharedProgress(run_id="r", n_batches=5)
    dash = Dashboard(progress, Console(file=out, width=100), plain=False, status_every=0.05)
    assert dash.plain  # a StringIO is not a terminal
    dash.start()
    time.sleep(0.3)
    progress.update(batches_done=5)
    time.sleep(0.1)
    dash.stop()
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("[") and "run=r" in line for line in lines) >= 3
    assert "harvest=5/5" in out.getvalue()
    assert any(line.startswith("autointerp run r") for line in lines)  # the final summary


def test_daemon_in_a_pipe_prints_plain_status_lines(tmp_path: Path) -> None:
    args = [*daemon_args(tmp_path, "--labeller", "offline"), "--status-every", "0.2"]
    done = subprocess.run(
        [sys.executable, "-m", "autointerp", *args],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "run=tiny" in done.stdout and "phase=" in done.stdout
    assert "labelling 14 labelled, 0 failed, 0 remaining" in done.stdout
    assert "\x1b" not in done.stdout


def test_live_dashboard_refreshes_from_snapshots_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    progress = SharedProgress(run_id="live-run", n_batches=4, phase="harvest")
    dash = Dashboard(progress, console, plain=False, status_every=30)
    assert not dash.plain
    dash.start()
    for done in range(1, 5):
        progress.update(batches_done=done)
        time.sleep(0.6)  # the refresh thread redraws twice a second
    progress.update(labelling=LabellingView(recent=tuple(HOSTILE)), phase="label")
    time.sleep(0.6)
    dash.stop()
    text = out.getvalue()
    assert "autointerp run live-run" in text
    assert "2/4 batches" in text and "4/4 batches" in text  # redrawn as progress moved
    assert "[bold red]ALERT[/bold red]" in text
    assert "autointerp run live-run (" in text  # the final summary
