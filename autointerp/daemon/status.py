"""A run's phase, progress, counts and cost, read from its files only (`autointerp status`).

Takes no lock and writes nothing (not even the log), so it is safe while a daemon works on the
run. A running daemon's live position comes from `progress.json`; the checkpointed position is
what a restart would resume from.
"""

from __future__ import annotations

import shlex
import time
from collections import Counter

import msgspec

from autointerp.errors import UserError
from autointerp.interpret.llm.batch_ledger import BatchLedger
from autointerp.interpret.scoring.summary import MeanScore, ScorerSummary, summarize
from autointerp.schemas import LiveProgress
from autointerp.store import RunDir, RunReader


class RunStatus(msgspec.Struct):
    run_dir: str
    phase: str
    daemon_pid: int | None
    n_batches: int
    batches_done: int
    """Checkpointed: where a restart resumes."""
    n_tokens: int
    components_written: int
    components_total: int
    alive: int
    labelled: int
    failed: int
    remaining: int
    cost_usd: float
    """The labels' cost (scoring's is `scoring_cost_usd`)."""
    resumed_from: list[int]
    last_checkpoint_at: float | None
    live: LiveProgress | None = None
    """What the running process reported a few seconds ago (None: none running)."""
    scores: dict[str, MeanScore] = {}
    """Each scorer's mean over the scored components (from `scores/<scorer>.jsonl`)."""
    scoring_cost_usd: float = 0.0
    batches: dict[str, int] = {}
    """`--batch`: the run's Message Batches by status (submitting, in_progress, ended,
    abandoned), from `interpretations/batches/`."""


def collect(run: RunDir) -> RunStatus:
    reader = RunReader(run)
    state = reader.state()
    config = reader.config()
    counts = reader.component_counts()
    ledger = reader.results()
    failures, _ = reader.failures()
    failed = set(failures) - ledger.labelled
    total = sum(c for _, c in config.layout) if config else state.n_components
    remaining = len(set(counts.alive_keys) - ledger.labelled)
    phase = state.phase
    if phase == "label" and remaining == 0 and not failed:
        phase = "done"  # labelled by `autointerp interpret`, or by a start that was then stopped
    scores = _scores(run)
    return RunStatus(
        run_dir=str(run.root.absolute()),
        phase=phase,
        daemon_pid=reader.daemon_pid(),
        n_batches=config.n_batches if config else state.n_batches,
        batches_done=state.batches_done,
        n_tokens=state.n_tokens,
        components_written=counts.written,
        components_total=total,
        alive=counts.alive,
        labelled=len(ledger.labelled),
        failed=len(failed),
        remaining=remaining,
        cost_usd=ledger.cost_usd,
        resumed_from=[s.batches_done for s in state.starts],
        last_checkpoint_at=state.last_checkpoint_at,
        live=reader.live_progress(),
        scores={name: s.overall for name, s in scores.items()},
        scoring_cost_usd=sum(s.cost_usd for s in scores.values()),
        batches=_batches(run),
    )


def _batches(run: RunDir) -> dict[str, int]:
    if not run.batches_dir.is_dir():
        return {}
    try:
        ledger = BatchLedger(run.batches_dir)
    except UserError:
        return {"unreadable": 1}
    return dict(Counter(r.status for r in ledger.records.values()))


def _scores(run: RunDir) -> dict[str, ScorerSummary]:
    """Each scorer's summary, from its records (live while a daemon scores; `summary.json` is
    written only when a scoring run ends)."""
    if not run.scores_dir.is_dir():
        return {}
    reader = RunReader(run)
    names = sorted(p.stem for p in run.scores_dir.glob("*.jsonl"))
    return {name: summarize(name, reader.scores(name).values()) for name in names}


def describe(s: RunStatus, now: float | None = None) -> str:
    now = time.time() if now is None else now
    daemon = f"running (pid {s.daemon_pid})" if s.daemon_pid else "not running"
    live = s.live
    phase = live.phase if live is not None else s.phase
    harvest = f"{s.batches_done}/{s.n_batches} batches checkpointed, {s.n_tokens:,} tokens"
    if live is not None and live.batches_done != s.batches_done:
        harvest = (
            f"{live.batches_done}/{live.n_batches} batches now "
            f"({s.batches_done} checkpointed), {live.n_tokens:,} tokens"
        )
    if live is not None and live.tokens_per_second > 0:
        harvest += f", {live.tokens_per_second:,.0f} tok/s"
    lines = [
        f"run        {s.run_dir}",
        f"phase      {phase}  (daemon {daemon})",
        f"harvest    {harvest}",
        f"finalize   {s.components_written}/{s.components_total} components, {s.alive} alive",
        f"labelling  {s.labelled} labelled, {s.failed} failed, {s.remaining} remaining"
        + (" (of those finalized)" if phase in ("harvest", "finalize") else ""),
        f"cost       ${s.cost_usd + s.scoring_cost_usd:,.4f}"
        + (f" (labels ${s.cost_usd:,.4f}, scoring ${s.scoring_cost_usd:,.4f})" if s.scores else ""),
        f"starts     {len(s.resumed_from)} (resumed at batch "
        + ", ".join(map(str, s.resumed_from))
        + ")",
    ]
    if s.batches:
        b = s.batches
        text = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(b.items()))
        if b.get("in_progress") or b.get("submitting"):
            text += " (open ones are polled, never resubmitted, by the next start)"
        lines.append(f"batches    {text}")
    if live is not None:
        lines.append(f"live       as of {max(0.0, now - live.updated_at):.0f} s ago")
    for name, o in s.scores.items():
        shown = "-" if o.mean is None else f"{o.mean:.3f}"
        if o.ci_low is not None and o.ci_high is not None:
            shown += f" [{o.ci_low:.3f}, {o.ci_high:.3f}]"
        lines.append(f"score      {name} {shown} over {o.n} components ({o.unscored} unscored)")
    if s.labelled:
        lines.append(f"browse     autointerp report {shlex.quote(s.run_dir)}")
    return "\n".join(lines)
