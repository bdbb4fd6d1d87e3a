"""`BatchClient`: the `LLMClient` surface (`complete(request, parse)`) over a batch endpoint.

Every `complete` call becomes one entry of a batch; the caller awaits its result, which comes
minutes or hours later at half the price. Entries are grouped into a batch when `size` are
waiting, when the first has waited `max_wait_s`, or when none has arrived for `idle_s` (the end
of the input), so the streaming daemon batches components as finalize emits them.

Exactly once, across kills: an entry's id is a digest of what is asked (model, instructions,
item, schema, attempt), so a restart asking the same question gets the same id. The ledger
(`batch_ledger.py`) records each batch before it is submitted and with its id as soon as it is
accepted; an id found there is polled and read, never submitted again. A submission whose
answer was lost is looked up in the server's list of batches (after `settle_s`) and adopted
when its entries match, or abandoned and submitted again when the server has no such batch.

Retries: an errored (server-side), expired or canceled entry goes into a later batch (up to
`RetryPolicy.max_attempts` times); an answer that cannot be used (refusal, cut off, not the
schema) is asked again as a new entry (up to `max_content_attempts`); an invalid request fails
that item. Cost is at the batch price (half), accounted once per entry result.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from autointerp.interpret.llm.batch_api import (
    BatchAPI,
    BatchEntry,
    BatchGone,
    BatchState,
    EntryResult,
    SubmitUncertain,
)
from autointerp.interpret.llm.batch_ledger import BatchLedger, BatchRecord
from autointerp.interpret.llm.client import CHARS_PER_TOKEN, Completion
from autointerp.interpret.llm.errors import (
    FatalAPIError,
    InvalidAnswer,
    RequestFailed,
    Transient,
    redact,
)
from autointerp.interpret.llm.options import BatchOptions
from autointerp.interpret.llm.pricing import (
    Price,
    Usage,
    batch_price,
    cost_usd,
    warn_unknown_price,
)
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.llm.retry import Reachability, RetryPolicy
from autointerp.interpret.llm.stats import BatchProgress, ClientStats

log = logging.getLogger(__name__)

T = TypeVar("T")

CUSTOM_ID_MAX = 64
DIGEST_CHARS = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
CLOCK_SLACK_S = 600.0
"""An orphan is looked for among batches created from this long before our record of it (our
clock and the server's may differ)."""
BODY_BYTES_MAX = 200_000_000
"""A batch body stays below this (the API takes 256 MB)."""


def entry_id(model: str, request: Request, attempt: int = 0) -> str:
    """The batch entry id of asking `request` for the `attempt`-th time: the same question
    always gets the same id (`^[A-Za-z0-9_-]{1,64}$`), readable by its tag."""
    content = json.dumps(
        [model, request.system, request.user, request.schema, request.max_tokens, attempt],
        sort_keys=True,
        ensure_ascii=False,
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:DIGEST_CHARS]
    slug = _UNSAFE.sub("_", request.tag).strip("_")[: CUSTOM_ID_MAX - DIGEST_CHARS - 1]
    return f"{slug}-{digest}" if slug else digest


@dataclass
class _Waiter:
    request: Request
    future: asyncio.Future[EntryResult]
    est_cost: float = 0.0


@dataclass
class _Counters:
    entries_submitted: int = 0
    retries: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    pending_cost: float = 0.0


class BatchClient:
    """Shared by every task of a run; `attach` gives it the run's ledger before the first call."""

    def __init__(
        self,
        api: BatchAPI,
        options: BatchOptions | None = None,
        *,
        retry: RetryPolicy | None = None,
        price: Price | None = None,
    ) -> None:
        self.api = api
        self.options = options or BatchOptions()
        self.retry = retry or RetryPolicy()
        self.max_concurrent = self.options.max_pending
        full = price if price is not None else api.price()
        self._price = batch_price(full) if full is not None else None
        if self._price is None:
            warn_unknown_price(self.model)
        self._ledger: BatchLedger | None = None
        self._waiters: dict[str, _Waiter] = {}
        self._queue: dict[str, Request] = {}
        """Entries to submit, in arrival order."""
        self._first_queued = 0.0
        self._last_queued = 0.0
        self._queue_changed = asyncio.Event()
        self._poll_now = asyncio.Event()
        self._results: dict[str, dict[str, EntryResult]] = {}
        """Results read, by record, not yet handed to a waiter."""
        self._need_results: set[str] = set()
        self._submitting: set[str] = set()
        self._not_orphans: set[str] = set()
        """Server batches already checked against an orphan record and found not to be it."""
        self._tasks: list[asyncio.Task[None]] = []
        self._fatal: FatalAPIError | None = None
        self._reachability = Reachability(self.retry.unreachable_give_up_s)
        self._last_error: str | None = None
        self._output_estimate = 200.0
        self._n = _Counters()

    @property
    def model(self) -> str:
        return self.api.model

    def attach(self, state_dir: Path) -> None:
        """Keep the ledger in `state_dir` (the run's `interpretations/batches/`)."""
        if self._ledger is None or self._ledger.directory != state_dir:
            self._ledger = BatchLedger(state_dir)
            open_n = len(self._ledger.open_records())
            if open_n:
                log.info(
                    "batches: %d open from an earlier start, polled before any new one", open_n
                )

    # ---- public
    async def complete(self, request: Request, parse: Callable[[str], T]) -> Completion[T]:
        """Ask until `parse` accepts an answer. Raises `RequestFailed` (give up on this request)
        or `FatalAPIError` (stop the run)."""
        ledger = self._require_ledger()
        usage = Usage()
        transient = content = 0
        while True:
            if self._fatal is not None:
                raise self._fatal
            cid = entry_id(self.model, request, content)
            result = await self._outcome(cid, request)
            if result.kind == "succeeded" and result.reply is not None:
                usage = usage + result.reply.usage
                problem = result.unusable
                if problem is None:
                    try:
                        answer = parse(result.reply.text)
                    except InvalidAnswer as e:
                        problem = str(e)
                    else:
                        return Completion(answer, result.reply.text, usage, self._cost_of(usage))
                content += 1
                self._note_error(problem)
                if content >= self.retry.max_content_attempts:
                    raise RequestFailed(
                        self._redact(f"no usable answer after {content} tries: {problem}")
                    )
                self._n.retries += 1
                continue
            reason = result.error or f"the batch entry {result.kind}"
            if result.kind == "errored" and not result.retryable:
                raise RequestFailed(self._redact(reason))
            transient += 1
            self._note_error(reason)
            record = ledger.holding(cid)
            if record is not None:
                ledger.forget(cid, record)
            if transient >= self.retry.max_attempts:
                raise RequestFailed(self._redact(f"gave up after {transient} batches: {reason}"))
            self._n.retries += 1

    def stats(self) -> ClientStats:
        n = self._n
        return ClientStats(
            in_flight=len(self._waiters),
            concurrency_limit=self.max_concurrent,
            requests=n.entries_submitted,
            retries=n.retries,
            input_tokens=n.usage.input_tokens,
            output_tokens=n.usage.output_tokens,
            cache_creation_input_tokens=n.usage.cache_creation_input_tokens,
            cache_read_input_tokens=n.usage.cache_read_input_tokens,
            cost_usd=n.cost,
            cost_known=self._price is not None,
            pending_cost_usd=n.pending_cost,
            last_error=self._last_error,
            batch=self.progress(),
        )

    def progress(self) -> BatchProgress:
        records = list(self._ledger.records.values()) if self._ledger is not None else []
        open_ = [r for r in records if r.open]
        return BatchProgress(
            submitted=sum(r.batch_id is not None for r in records),
            in_progress=sum(r.status == "in_progress" for r in records),
            ended=sum(r.status == "ended" for r in records),
            unresolved=sum(
                r.status == "submitting" and r.local_id not in self._submitting for r in records
            ),
            queued=len(self._queue),
            waiting=len(self._waiters),
            eta_s=self._eta(records, open_),
        )

    async def aclose(self) -> None:
        """Stop submitting and polling (open batches stay in the ledger for the next start)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.api.aclose()

    # ---- one entry's outcome
    async def _outcome(self, cid: str, request: Request) -> EntryResult:
        waiter = self._waiters.get(cid)
        if waiter is None:
            loop = asyncio.get_running_loop()
            waiter = _Waiter(request, loop.create_future(), self._estimate(request))
            self._waiters[cid] = waiter
            self._n.pending_cost += waiter.est_cost
            self._route(cid)
        self._start()
        return await asyncio.shield(waiter.future)

    def _route(self, cid: str) -> None:
        """Send the waiter for `cid` where its result will come from."""
        ledger = self._require_ledger()
        record = ledger.holding(cid)
        if record is None:
            if cid not in self._queue:
                now = time.monotonic()
                if not self._queue:
                    self._first_queued = now
                self._last_queued = now
                self._queue[cid] = self._waiters[cid].request
                self._queue_changed.set()
            return
        if record.status == "ended":
            cached = self._results.get(record.local_id)
            if cached is not None:
                self._deliver(cid, cached.pop(cid, None) or _missing(cid))
                return
            self._need_results.add(record.local_id)
        self._poll_now.set()  # open (or not read yet): the poller delivers

    def _deliver(self, cid: str, result: EntryResult) -> None:
        waiter = self._waiters.pop(cid, None)
        if waiter is None:
            return
        self._n.pending_cost -= waiter.est_cost
        if result.reply is not None:
            self._account(result.reply.usage)
        if not waiter.future.done():
            waiter.future.set_result(result)

    def _fail_all(self, error: Exception) -> None:
        for cid in list(self._waiters):
            waiter = self._waiters.pop(cid)
            self._n.pending_cost -= waiter.est_cost
            if not waiter.future.done():
                waiter.future.set_exception(error)
        self._queue.clear()

    # ---- background work
    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._submit_loop(), name="batch-submit"),
                asyncio.create_task(self._poll_loop(), name="batch-poll"),
            ]
            for task in self._tasks:
                task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        fatal = error if isinstance(error, FatalAPIError) else None
        if fatal is None:
            log.error("batch %s stopped: %r", task.get_name(), error)
            fatal = FatalAPIError(self._redact(f"the batch client failed: {error!r}"))
        self._fatal = FatalAPIError(self._redact(str(fatal)))
        self._fail_all(self._fatal)

    async def _submit_loop(self) -> None:
        o = self.options
        while True:
            while not self._queue:
                self._queue_changed.clear()
                await self._queue_changed.wait()
            while len(self._queue) < o.size:
                now = time.monotonic()
                due = min(self._first_queued + o.max_wait_s, self._last_queued + o.idle_s)
                if now >= due:
                    break
                self._queue_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue_changed.wait(), due - now)
            await self._submit(self._take())

    def _take(self) -> list[BatchEntry]:
        taken: list[BatchEntry] = []
        size = 0
        for cid in list(self._queue):
            request = self._queue[cid]
            size += len(request.system) + len(request.user) + 2_000
            if taken and (len(taken) >= self.options.size or size > BODY_BYTES_MAX):
                break
            taken.append(BatchEntry(cid, self._queue.pop(cid)))
        if self._queue:
            self._first_queued = time.monotonic()
        return taken

    async def _submit(self, entries: list[BatchEntry]) -> None:
        ledger = self._require_ledger()
        record = ledger.intend([e.custom_id for e in entries], time.time())
        self._submitting.add(record.local_id)
        try:
            batch_id = await self._call(self.api.submit(entries))
        except SubmitUncertain as e:
            self._note_error(f"batch submission uncertain, will look it up: {e}")
            return  # stays `submitting`: the poller finds it or abandons it
        except Transient as e:
            self._abandon(record, f"refused: {e.reason}")
            self._note_error(e.reason)
            await asyncio.sleep(
                min(self.retry.max_delay_s, e.retry_after or self.retry.base_delay_s)
            )
            return
        except RequestFailed as e:
            self._abandon(record, f"rejected: {e}", reroute=False)
            for entry in entries:
                self._deliver(entry.custom_id, _failed(entry.custom_id, str(e)))
            return
        except FatalAPIError:
            self._abandon(record, "fatal error on submission", reroute=False)
            raise
        finally:
            self._submitting.discard(record.local_id)
            self._poll_now.set()  # a new open batch, or one to look up
        record.batch_id = batch_id
        record.status = "in_progress"
        ledger.save(record)
        self._n.entries_submitted += len(entries)
        log.info("batch %s submitted: %d requests", batch_id, len(entries))
        self._poll_now.set()

    def _abandon(self, record: BatchRecord, note: str, *, reroute: bool = True) -> None:
        """`record` was never created (or is gone): its entries may be submitted again."""
        record.status = "abandoned"
        record.note = note
        self._require_ledger().save(record)
        log.info("batch record %s abandoned: %s", record.local_id, note)
        if reroute:
            for cid in record.custom_ids:
                if cid in self._waiters:
                    self._route(cid)

    async def _poll_loop(self) -> None:
        while True:
            self._poll_now.clear()
            try:
                await self._poll_once()
            except (Transient, RequestFailed) as e:
                self._note_error(f"polling batches: {e}")
            busy = bool(self._need_results) or any(
                r.open for r in self._require_ledger().records.values()
            )
            timeout = self.options.poll_s if busy else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), timeout)

    async def _poll_once(self) -> None:
        ledger = self._require_ledger()
        for record in ledger.open_records():
            if record.local_id in self._submitting:
                continue
            if record.batch_id is None:
                await self._resolve_orphan(record)
                continue
            try:
                state = await self._call(self.api.state(record.batch_id))
            except BatchGone as e:
                self._abandon(record, str(e))
                continue
            if state.ended:
                self._ended(record, state)
        for local_id in list(self._need_results):
            record = ledger.records[local_id]
            if any(cid in self._waiters for cid in record.custom_ids):
                await self._read_results(record)
            self._need_results.discard(local_id)

    def _ended(self, record: BatchRecord, state: BatchState) -> None:
        record.status = "ended"
        record.ended_at = time.time()
        record.succeeded, record.errored = state.succeeded, state.errored
        record.canceled, record.expired = state.canceled, state.expired
        self._require_ledger().save(record)
        log.info(
            "batch %s ended: %d succeeded, %d errored, %d expired, %d canceled",
            record.batch_id,
            state.succeeded,
            state.errored,
            state.expired,
            state.canceled,
        )
        self._need_results.add(record.local_id)

    async def _read_results(self, record: BatchRecord) -> None:
        assert record.batch_id is not None
        try:
            results = await self._call(self.api.results(record.batch_id))
        except BatchGone as e:
            results = [EntryResult(cid, "expired", error=str(e)) for cid in record.custom_ids]
        self._store_results(record, results)

    def _store_results(self, record: BatchRecord, results: list[EntryResult]) -> None:
        by_id = {r.custom_id: r for r in results}
        for cid in record.custom_ids:
            if cid in self._waiters and self._require_ledger().holding(cid) is record:
                self._deliver(cid, by_id.pop(cid, None) or _missing(cid))
        self._results[record.local_id] = by_id

    async def _resolve_orphan(self, record: BatchRecord) -> None:
        """A submission whose answer never came: adopt the server's batch with exactly these
        entries, or, when the server has none that could be it, abandon the record."""
        settle_s = self.options.settle_s if self.options.settle_s is not None else 120.0
        if time.time() - record.submitted_at < settle_s:
            return
        known = self._require_ledger().known_batch_ids()
        wanted = set(record.custom_ids)
        candidates = [
            s
            for s in await self._call(self.api.created_since(record.submitted_at - CLOCK_SLACK_S))
            if s.batch_id not in known
            and s.batch_id not in self._not_orphans
            and s.total == len(wanted)
        ]
        for state in candidates:
            if not state.ended:
                continue  # its entries can only be read once it has ended
            results = await self._call(self.api.results(state.batch_id))
            if {r.custom_id for r in results} != wanted:
                self._not_orphans.add(state.batch_id)
                continue
            record.batch_id = state.batch_id
            record.note = "adopted: the submission's answer was lost, the server had the batch"
            log.info("batch %s adopted for record %s", state.batch_id, record.local_id)
            self._ended(record, state)
            self._need_results.discard(record.local_id)
            self._store_results(record, results)
            return
        if not any(not s.ended for s in candidates):
            self._abandon(record, "the server has no batch with these entries: submitting again")

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """One call to the batch endpoint. Connection failures while nothing has ever got
        through stop the run after `RetryPolicy.unreachable_give_up_s`, naming the URL."""
        try:
            answer = await awaitable
        except Transient as e:
            fatal = self._reachability.check(e, time.monotonic())
            if fatal is not None:
                raise FatalAPIError(self._redact(str(fatal))) from None
            raise
        self._reachability.answered()
        return answer

    # ---- bookkeeping
    def _estimate(self, request: Request) -> float:
        if self._price is None:
            return 0.0
        est_input = (len(request.system) + len(request.user)) / CHARS_PER_TOKEN
        return cost_usd(self._price, Usage(int(est_input), int(self._output_estimate)))

    def _account(self, used: Usage) -> None:
        self._n.usage = self._n.usage + used
        if self._price is not None:
            self._n.cost += cost_usd(self._price, used)
        self._output_estimate = 0.8 * self._output_estimate + 0.2 * used.output_tokens

    def _cost_of(self, used: Usage) -> float | None:
        return None if self._price is None else cost_usd(self._price, used)

    def _eta(self, records: list[BatchRecord], open_: list[BatchRecord]) -> float | None:
        took = [r.ended_at - r.submitted_at for r in records if r.ended_at is not None]
        if not open_ or not took:
            return None
        typical = sum(took) / len(took)
        now = time.time()
        return max(max(0.0, typical - (now - r.submitted_at)) for r in open_)

    def _require_ledger(self) -> BatchLedger:
        if self._ledger is None:
            raise RuntimeError("BatchClient.attach(run's batches dir) must come first")
        return self._ledger

    def _note_error(self, reason: str) -> None:
        self._last_error = self._redact(reason)
        log.debug("batch request: %s", self._last_error)

    def _redact(self, text: str) -> str:
        return redact(text, self.api.secret)


def _missing(cid: str) -> EntryResult:
    return EntryResult(cid, "expired", error="no result for this entry in its batch")


def _failed(cid: str, reason: str) -> EntryResult:
    return EntryResult(cid, "errored", error=reason, retryable=False)
