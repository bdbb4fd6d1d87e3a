"""The labelling pool: workers that drain a queue of components into results.jsonl / failures.jsonl.

The files are the state. At every moment, each component is in exactly one of results.jsonl,
failures.jsonl, or neither (pending). On start, failures that will be retried (or that a result
already covers) are removed from failures.jsonl by an atomic rewrite, so a component never counts as
both failed and labelled, and a restart re-labels only what has no result.

With a `ScoringRun` (`--score`), each label is handed to it the moment it is written, and the
labels of earlier starts still unscored on start; the pool ends once scoring has drained too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import msgspec

from autointerp.files import JsonlAppender, encode_line, write_bytes_atomic
from autointerp.interpret.base import Labeller
from autointerp.interpret.llm.errors import FatalAPIError, RequestFailed
from autointerp.interpret.llm.stats import ClientStats
from autointerp.interpret.scoring.runner import ScoringProgress, ScoringRun, ScoringSnapshot
from autointerp.interpret.stoppable import get_unless_stopped
from autointerp.schemas import (
    ArchitectureInfo,
    ComponentData,
    Confidence,
    InterpretationResult,
    LabelFailure,
)
from autointerp.store import RunDir, RunReader

log = logging.getLogger(__name__)

RECENT_LABELS = 20


class RecentLabel(msgspec.Struct):
    key: str
    label: str
    confidence: Confidence


class PoolSnapshot(msgspec.Struct):
    """What the dashboard and `status` show; built fresh on every call."""

    done: int
    """Components with a result (this run and earlier runs)."""
    done_this_run: int
    failed: int
    """Components now in failures.jsonl."""
    skipped: int
    """Taken from the queue but not labelled: dead, done before, failed (not retried), repeated."""
    skipped_dead: int
    in_flight: int
    concurrency_limit: int
    cost_usd: float
    """Spent on the run: earlier runs' results plus every request of this run (retries included)."""
    cost_known: bool
    budget_usd: float | None
    stop_reason: str | None
    """None while running; "done", "stopped", "budget" or "fatal: <message>" once it ended."""
    recent: list[RecentLabel]
    labeller: ClientStats
    labeller_name: str
    model: str
    started_at: float | None
    """Wall-clock time `run()` started (None before)."""
    elapsed_s: float
    labels_per_minute: float
    scoring: ScoringSnapshot | None = None
    """The scoring run's counters, when labels are scored as they arrive."""


def is_dead(component: ComponentData) -> bool:
    """Never fired, so nothing to label (a record with examples but no `firing_count` is alive)."""
    return component.firing_count == 0 and not component.activation_examples


class LabellingPool:
    """Workers (as many as the labeller's `max_concurrent`) that drain a queue of components."""

    def __init__(
        self,
        labeller: Labeller,
        architecture: ArchitectureInfo,
        run: RunDir,
        *,
        budget_usd: float | None = None,
        retry_failed: bool = True,
        scoring: ScoringRun | None = None,
    ) -> None:
        self.labeller = labeller
        self.architecture = architecture
        self.run_dir = run
        self.workers = max(1, labeller.max_concurrent)
        self.budget_usd = budget_usd
        self.retry_failed = retry_failed
        labeller.attach(run)

        reader = RunReader(run)
        ledger = reader.results()
        scoring_cost, scoring_cost_known = reader.scoring_cost()
        self._labelled = ledger.labelled
        self._prior_cost = ledger.cost_usd + scoring_cost
        """Earlier starts' labels and scores: scoring shares the budget and the accounting."""
        self._prior_cost_known = ledger.cost_known and scoring_cost_known
        self.scoring = scoring
        if scoring is not None:
            scoring.share_budget(self.cost_usd, budget_usd)
        self._failed: dict[str, LabelFailure] = {}
        self._earlier_attempts: dict[str, int] = {}
        self._reconcile_failures()

        self._taken: set[str] = set()
        self._done_this_run = 0
        self._skipped = 0
        self._skipped_dead = 0
        self._in_flight = 0
        self._recent: deque[RecentLabel] = deque(maxlen=RECENT_LABELS)
        self._stop_reason: str | None = None
        self._stopping = asyncio.Event()
        self._fatal: FatalAPIError | None = None
        self._write_lock = asyncio.Lock()
        self._writes: set[asyncio.Future[None]] = set()
        self._started_at: float | None = None
        self._started_mono = 0.0
        self._ended_mono: float | None = None

    # ---- start-up
    def _reconcile_failures(self) -> None:
        """Rewrite failures.jsonl without labelled or to-be-retried keys (and without repeats)."""
        path = self.run_dir.failures_path
        if not path.exists():
            return
        latest, lines = RunReader(self.run_dir).failures()
        self._earlier_attempts = {k: f.attempts for k, f in latest.items()}
        keep = {} if self.retry_failed else latest
        keep = {k: f for k, f in keep.items() if k not in self._labelled}
        if len(keep) != lines or path.stat().st_size != sum(
            len(encode_line(f)) for f in latest.values()
        ):
            write_bytes_atomic(path, b"".join(encode_line(f) for f in keep.values()))
            log.info(
                "failures.jsonl: %d kept, %d to be retried or already labelled",
                len(keep),
                len(latest) - len(keep),
            )
        self._failed = dict(keep)

    # ---- queries
    def is_pending(self, key: str) -> bool:
        """Neither labelled nor (when failures are not retried) failed."""
        if key in self._labelled:
            return False
        return self.retry_failed or key not in self._failed

    def cost_usd(self) -> float:
        return self._prior_cost + self.labeller.stats().cost_usd

    def snapshot(self) -> PoolSnapshot:
        stats = self.labeller.stats()
        now = time.monotonic()
        elapsed = 0.0
        if self._started_at is not None:
            elapsed = (self._ended_mono or now) - self._started_mono
        return PoolSnapshot(
            done=len(self._labelled),
            done_this_run=self._done_this_run,
            failed=len(self._failed),
            skipped=self._skipped,
            skipped_dead=self._skipped_dead,
            in_flight=self._in_flight,
            concurrency_limit=stats.concurrency_limit or self.workers,
            cost_usd=self._prior_cost + stats.cost_usd,
            cost_known=self._prior_cost_known and stats.cost_known,
            budget_usd=self.budget_usd,
            stop_reason=self._stop_reason,
            recent=list(self._recent),
            labeller=stats,
            labeller_name=self.labeller.name,
            model=self.labeller.model,
            started_at=self._started_at,
            elapsed_s=elapsed,
            labels_per_minute=self._done_this_run / elapsed * 60.0 if elapsed > 0 else 0.0,
            scoring=self.scoring.progress.snapshot() if self.scoring is not None else None,
        )

    # ---- control
    def stop(self, reason: str = "stopped") -> None:
        """Take no new work; in-flight components finish and are recorded."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stopping.set()
        if self.scoring is not None:
            self.scoring.stop(reason)

    async def run(self, queue: asyncio.Queue[ComponentData | None]) -> None:
        self._started_at = time.time()
        self._started_mono = time.monotonic()
        results = JsonlAppender(self.run_dir.results_path)
        failures = JsonlAppender(self.run_dir.failures_path)
        scoring = await self._start_scoring()
        try:
            workers = [
                asyncio.create_task(self._worker(queue, results, failures))
                for _ in range(self.workers)
            ]
            try:
                await asyncio.gather(*workers)
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            if scoring is not None:
                self.scoring.finish()  # type: ignore[union-attr]
                await scoring  # the labels written go on to be scored
        except FatalAPIError as e:  # from scoring: the API cannot be used
            self._fatal = self._fatal or e
            self.stop(f"fatal: {e}")
        finally:
            if scoring is not None and not scoring.done():
                scoring.cancel()
                with contextlib.suppress(asyncio.CancelledError, FatalAPIError):
                    await scoring
            self._ended_mono = time.monotonic()
            if self._writes:  # cancelled mid-append: let the write finish before closing
                await asyncio.gather(*self._writes, return_exceptions=True)
            results.close()
            failures.close()
        if self._stop_reason is None:
            self._stop_reason = "done"
        if self._fatal is not None:
            raise self._fatal

    async def _start_scoring(self) -> asyncio.Task[ScoringProgress] | None:
        """Start the scoring run, with the labels of earlier starts it has not scored."""
        if self.scoring is None:
            return None
        earlier = RunReader(self.run_dir).labels()
        backlog = await asyncio.to_thread(self.scoring.submit_backlog, earlier)
        if backlog:
            log.info("scoring: %d (component, scorer) pairs from earlier labels", backlog)
        return asyncio.create_task(self.scoring.run())

    # ---- workers
    async def _next(self, queue: asyncio.Queue[ComponentData | None]) -> ComponentData | None:
        """The next component, or None at the end of the queue or once stopping."""
        got = await get_unless_stopped(queue, self._stopping)
        if got is None:
            return None
        (item,) = got
        if item is None or self._stopping.is_set():
            # Leave the end marker (or the unprocessed item) for whoever reads next.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(item)
            return None
        return item

    def _should_skip(self, component: ComponentData) -> bool:
        key = component.component_key
        if is_dead(component):
            self._skipped_dead += 1
        elif key in self._taken or not self.is_pending(key):
            pass
        else:
            return False
        self._skipped += 1
        return True

    def _over_budget(self) -> bool:
        """Spent, plus what requests sent but not yet answered (batches) will cost."""
        if self.budget_usd is None:
            return False
        return self.cost_usd() + self.labeller.stats().pending_cost_usd >= self.budget_usd

    async def _worker(
        self,
        queue: asyncio.Queue[ComponentData | None],
        results: JsonlAppender,
        failures: JsonlAppender,
    ) -> None:
        while (component := await self._next(queue)) is not None:
            if self._should_skip(component):
                continue
            if self._over_budget():
                log.info("budget of $%.2f reached: taking no new components", self.budget_usd)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(component)
                self.stop("budget")
                return
            key = component.component_key
            self._taken.add(key)
            self._in_flight += 1
            labelling = self.labeller.label(component, self.architecture)
            del component  # a batch may take hours: the labeller keeps only what it sends
            try:
                result = await labelling
            except RequestFailed as e:
                await self._record_failure(failures, key, str(e))
            except FatalAPIError as e:
                if self._fatal is None:
                    self._fatal = e
                self.stop(f"fatal: {e}")
                return
            except Exception as e:  # a bug for one component must not stop the run
                log.exception("unexpected error labelling %s", key)
                await self._record_failure(failures, key, f"internal error: {type(e).__name__}")
            else:
                await self._record_result(results, result)
            finally:
                self._in_flight -= 1

    async def _append(self, out: JsonlAppender, record: object) -> None:
        """Append in a thread, one at a time; a cancelled caller does not cut the write short."""
        async with self._write_lock:
            write = asyncio.ensure_future(asyncio.to_thread(out.append, record))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            await asyncio.shield(write)

    async def _record_result(self, out: JsonlAppender, result: InterpretationResult) -> None:
        await self._append(out, result)
        if self.scoring is not None:
            self.scoring.submit(result)
        self._labelled.add(result.component_key)
        self._done_this_run += 1
        self._recent.append(RecentLabel(result.component_key, result.label, result.confidence))

    async def _record_failure(self, out: JsonlAppender, key: str, reason: str) -> None:
        failure = LabelFailure(
            component_key=key,
            reason=reason,
            attempts=self._earlier_attempts.get(key, 0) + 1,  # runs in which it failed
            labeller=self.labeller.name,
            model=self.labeller.model,
            timestamp=time.time(),
        )
        await self._append(out, failure)
        self._failed[key] = failure
        log.warning("could not label %s: %s", key, reason)
