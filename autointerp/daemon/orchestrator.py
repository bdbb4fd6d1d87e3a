"""Wires the harvest thread to the labelling pool through a bounded queue and supervises both.

The harvest thread appends each finalized component to `components.jsonl` and then blocks on
`queue.put` until there is room (backpressure: a slow API never makes finalize hold every
component in memory). The pool drains the queue. Whichever side fails or a signal arrives, both
are stopped the graceful way: in-flight requests get the grace period, the harvest checkpoints.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from autointerp.daemon.producer import HarvestProducer
from autointerp.daemon.progress import LabelLine, LabellingView, SharedProgress
from autointerp.daemon.run_state import StateFile
from autointerp.daemon.shutdown import Shutdown
from autointerp.interpret.pool import LabellingPool
from autointerp.schemas import ComponentData

log = logging.getLogger(__name__)

PUBLISH_EVERY = 0.25
"""Seconds between copies of the pool's counters into the dashboard state."""


class Outcome:
    """How the pipeline ended."""

    def __init__(self, error: BaseException | None, stopped: bool) -> None:
        self.error = error
        self.stopped = stopped


class Orchestrator:
    def __init__(
        self,
        producer: HarvestProducer,
        pool: LabellingPool | None,
        progress: SharedProgress,
        state: StateFile,
        shutdown: Shutdown,
        *,
        grace_period: float,
        queue_size: int,
    ) -> None:
        self.producer = producer
        self.pool = pool
        self.progress = progress
        self.state = state
        self.shutdown = shutdown
        self.grace_period = grace_period
        self.queue: asyncio.Queue[ComponentData | None] = asyncio.Queue(maxsize=queue_size)
        self._end_marker_queued = 0
        """1 once the end-of-components marker is in the queue (it stays there)."""
        self._no_consumer = threading.Event()
        """Set once labelling ended early (budget): finalize goes on writing, nothing is queued."""

    def _emitter(self, loop: asyncio.AbstractEventLoop) -> Callable[[ComponentData], bool]:
        """`emit` for the harvest thread: blocks while the queue is full, gives up on stop."""

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
        harvest = asyncio.ensure_future(asyncio.to_thread(self.producer, emit))
        labelling = asyncio.ensure_future(self.pool.run(self.queue)) if self.pool else None
        publisher = asyncio.create_task(self._publish_forever())
        self.shutdown.on_request(lambda: self._begin_stop(loop, labelling))
        error: BaseException | None = None
        end_marker: asyncio.Task[None] | None = None
        pending: set[asyncio.Future[Any]] = {harvest} | ({labelling} if labelling else set())
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    failure = None if task.cancelled() else task.exception()
                    if failure is not None:
                        error = error or failure
                        log.error("stopping after an error: %s", failure, exc_info=failure)
                        self.shutdown.request("error")
                    elif task is harvest and labelling is not None and not self.shutdown.requested:
                        end_marker = asyncio.create_task(self._put_end_marker())
                    elif task is labelling and not self.shutdown.requested:
                        self._labelling_ended_early()
        finally:
            for task in (publisher, end_marker):
                if task is not None:
                    task.cancel()
            self._publish()
        stopped = self.shutdown.requested
        complete = error is None and not stopped and self.state.get().finalize_complete
        if complete and self.pool is not None and self._all_labelled():
            self.state.update(labelling_complete=True, labelling_completed_at=time.time())
        phase = "stopped" if stopped or error else self.state.get().phase
        self.progress.update(phase=phase)
        return Outcome(error, stopped)

    async def _put_end_marker(self) -> None:
        await self.queue.put(None)
        self._end_marker_queued = 1

    def _all_labelled(self) -> bool:
        assert self.pool is not None
        snap = self.pool.snapshot()
        alive = self.progress.snapshot().alive_total
        return snap.stop_reason == "done" and alive is not None and snap.done >= alive

    def _labelling_ended_early(self) -> None:
        """The pool stopped on its own (budget reached) while finalize may still be running."""
        self._no_consumer.set()
        reason = self.pool.snapshot().stop_reason if self.pool is not None else None
        if reason not in (None, "done"):
            message = f"labelling stopped: {reason}; the rest is labelled on the next start"
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
            ),
        )
