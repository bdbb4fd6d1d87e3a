"""Score labelled components with each scorer, exactly once, resumably, as labels arrive.

`autointerp score` hands over every label at once (`submit_backlog`, then `finish`); the daemon
with `--score` hands over each label the moment it is written (`submit`), and its earlier labels
not yet scored on start. Workers take (component, scorer) pairs from one queue.

The files are the state: a pair is done when `scores/<scorer>.jsonl` has its line (appended,
flushed and fsynced before it counts; a torn last line from a crash is cut on the next start).
A restart scores only the pairs without a line. A component whose requests all failed gets no
line (so the next start tries it again) and is counted as failed; one with some trials answered
is written with its `n_errors`. Scoring shares the labelling budget: the run's cost so far
(labels and scores) counts against `budget_usd`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from autointerp.files import JsonlAppender, write_json_atomic
from autointerp.interpret.llm.errors import FatalAPIError
from autointerp.interpret.scoring.asking import Answerer
from autointerp.interpret.scoring.base import LabelRead, Scorer, label_text, score_component
from autointerp.interpret.scoring.summary import (
    MeanScore,
    RunningMean,
    ScorerSummary,
    score_range,
    summarize,
)
from autointerp.interpret.stoppable import get_unless_stopped
from autointerp.schemas import InterpretationResult, ScoreRecord
from autointerp.store import HeldOutLookup, RunDir, RunReader

log = logging.getLogger(__name__)

Pair = tuple[InterpretationResult, Scorer]


@dataclass
class ScoringProgress:
    """Counters for progress lines, the dashboard and the final summary."""

    todo: int = 0
    """Pairs handed over this start (scored, failed, skipped or still queued)."""
    scored: int = 0
    failed: int = 0
    no_heldout: int = 0
    """Pairs skipped because the component has no held-out windows."""
    in_flight: int = 0
    cost_usd: float = 0.0
    """This start's scoring cost."""
    prior_cost_usd: float = 0.0
    """The run's cost before this start: labels and earlier scores."""
    prior_scoring_cost_usd: float = 0.0
    stop_reason: str | None = None
    running: dict[str, RunningMean] = field(default_factory=dict)
    """The mean score per scorer over every scored component, earlier starts included."""

    @property
    def queued(self) -> int:
        done = self.scored + self.failed + self.no_heldout + self.in_flight
        return max(0, self.todo - done)

    @property
    def scoring_cost_usd(self) -> float:
        """What scoring has cost the run, earlier starts included."""
        return self.prior_scoring_cost_usd + self.cost_usd

    def means(self) -> dict[str, MeanScore]:
        return {name: mean.value() for name, mean in self.running.items()}

    def snapshot(self) -> ScoringSnapshot:
        return ScoringSnapshot(
            scored=self.scored,
            failed=self.failed,
            queued=self.queued,
            in_flight=self.in_flight,
            cost_usd=self.scoring_cost_usd,
            means=self.means(),
        )


@dataclass(frozen=True)
class ScoringSnapshot:
    """A copy of the counters for the dashboard: no lists, cheap to take every frame."""

    scored: int
    failed: int
    queued: int
    in_flight: int
    cost_usd: float
    """Scoring's cost to the run, earlier starts included."""
    means: dict[str, MeanScore]


class ScoringRun:
    def __init__(
        self,
        run: RunDir,
        scorers: list[Scorer],
        answerer: Answerer,
        *,
        budget_usd: float | None = None,
        workers: int = 8,
        read: LabelRead = "sides",
    ) -> None:
        self.run_dir = run
        self.scorers = scorers
        self.answerer = answerer
        self.budget_usd = budget_usd
        self.workers = max(1, workers)
        self.read: LabelRead = read
        answerer.attach(run)
        reader = RunReader(run)
        records = {s.name: reader.scores(s.name) for s in scorers}
        self.done = {name: set(r) for name, r in records.items()}
        scoring_cost, _ = reader.scoring_cost()
        self.progress = ScoringProgress(
            prior_cost_usd=reader.results().cost_usd + scoring_cost,
            prior_scoring_cost_usd=scoring_cost,
            running={s.name: RunningMean(score_range(s.name)) for s in scorers},
        )
        for name, rs in records.items():
            for r in rs.values():
                if r.score is not None:
                    self.progress.running[name].add(r.score)
        self._spent = lambda: self.progress.prior_cost_usd + self.progress.cost_usd
        self.heldout = HeldOutLookup(run.heldout_path)
        self._queue: asyncio.Queue[Pair | None] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._stopping = asyncio.Event()
        self._locks = {s.name: asyncio.Lock() for s in scorers}
        self._writes: set[asyncio.Future[None]] = set()

    # ---- handing work over
    def submit(self, result: InterpretationResult) -> int:
        """Queue the pairs of this label not yet scored nor queued; returns how many."""
        added = 0
        for scorer in self.scorers:
            pair = (result.component_key, scorer.name)
            if result.component_key in self.done[scorer.name] or pair in self._queued:
                continue
            self._queued.add(pair)
            self._queue.put_nowait((result, scorer))
            added += 1
        self.progress.todo += added
        return added

    def submit_backlog(self, results: Iterable[InterpretationResult]) -> int:
        """Queue every given label's unscored pairs (those with held-out windows)."""
        with_heldout = self.heldout.keys()
        return sum(self.submit(r) for r in results if r.component_key in with_heldout)

    def finish(self) -> None:
        """No more labels: the workers end once the queue is empty."""
        self._queue.put_nowait(None)

    def stop(self, reason: str = "stopped") -> None:
        """Start no new pair; those in flight finish and are written."""
        if self.progress.stop_reason is None:
            self.progress.stop_reason = reason
        self._stopping.set()

    def share_budget(self, spent: Callable[[], float], budget_usd: float | None) -> None:
        """Count against the budget what `spent` says the run has cost (the labelling pool's
        total when the two share one client), not only scoring."""
        self._spent = spent
        self.budget_usd = budget_usd

    def _over_budget(self) -> bool:
        """Spent, plus what questions asked but not yet answered (batches) will cost."""
        if self.budget_usd is None:
            return False
        return self._spent() + self.answerer.pending_cost_usd() >= self.budget_usd

    # ---- running
    async def run(self) -> ScoringProgress:
        """Score what is handed over until `finish` (queue drained) or `stop`. Raises
        `FatalAPIError` when the API cannot be used at all."""
        self.run_dir.scores_dir.mkdir(parents=True, exist_ok=True)
        out = {s.name: JsonlAppender(self.run_dir.score_path(s.name)) for s in self.scorers}
        try:
            workers = [asyncio.create_task(self._worker(out)) for _ in range(self.workers)]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*workers, return_exceptions=True)
        finally:
            if self._writes:  # cancelled mid-append: let the write finish before closing
                await asyncio.gather(*self._writes, return_exceptions=True)
            for appender in out.values():
                appender.close()
            self.write_summary()
        if self.progress.stop_reason is None:
            self.progress.stop_reason = "done"
        return self.progress

    async def _next(self) -> Pair | None:
        got = await get_unless_stopped(self._queue, self._stopping)
        if got is None:
            return None
        (item,) = got
        if item is None:
            self._queue.put_nowait(None)  # the end marker stays for the other workers
        return None if self._stopping.is_set() else item

    async def _worker(self, out: dict[str, JsonlAppender]) -> None:
        while (item := await self._next()) is not None:
            result, scorer = item
            key = result.component_key
            if self._over_budget():
                log.info("budget of $%.2f reached: scoring no more", self.budget_usd)
                self.stop("budget")
                return
            heldout = await asyncio.to_thread(self.heldout.get, key)
            if heldout is None:
                self.progress.no_heldout += 1
                continue
            label = label_text(scorer, result, self.read)
            self.progress.in_flight += 1
            scoring = score_component(scorer, self.answerer, label, heldout)
            del heldout  # held by the plan's windows only, while the answers take their time
            try:
                record = await scoring
            except FatalAPIError:
                self.stop("fatal")
                raise
            finally:
                self.progress.in_flight -= 1
            self.progress.cost_usd += record.cost_usd
            if record.n == 0 and record.n_errors > 0:
                self.progress.failed += 1
                log.warning("could not score %s with %s: every request failed", key, scorer.name)
                continue
            await self._append(out[scorer.name], scorer.name, record)

    async def _append(self, appender: JsonlAppender, scorer: str, record: ScoreRecord) -> None:
        async with self._locks[scorer]:
            write = asyncio.ensure_future(asyncio.to_thread(appender.append, record))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            await asyncio.shield(write)
        self.done[scorer].add(record.component_key)
        self.progress.scored += 1
        if record.score is not None:
            self.progress.running[scorer].add(record.score)

    # ---- summaries
    def summaries(self) -> list[ScorerSummary]:
        reader = RunReader(self.run_dir)
        return [summarize(s.name, reader.scores(s.name).values()) for s in self.scorers]

    def write_summary(self) -> None:
        """`scores/summary.json` over every scorer with records (this start's and earlier)."""
        reader = RunReader(self.run_dir)
        names = sorted(p.stem for p in self.run_dir.scores_dir.glob("*.jsonl"))
        summary = {n: summarize(n, reader.scores(n).values()) for n in names}
        write_json_atomic(self.run_dir.scores_summary_path, summary)
