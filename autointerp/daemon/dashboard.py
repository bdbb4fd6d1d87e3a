"""The terminal dashboard (rich Live) and its plain-text counterpart for journald and pipes.

Every frame is built from one `View` snapshot. Untrusted text (labels, component keys from the
model, error messages) is stripped of control characters and rendered as `Text`, never parsed as
markup, so a label like `[bold red]` or an ANSI escape cannot style or break the screen.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from autointerp.daemon.progress import LabellingView, SharedProgress, View
from autointerp.interpret.llm.stats import BatchProgress
from autointerp.interpret.scoring.runner import ScoringSnapshot
from autointerp.interpret.scoring.summary import MeanScore

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean(text: str, limit: int = 200) -> str:
    """One safe line: control characters (newlines, ESC, …) become a space; long text is cut."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"


def _money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def _bar(done: int, total: int) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=min(done, max(total, 1)), width=20)


def _row(table: Table, name: str, *cells: RenderableType | str) -> None:
    table.add_row(Text(name, style="bold"), *(Text(c) if isinstance(c, str) else c for c in cells))


def render(view: View) -> RenderableType:
    """The whole dashboard for one snapshot."""
    header = Text.assemble(
        ("autointerp ", "bold cyan"),
        f"run {clean(view.run_id)} · phase ",
        (view.phase + (" (stopping)" if view.stopping else ""), "bold yellow"),
        f" · up {duration(view.now - view.started_at)}",
    )
    origin = Text.assemble(
        ("source ", "bold"), f"{clean(view.source)} · device {clean(view.device or '—')}"
    )
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=9)
    grid.add_column()
    grid.add_column()
    _row(grid, "harvest", _bar(view.batches_done, view.n_batches), _harvest_text(view))
    finalize = f"{view.components_written}/{view.n_components} components"
    if view.components_written:
        finalize += f" ({view.alive_written} alive)"
    _row(grid, "finalize", _bar(view.components_written, view.n_components), finalize)
    if view.labelling is not None:
        alive = view.alive_estimate[0] if view.alive_estimate else 0
        _row(grid, "labelling", _bar(view.labelled, alive), _labelling_text(view))
        for line in _labelling_details(view, view.labelling):
            _row(grid, "", "", line)
        scoring = view.labelling.scoring
        if scoring is not None:
            _row(grid, "scoring", "", _scoring_text(scoring))
            for line in _score_lines(scoring):
                _row(grid, "", "", line)
    labeller = Text.assemble(("labeller ", "bold"), clean(view.labeller))
    parts: list[RenderableType] = [header, origin, labeller]
    if view.run_dir:
        parts.append(Text.assemble(("run dir ", "bold"), clean(view.run_dir, 300)))
    parts.append(grid)
    if view.last_error:
        parts.append(Text("last error: " + clean(view.last_error, 300), style="red"))
    if view.labelling is not None and view.labelling.recent:
        parts.append(_labels_table(view.labelling))
    return Group(*parts)


def _harvest_text(view: View) -> str:
    text = f"{view.batches_done}/{view.n_batches} batches · {view.n_tokens:,} tok"
    if view.batches_this_session:
        text += f" · {view.tokens_per_second:,.0f} tok/s"
    if view.batches_done < view.n_batches:
        text += f" · ETA {duration(view.harvest_eta_seconds)}"
    if view.resumed_from_batch:
        text += f" · resumed at batch {view.resumed_from_batch}"
    if view.last_checkpoint_at is not None:
        text += f" · ckpt {_ago(view.now - view.last_checkpoint_at)} ago"
    if view.device_memory:
        text += f" · {view.device_memory}"
    if view.cpu_threads:
        text += f" · {view.cpu_threads} thread{'s' if view.cpu_threads > 1 else ''}"
    return text


def _remaining(view: View) -> str:
    if view.remaining is None:
        return "?"
    return str(view.remaining) if view.remaining_is_exact else f"~{view.remaining}"


def _labelling_text(view: View) -> str:
    remaining = _remaining(view)
    return (
        f"{view.labelled} done · {view.failed} failed · {remaining} left · queue {view.queue_depth}"
    )


def batch_text(batch: BatchProgress) -> str:
    """`batches: 3 submitted · 1 in progress · 2 ended · ETA 0:12:00`."""
    text = (
        f"batches: {batch.submitted} submitted · {batch.in_progress} in progress"
        f" · {batch.ended} ended"
    )
    if batch.unresolved:
        text += f" · {batch.unresolved} being looked up"
    if batch.in_progress or batch.unresolved:
        text += " · ETA " + (duration(batch.eta_s) if batch.eta_s is not None else "? (most <1h)")
    return text


def _labelling_details(view: View, lab: LabellingView) -> list[str]:
    if lab.batch is not None:
        b = lab.batch
        lines = [
            batch_text(b),
            f"requests: {b.waiting:,} waiting for results · {b.queued:,} to send"
            f" · {lab.retries} retries",
        ]
    else:
        lines = [
            f"in flight {lab.in_flight}/{lab.concurrency_limit}"
            f" · {lab.requests_per_minute:,.0f} req/min"
            f" · {lab.tokens_per_minute:,.0f} tok/min · {lab.retries} retries"
        ]
    headroom = []
    if lab.ratelimit_requests_remaining is not None:
        headroom.append(f"{lab.ratelimit_requests_remaining:,} requests")
    if lab.ratelimit_tokens_remaining is not None:
        headroom.append(f"{lab.ratelimit_tokens_remaining:,} tokens")
    if lab.paused_until is not None and lab.paused_until > view.now:
        headroom.append(f"paused {lab.paused_until - view.now:.0f}s")
    if headroom:
        lines.append("rate-limit headroom: " + ", ".join(headroom))
    approx = "" if view.remaining_is_exact or view.projected_cost_usd is None else "~"
    cost = f"cost {_money(view.cost_usd)} · projected {approx}{_money(view.projected_cost_usd)}"
    if lab.budget_usd is not None:
        cost += f" · budget {_money(lab.budget_usd)}"
    lines.append(cost)
    if lab.last_error:
        lines.append("last API error: " + clean(lab.last_error))
    return lines


def _scoring_text(scoring: ScoringSnapshot) -> str:
    return (
        f"{scoring.scored} scored · {scoring.failed} failed · {scoring.in_flight} in flight"
        f" · {scoring.queued} queued · cost {_money(scoring.cost_usd)} (in the total above)"
    )


def score_text(name: str, mean: MeanScore) -> str:
    """`detection 0.667 [0.648, 0.686] n=187`: a scorer's mean over components, 95% interval."""
    if mean.mean is None:
        return f"{name} — n=0"
    interval = "" if mean.ci_low is None else f" [{mean.ci_low:.3f}, {mean.ci_high:.3f}]"
    return f"{name} {mean.mean:.3f}{interval} n={mean.n}"


def _score_lines(scoring: ScoringSnapshot) -> list[str]:
    texts = [score_text(name, mean) for name, mean in scoring.means.items()]
    return [" · ".join(texts[i : i + 3]) for i in range(0, len(texts), 3)]


def _labels_table(lab: LabellingView) -> Table:
    table = Table(title="latest labels", title_justify="left", expand=True)
    table.add_column("component", no_wrap=True)
    table.add_column("conf.", no_wrap=True, width=6)
    table.add_column("label", no_wrap=True, overflow="ellipsis", ratio=1)
    for line in reversed(lab.recent[-8:]):  # newest first
        table.add_row(
            Text(clean(line.component_key, 60)),
            Text(clean(line.confidence, 8)),
            Text(clean(line.label, 120)),
        )
    return table


def plain_line(view: View) -> str:
    """One status line for logs (journald, pipes): no markup, no colours, no untrusted text."""
    parts = [
        f"[{time.strftime('%H:%M:%S', time.localtime(view.now))}]",
        f"run={clean(view.run_id)}",
        f"phase={view.phase}{'(stopping)' if view.stopping else ''}",
        f"harvest={view.batches_done}/{view.n_batches}",
    ]
    if view.phase == "harvest" and view.batches_this_session:
        parts.append(f"tok/s={view.tokens_per_second:.0f}")
        parts.append(f"eta={duration(view.harvest_eta_seconds)}")
    parts.append(f"finalize={view.components_written}/{view.n_components}")
    if view.labelling is not None:
        lab = view.labelling
        remaining = _remaining(view)
        parts += [
            f"labelled={view.labelled}",
            f"failed={view.failed}",
            f"remaining={remaining}",
            f"in_flight={lab.in_flight}/{lab.concurrency_limit}",
            f"queue={view.queue_depth}",
            f"cost={_money(view.cost_usd)}",
        ]
        if lab.batch is not None:
            b = lab.batch
            parts[-3] = f"waiting={b.waiting}"  # requests in batches, not in flight
            parts += [
                f"batches_submitted={b.submitted}",
                f"batches_open={b.in_progress + b.unresolved}",
                f"batches_ended={b.ended}",
            ]
            if b.eta_s is not None and b.in_progress:
                parts.append(f"batch_eta={duration(b.eta_s)}")
        if lab.scoring is not None:
            parts.append(f"scored={lab.scoring.scored}")
            parts += [
                f"{name}={m.mean:.3f}"
                for name, m in lab.scoring.means.items()
                if m.mean is not None
            ]
    return " ".join(parts)


def summary_lines(view: View) -> list[str]:
    """The final summary printed on exit (plain text)."""
    lines = [
        f"autointerp run {clean(view.run_id)} ({clean(view.source)}): phase {view.phase}",
        f"  harvest   {view.batches_done}/{view.n_batches} batches, {view.n_tokens:,} tokens",
        f"  finalize  {view.components_written}/{view.n_components} components",
    ]
    if view.run_dir:
        lines.insert(1, f"  run dir   {clean(view.run_dir, 300)}")
    if view.labelling is not None:
        remaining = _remaining(view)
        lines.append(
            f"  labelling {view.labelled} labelled, {view.failed} failed, {remaining} remaining, "
            f"cost {_money(view.cost_usd)}"
        )
        if view.labelling.batch is not None:
            lines.append(f"  {batch_text(view.labelling.batch)}")
        scoring = view.labelling.scoring
        if scoring is not None:
            lines.append(
                f"  scoring   {scoring.scored} scored, {scoring.failed} failed, "
                f"cost {_money(scoring.cost_usd)} (in the labelling cost)"
            )
            lines += [f"    {score_text(n, m)}" for n, m in scoring.means.items()]
    if view.run_dir and view.labelled:
        lines.append(f"  browse    autointerp report {clean(shlex.quote(view.run_dir), 300)}")
    if view.last_error:
        lines.append(f"  error: {clean(view.last_error, 300)}")
    if view.end_note:
        lines.append(f"  {clean(view.end_note, 300)}")
    return lines


class Dashboard:
    """Runs the live display (terminal) or a plain status printer (anything else) until stopped."""

    def __init__(
        self,
        progress: SharedProgress,
        console: Console,
        *,
        plain: bool,
        status_every: float,
    ) -> None:
        self.progress = progress
        self.console = console
        self.plain = plain or not console.is_terminal
        self.status_every = status_every
        self._live: Live | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.plain:
            self._thread = threading.Thread(target=self._print_loop, name="status", daemon=True)
            self._thread.start()
        else:
            self._live = Live(
                console=self.console,
                get_renderable=lambda: render(self.progress.snapshot()),
                refresh_per_second=2,
                redirect_stdout=True,  # stray prints (libraries) go above the display,
                redirect_stderr=True,  # not through it
            )
            self._live.start()

    def _print_loop(self) -> None:
        self._emit(plain_line)
        while not self._stop.wait(self.status_every):
            self._emit(plain_line)

    def _emit(self, make: Callable[[View], str]) -> None:
        self._print(make(self.progress.snapshot()))

    def _print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True, emoji=False)
        self.console.file.flush()

    def stop(self) -> None:
        """Stop refreshing and print the final summary."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._live is not None:
            self._live.stop()
        for line in summary_lines(self.progress.snapshot()):
            self._print(line)

    def abort(self) -> None:
        """Leave the terminal usable before an immediate exit (second Ctrl-C)."""
        if self._live is not None:
            self._live.stop()
        self.console.show_cursor(True)
