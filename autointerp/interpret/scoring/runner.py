"""Score every labelled component of a run with each scorer, exactly once, resumably.

The files are the state: a (component, scorer) pair is done when `scores/<scorer>.jsonl` has
its line (appended, flushed and fsynced before it counts; a torn last line from a crash is cut on
the next start). A restart scores only the pairs without a line. A component whose requests all
failed gets no line (so the next start tries it again) and is counted as failed; one with some
trials answered is written with its `n_errors`. Scoring shares the labelling budget: the run's
cost so far (labels and scores) counts against `budget_usd`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from autointerp.files import JsonlAppender, write_json_atomic
from autointerp.interpret.llm.errors import FatalAPIError
from autointerp.interpret.scoring.asking import Answerer
from autointerp.interpret.scoring.base import LabelRead, Scorer, label_text, score_component
from autointerp.interpret.scoring.summary import ScorerSummary, summarize
from autointerp.schemas import HeldOutData, ScoreRecord
from autointerp.store import RunDir, RunReader

log = logging.getLogger(__name__)


@dataclass
class ScoringProgress:
    """Counters for progress lines and the final summary."""

    todo: int = 0
    scored: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    """This run's scoring cost."""
    prior_cost_usd: float = 0.0
    """The run's cost before this start: labels and earlier scores."""
    stop_reason: str | None = None
    means: dict[str, list[float]] = field(default_factory=dict)


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
        reader = RunReader(run)
        self.labels = {r.component_key: r for r in reader.labels()}
        self.done = {s.name: set(reader.scores(s.name)) for s in scorers}
        scoring_cost, _ = reader.scoring_cost()
        self.progress = ScoringProgress(prior_cost_usd=reader.results().cost_usd + scoring_cost)
        self._stopping = asyncio.Event()
        self._locks = {s.name: asyncio.Lock() for s in scorers}
        self._writes: set[asyncio.Future[None]] = set()

    def stop(self, reason: str = "stopped") -> None:
        """Start no new component; those in flight finish and are written."""
        if self.progress.stop_reason is None:
            self.progress.stop_reason = reason
        self._stopping.set()

    def _work(self) -> Iterator[tuple[HeldOutData, Scorer]]:
        for heldout in RunReader(self.run_dir).heldout():
            if heldout.component_key not in self.labels:
                continue
            for scorer in self.scorers:
                if heldout.component_key not in self.done[scorer.name]:
                    yield heldout, scorer

    def count_todo(self) -> int:
        self.progress.todo = sum(1 for _ in self._work())
        return self.progress.todo

    def _over_budget(self) -> bool:
        spent = self.progress.prior_cost_usd + self.progress.cost_usd
        return self.budget_usd is not None and spent >= self.budget_usd

    async def run(self) -> ScoringProgress:
        """Score what is left. Raises `FatalAPIError` when the API cannot be used at all."""
        self.run_dir.scores_dir.mkdir(parents=True, exist_ok=True)
        out = {s.name: JsonlAppender(self.run_dir.score_path(s.name)) for s in self.scorers}
        work = self._work()
        try:
            workers = [asyncio.create_task(self._worker(work, out)) for _ in range(self.workers)]
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
        if self.progress.stop_reason is None:
            self.progress.stop_reason = "done"
        self.write_summary()
        return self.progress

    async def _worker(
        self, work: Iterator[tuple[HeldOutData, Scorer]], out: dict[str, JsonlAppender]
    ) -> None:
        for heldout, scorer in work:
            if self._stopping.is_set():
                return
            if self._over_budget():
                log.info("budget of $%.2f reached: scoring no more", self.budget_usd)
                self.stop("budget")
                return
            label = label_text(scorer, self.labels[heldout.component_key], self.read)
            try:
                record = await score_component(scorer, self.answerer, label, heldout)
            except FatalAPIError:
                self.stop("fatal")
                raise
            self.progress.cost_usd += record.cost_usd
            if record.n == 0 and record.n_errors > 0:
                self.progress.failed += 1
                log.warning("could not score %s with %s: every request failed",
                            heldout.component_key, scorer.name)  # fmt: skip
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
            self.progress.means.setdefault(scorer, []).append(record.score)

    def summaries(self) -> list[ScorerSummary]:
        reader = RunReader(self.run_dir)
        return [summarize(s.name, reader.scores(s.name).values()) for s in self.scorers]

    def write_summary(self) -> None:
        """`scores/summary.json` over every scorer with records (this start's and earlier)."""
        reader = RunReader(self.run_dir)
        names = sorted(p.stem for p in self.run_dir.scores_dir.glob("*.jsonl"))
        summary = {n: summarize(n, reader.scores(n).values()) for n in names}
        write_json_atomic(self.run_dir.scores_summary_path, summary)
