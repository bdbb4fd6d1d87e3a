"""Wires a component feeder (a thread) to the labelling pool through a bounded queue.

The feeder is the harvest pass (the daemon) or a reader of `components.jsonl` (`autointerp
interpret`); it hands each component over with `emit`, which blocks until the queue has room
(backpressure: a slow API never makes finalize hold every component in memory). The pool drains
the queue. A signal or a feeder failure stops both the graceful way: in-flight requests get the
grace period, the harvest checkpoints. When labelling ends on its own (the budget, or an API that
cannot be used at all) the feeder goes on without a consumer, so finalize still writes every
component, and the labelling error is reported at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autointerp.daemon.progress import LabelLine, LabellingView, SharedProgress
from autointerp.daemon.shutdown import Shutdown
from autointerp.interpret.pool import LabellingPool
from autointerp.schemas import ComponentData

log = logging.getLogger(__name__)

PUBLISH_EVERY = 0.25
"""Seconds between copies of the pool's counters into the dashboard state."""

Emit = Callable[[ComponentData], bool]
Feeder = Callable[[Emit | None], None]
"""Runs in a worker thread and emits components (emit None: nobody labels, just run)."""


MAX_QUEUED_COMPONENTS = 1_024
"""With `--batch` the pool has 20,000 workers, each taking a component at once: a longer queue
would only hold more whole components in memory."""


def queue_size_for(max_concurrent: int) -> int:
    """Components waiting for a worker: enough to keep every worker busy, few enough that a
    slow API holds finalize back instead of letting the queue hold every component."""
    return min(2 * max_concurrent + 16, MAX_QUEUED_COMPONENTS)


@dataclass(frozen=True)
class Outcome:
    """How the pipeline ended."""

    error: BaseException | None
    """A failure that stopped the run (the feeder's, or a fatal labelling error)."""
    stopped: bool
    """Stopped by a signal (or by the error) before the end."""
    labelling_ended: str | None
    """The pool's stop reason when labelling ended (`done`, `budget`, `fatal: …`), else None."""


class Orchestrator:
    def __init__(
        self,
        feeder: Feeder,
        pool: LabellingPool | None,
        progress: SharedProgress,
        shutdown: Shutdown,
        *,
        grace_period: float,
    ) -> None:
        self.feeder = feeder
        self.pool = pool
        self.progress = progress
        self.shutdown = shutdown
        self.grace_period = grace_period
        size = queue_size_for(pool.workers) if pool is not None else 1
        self.queue: asyncio.Queue[ComponentData | None] = asyncio.Queue(maxsize=size)
        self._end_marker_queued = 0
        """1 once the end-of-components marker is in the queue (it stays there)."""
        self._no_consumer = threading.Event()
        """Set once labelling ended early: the feeder goes on, nothing is queued."""

    def _emitter(self, loop: asyncio.AbstractEventLoop) -> Emit:
        """`emit` for the feeder thread: blocks while the queue is full, gives up on stop."""

        def emit(component: ComponentData) -> bool:
            if self._no_consumer.is_set():
                return True
            future = asyncio.run_coroutine_threadsafe(self.queue.put(component), loop)
            while True:
                try:
                    future.result(timeout=0.2)
                    return True
                except concurrent.futures.TimeoutError:
                    if self.shutdown.requested or self._no_consumer.is_set():
                        future.cancel()
                        return not self.shutdown.requested

        return emit

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        emit = self._emitter(loop) if self.pool is not None else None
        feeding = asyncio.ensure_future(asyncio.to_thread(self.feeder, emit))
        labelling = asyncio.ensure_future(self.pool.run(self.queue)) if self.pool else None
        publisher = asyncio.create_task(self._publish_forever())
        self.shutdown.on_request(lambda: self._begin_stop(loop, labelling))
        error: BaseException | None = None
        end_marker: asyncio.Task[None] | None = None
        pending: set[asyncio.Future[Any]] = {feeding} | ({labelling} if labelling else set())
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    failure = None if task.cancelled() else task.exception()
                    if task is labelling and not self.shutdown.requested:
                        error = error or failure
                        self._labelling_ended_early()
                    elif failure is not None:
                        error = error or failure
                        log.error("stopping after an error: %s", failure, exc_info=failure)
                        self.shutdown.request("error")
                    elif task is feeding and labelling is not None and not self.shutdown.requested:
                        end_marker = asyncio.create_task(self._put_end_marker())
        finally:
            for task in (publisher, end_marker):
                if task is not None:
                    task.cancel()
            self._publish()
        ended = self.pool.snapshot().stop_reason if self.pool is not None else None
        return Outcome(error, self.shutdown.requested, ended)

    async def _put_end_marker(self) -> None:
        await self.queue.put(None)
        self._end_marker_queued = 1

    def _labelling_ended_early(self) -> None:
        """The pool stopped on its own (done, budget, fatal) while the feeder may still run."""
        self._no_consumer.set()
        reason = self.pool.snapshot().stop_reason if self.pool is not None else None
        if reason not in (None, "done"):
            message = f"labelling stopped: {reason}"
            if reason == "budget":
                message += "; the rest is labelled on the next start"
            log.warning(message)
            self.progress.update(last_error=message)

    def _begin_stop(
        self, loop: asyncio.AbstractEventLoop, labelling: asyncio.Future[None] | None
    ) -> None:
        self.progress.update(stopping=True)
        if self.pool is None or labelling is None:
            return
        self.pool.stop()
        loop.call_later(self.grace_period, self._cancel_after_grace, labelling)

    def _cancel_after_grace(self, labelling: asyncio.Future[None]) -> None:
        if not labelling.done():
            log.warning("grace period over: abandoning in-flight requests (relabelled next start)")
            labelling.cancel()

    async def _publish_forever(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(PUBLISH_EVERY)

    def _publish(self) -> None:
        if self.pool is None:
            return
        snap = self.pool.snapshot()
        stats = snap.labeller
        self.progress.update(
            queue_depth=max(0, self.queue.qsize() - self._end_marker_queued),
            labelling=LabellingView(
                done=snap.done,
                failed=snap.failed,
                in_flight=snap.in_flight,
                concurrency_limit=snap.concurrency_limit,
                retries=stats.retries,
                requests_per_minute=stats.requests_per_minute,
                tokens_per_minute=stats.tokens_per_minute,
                ratelimit_requests_remaining=stats.ratelimit_requests_remaining,
                ratelimit_tokens_remaining=stats.ratelimit_tokens_remaining,
                paused_until=stats.paused_until,
                cost_usd=snap.cost_usd,
                budget_usd=snap.budget_usd,
                last_error=stats.last_error,
                recent=tuple(LabelLine(r.key, r.label, r.confidence) for r in snap.recent),
                scoring=snap.scoring,
                batch=stats.batch,
            ),
        )
