"""A loopback server that speaks the Anthropic Message Batches API, with scripted faults.

It also answers plain `POST /v1/messages` exactly as `FakeMessagesServer` (it is one), so a
test can serve both APIs from one address:

    with FakeBatchServer(process_s=0.3, entry_fault_rate=0.2, seed=1) as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        batch = await client.messages.batches.create(requests=[{"custom_id": ..., "params": ...}])
        ...                          # poll .retrieve(batch.id) until processing_status == "ended"
        async for line in await client.messages.batches.results(batch.id): ...
        srv.submissions              # (batch_id, [custom_ids], created) for every batch recorded
        srv.paid_twice()             # custom_ids submitted again while an earlier copy had
                                     # succeeded or was still in progress
        srv.billed_usage()           # usage summed over the entries that succeeded

Timeline of a batch (on `clock`, `time.monotonic` by default): it is created at `t0` and is
`in_progress` until `t0 + process_s`, then `ended`. Its entries finish one by one in a seeded
shuffled order, entry k of n at `t0 + process_s * (k + 1) / n`; with `progressive_counts` (the
default) `request_counts` follows them (the real API keeps everything in `processing` until the
batch ends: `progressive_counts=False`). Results are served in that finishing order, the same
every time they are fetched. Cancelling an in-progress batch makes it `canceling` for
`cancel_s`, then `ended`: entries that had finished keep their outcome, the rest are `canceled`.
Only an ended batch may be deleted.

Entry outcomes (`EntryOutcome`) are drawn with probability `entry_fault_rate` from
`entry_fault_kinds` (errored_transient: api_error or overloaded_error; errored_invalid:
invalid_request_error; expired; canceled), or scripted by `entry_outcome(custom_id, params,
submission_index)` returning an `EntryOutcome` value (None: draw as usual; submission_index
counts the batches recorded, 0 for the first, so "errored the first time, succeeded when
resubmitted" is `lambda c, p, n: "errored_transient" if n == 0 else None`). "refusal",
"max_tokens" and "invalid_json" are succeeded entries with that content fault, and `answer`
(as for `FakeMessagesServer`) writes the text of succeeded ones. As on the real API, `params` are
validated only when the entry is processed: a malformed one (no model, no messages, max_tokens
below 1, stream) ends `errored` with an invalid_request_error (unless `entry_outcome` says
otherwise). The batch itself is validated at
creation (custom_id pattern and uniqueness, 1 to `max_requests` requests): 400 otherwise.

HTTP faults (`BatchFault`) on the batch endpoints: drawn with probability `http_fault_rate` from
`http_fault_kinds` on every call (nothing happens on the server), or scripted per endpoint and
call number with `batch_faults={"create": [None, "drop_after_record"], "results": ["truncate"]}`.
On create, `create_drop_after_record_rate` records the batch and then fails the answer
(`create_after_record_kinds`, a dropped connection by default), and `create_latency_s` waits
between recording and answering: both make orphans, batches created whose id the client never
received. A batch is recorded (and counted as submitted) before any answer is sent.
"""

from __future__ import annotations

import json
import random
import re
import socket
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.interpret.fake_api import (
    FakeMessagesServer,
    Fault,
    _Handler,
    default_answer,
)

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
DAY_S = 24 * 3600.0


class EntryOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    ERRORED_TRANSIENT = "errored_transient"  # api_error or overloaded_error: worth resubmitting
    ERRORED_INVALID = "errored_invalid"  # invalid_request_error: resubmitting will not help
    EXPIRED = "expired"
    CANCELED = "canceled"
    # succeeded, with a content fault in the message
    REFUSAL = "refusal"
    MAX_TOKENS = "max_tokens"
    INVALID_JSON = "invalid_json"


ENTRY_FAULTS = (
    EntryOutcome.ERRORED_TRANSIENT,
    EntryOutcome.ERRORED_INVALID,
    EntryOutcome.EXPIRED,
    EntryOutcome.CANCELED,
)
_CONTENT = {
    EntryOutcome.SUCCEEDED: None,
    EntryOutcome.REFUSAL: Fault.REFUSAL,
    EntryOutcome.MAX_TOKENS: Fault.MAX_TOKENS,
    EntryOutcome.INVALID_JSON: Fault.INVALID_JSON,
}


class BatchFault(StrEnum):
    SERVER_ERROR = "server_error"  # 500 api_error, nothing done
    OVERLOADED = "overloaded"  # 529 overloaded_error, nothing done
    DROP = "drop"  # connection closed without an answer, nothing done
    TRUNCATE = "truncate"  # results only: half the JSONL, then the connection closes
    # create only: the batch is recorded, then the answer fails (an orphan)
    SERVER_ERROR_AFTER_RECORD = "server_error_after_record"
    OVERLOADED_AFTER_RECORD = "overloaded_after_record"
    DROP_AFTER_RECORD = "drop_after_record"


HTTP_FAULTS = (BatchFault.SERVER_ERROR, BatchFault.OVERLOADED, BatchFault.DROP)
_AFTER_RECORD = {
    BatchFault.SERVER_ERROR_AFTER_RECORD: BatchFault.SERVER_ERROR,
    BatchFault.OVERLOADED_AFTER_RECORD: BatchFault.OVERLOADED,
    BatchFault.DROP_AFTER_RECORD: BatchFault.DROP,
}
_HTTP_ERRORS = {
    BatchFault.SERVER_ERROR: (500, "api_error", "Internal server error"),
    BatchFault.OVERLOADED: (529, "overloaded_error", "Overloaded"),
}
ENDPOINTS = ("create", "retrieve", "list", "results", "cancel", "delete")


class Submission(NamedTuple):
    batch_id: str
    custom_ids: list[str]
    created: float
    """`clock()` when the batch was recorded."""


@dataclass
class BatchCall:
    at: float
    method: str
    path: str
    endpoint: str
    outcome: str = "ok"
    """"ok", a `BatchFault` value, or "http_<status>" for an error answer."""
    batch_id: str | None = None
    """Of the batch this call recorded (create) or asked about."""


@dataclass
class _Entry:
    custom_id: str
    params: Any
    outcome: EntryOutcome
    done_at: float
    """`clock()` when processing of this entry finishes (unless the batch is canceled first)."""
    rank: int
    """Its place in the finishing order (and in the results file)."""
    result: dict[str, Any]
    usage: dict[str, int] | None
    """Of a succeeded entry."""


@dataclass
class _Batch:
    id: str
    index: int
    created: float
    created_wall: float
    entries: list[_Entry]
    end_at: float
    """`clock()` when processing ends (unless canceled first): the last entry's `done_at`."""
    cancel_at: float | None = None
    cancel_end: float = 0.0
    """`clock()` when a canceled batch ends."""
    deleted: bool = False

    def wall(self, t: float) -> str:
        stamp = datetime.fromtimestamp(self.created_wall + (t - self.created), tz=UTC)
        return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def ended_at(self) -> float:
        return self.end_at if self.cancel_at is None else self.cancel_end

    def doomed(self, entry: _Entry, now: float) -> bool:
        """Whether, as of `now`, a cancellation has caught this entry before it finished."""
        return self.cancel_at is not None and entry.done_at > self.cancel_at <= now

    def state(self, entry: _Entry, now: float) -> str:
        """The entry's result type as of `now`, or "processing"."""
        if self.doomed(entry, now):
            return "canceled" if now >= self.cancel_end else "processing"
        if now < entry.done_at:
            return "processing"
        return entry.result["type"]


def _rfc3339_later(batch: _Batch, seconds: float) -> str:
    return batch.wall(batch.created + seconds)


def _params_problem(params: Any) -> str | None:
    """Why the Messages API would refuse `params` (checked when the entry is processed)."""
    if not isinstance(params, dict):
        return "params: Input should be a valid dictionary"
    if not isinstance(params.get("model"), str):
        return "model: Field required"
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if params.get("stream"):
        return "stream: streaming is not supported for requests in a Message Batch"
    return None


def _error_response(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeBatchServer(FakeMessagesServer):
    def __init__(
        self,
        *,
        seed: int = 0,
        process_s: float = 0.2,
        cancel_s: float = 0.05,
        progressive_counts: bool = True,
        entry_fault_rate: float = 0.0,
        entry_fault_kinds: Sequence[EntryOutcome | str] = ENTRY_FAULTS,
        entry_outcome: Callable[[str, Any, int], EntryOutcome | str | None] | None = None,
        answer: Callable[[dict[str, Any]], str] = default_answer,
        http_fault_rate: float = 0.0,
        http_fault_kinds: Sequence[BatchFault | str] = HTTP_FAULTS,
        batch_faults: Mapping[str, Sequence[BatchFault | str | None]] | None = None,
        create_drop_after_record_rate: float = 0.0,
        create_after_record_kinds: Sequence[BatchFault | str] = (BatchFault.DROP_AFTER_RECORD,),
        create_latency_s: float = 0.0,
        max_requests: int = 100_000,
        max_batch_bytes: int = 256_000_000,
        clock: Callable[[], float] = time.monotonic,
        **messages_options: Any,
    ) -> None:
        """`messages_options` go to `FakeMessagesServer` (faults of plain /v1/messages)."""
        super().__init__(seed=seed, answer=answer, **messages_options)
        self.seed = seed
        self.process_s = process_s
        self.cancel_s = cancel_s
        self.progressive_counts = progressive_counts
        self.entry_fault_rate = entry_fault_rate
        self.entry_fault_kinds = [EntryOutcome(k) for k in entry_fault_kinds]
        self.entry_outcome = entry_outcome
        self.http_fault_rate = http_fault_rate
        self.http_fault_kinds = [BatchFault(k) for k in http_fault_kinds]
        self.batch_faults = {
            endpoint: [BatchFault(f) if f is not None else None for f in script]
            for endpoint, script in (batch_faults or {}).items()
        }
        unknown = set(self.batch_faults) - set(ENDPOINTS)
        assert not unknown, f"batch_faults for unknown endpoints {unknown}; known: {ENDPOINTS}"
        self.create_drop_after_record_rate = create_drop_after_record_rate
        self.create_after_record_kinds = [BatchFault(k) for k in create_after_record_kinds]
        assert all(k in _AFTER_RECORD for k in self.create_after_record_kinds)
        self.create_latency_s = create_latency_s
        self.max_requests = max_requests
        self.max_batch_bytes = max_batch_bytes
        self.clock = clock
        self.submissions: list[Submission] = []
        """Every batch recorded, in creation order (deleted ones included)."""
        self.batch_calls: list[BatchCall] = []
        """Every call to a batch endpoint, in arrival order."""
        self._batches: list[_Batch] = []
        self._by_id: dict[str, _Batch] = {}
        self._calls_per_endpoint: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
        self._http_rng = random.Random(f"{seed}/http")
        self._id_rng = random.Random(f"{seed}/ids")
        self._batch_lock = threading.RLock()

    def _handler_class(self) -> type[_Handler]:
        return _BatchHandler

    def start(self) -> FakeBatchServer:
        super().start()
        return self

    def __enter__(self) -> FakeBatchServer:
        return self.start()

    # ---- accounting for tests
    def batches_created(self) -> list[str]:
        """Ids of every batch recorded, in creation order (deleted ones included)."""
        with self._batch_lock:
            return [b.id for b in self._batches]

    def entry_states(self, batch_id: str) -> dict[str, str]:
        """custom_id → "processing" or its result type, as of now."""
        now = self.clock()
        with self._batch_lock:
            batch = self._by_id[batch_id]
            return {e.custom_id: batch.state(e, now) for e in batch.entries}

    def succeeded_ids(self) -> list[str]:
        """custom_ids of the entries that have succeeded by now, over all batches (repeats kept)."""
        now = self.clock()
        with self._batch_lock:
            return [
                e.custom_id
                for b in self._batches
                for e in b.entries
                if b.state(e, now) == "succeeded"
            ]

    def billed_usage(self) -> dict[str, int]:
        """Usage summed over the entries that have succeeded by now (what would be billed)."""
        now = self.clock()
        total = dict.fromkeys(
            (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ),
            0,
        )
        with self._batch_lock:
            for b in self._batches:
                for e in b.entries:
                    if e.usage is not None and b.state(e, now) == "succeeded":
                        for name in total:
                            total[name] += e.usage[name]
        return total

    def paid_twice(self) -> list[str]:
        """custom_ids submitted again while an earlier submission of the same custom_id had
        succeeded or was still in progress (not finished and not being canceled): one item
        per such resubmission. A resubmission after an errored, expired or canceled entry is
        fine."""
        twice: list[str] = []
        with self._batch_lock:
            earlier: dict[str, list[tuple[_Batch, _Entry]]] = {}
            for b in self._batches:
                t = b.created
                for e in b.entries:
                    for prev_batch, prev in earlier.get(e.custom_id, []):
                        state = prev_batch.state(prev, t)
                        doomed = prev_batch.doomed(prev, t)
                        if state == "succeeded" or (state == "processing" and not doomed):
                            twice.append(e.custom_id)
                            break
                for e in b.entries:
                    earlier.setdefault(e.custom_id, []).append((b, e))
        return twice

    def batch_calls_to(self, endpoint: str) -> list[BatchCall]:
        with self._batch_lock:
            return [c for c in self.batch_calls if c.endpoint == endpoint]

    # ---- faults
    def _http_fault(self, endpoint: str) -> BatchFault | None:
        """The fault for this call (under the batch lock)."""
        index = self._calls_per_endpoint[endpoint]
        self._calls_per_endpoint[endpoint] = index + 1
        script = self.batch_faults.get(endpoint, [])
        if index < len(script):
            return script[index]
        rng = self._http_rng
        if self.http_fault_rate and rng.random() < self.http_fault_rate:
            return rng.choice(self.http_fault_kinds)
        rate = self.create_drop_after_record_rate if endpoint == "create" else 0.0
        if rate and rng.random() < rate:
            return rng.choice(self.create_after_record_kinds)
        return None

    # ---- the batches
    def _new_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "msgbatch_01" + "".join(self._id_rng.choice(alphabet) for _ in range(22))

    def _create(self, requests: list[dict[str, Any]]) -> _Batch:
        """Record a validated batch and decide every entry's outcome (under the batch lock)."""
        index = len(self._batches)
        rng = random.Random(f"{self.seed}/batch/{index}")
        now = self.clock()
        n = len(requests)
        order = list(range(n))
        rng.shuffle(order)
        rank_of = {i: k for k, i in enumerate(order)}
        batch_id = self._new_id()
        entries: list[_Entry] = []
        for i, request in enumerate(requests):
            custom_id, params = request["custom_id"], request["params"]
            drawn = rng.random()
            kind = rng.choice(self.entry_fault_kinds) if self.entry_fault_kinds else None
            transient_kind = rng.choice(("api_error", "overloaded_error"))
            scripted = self.entry_outcome(custom_id, params, index) if self.entry_outcome else None
            problem = _params_problem(params)
            if scripted is not None:
                outcome = EntryOutcome(scripted)
            elif problem is not None:
                outcome = EntryOutcome.ERRORED_INVALID
            elif kind is not None and drawn < self.entry_fault_rate:
                outcome = kind
            else:
                outcome = EntryOutcome.SUCCEEDED
            usage = None
            if outcome in _CONTENT:
                body = params if isinstance(params, dict) else {}
                message = self.message(body, _CONTENT[outcome], f"msg_fakeb{index:04d}_{i:06d}")
                usage = message["usage"]
                result: dict[str, Any] = {"type": "succeeded", "message": message}
            elif outcome is EntryOutcome.ERRORED_TRANSIENT:
                text = "Internal server error" if transient_kind == "api_error" else "Overloaded"
                result = {"type": "errored", "error": _error_response(transient_kind, text)}
            elif outcome is EntryOutcome.ERRORED_INVALID:
                text = problem or "invalid request (scripted by the fake)"
                result = {
                    "type": "errored",
                    "error": _error_response("invalid_request_error", text),
                }
            else:
                result = {"type": outcome.value}
            done_at = now + self.process_s * (rank_of[i] + 1) / n
            entries.append(_Entry(custom_id, params, outcome, done_at, rank_of[i], result, usage))
        batch = _Batch(
            id=batch_id,
            index=index,
            created=now,
            created_wall=time.time(),
            entries=entries,
            end_at=max((e.done_at for e in entries), default=now),
        )
        self._batches.append(batch)
        self._by_id[batch_id] = batch
        self.submissions.append(Submission(batch_id, [e.custom_id for e in entries], now))
        return batch

    def _batch_json(self, batch: _Batch, now: float) -> dict[str, Any]:
        """The MessageBatch object as of `now` (under the batch lock)."""
        ended = now >= batch.ended_at()
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if ended or self.progressive_counts:
            for e in batch.entries:
                counts[batch.state(e, now)] += 1
        else:
            counts["processing"] = len(batch.entries)
        if ended:
            status = "ended"
        elif batch.cancel_at is not None:
            status = "canceling"
        else:
            status = "in_progress"
        cancel_at = batch.cancel_at
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": batch.wall(batch.created),
            "expires_at": _rfc3339_later(batch, DAY_S),
            "ended_at": batch.wall(batch.ended_at()) if ended else None,
            "cancel_initiated_at": batch.wall(cancel_at) if cancel_at is not None else None,
            "archived_at": None,
            "results_url": (
                f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }

    def _results_jsonl(self, batch: _Batch) -> bytes:
        """The results file of an ended batch, in finishing order (under the batch lock)."""
        lines = []
        for e in sorted(batch.entries, key=lambda e: e.rank):
            canceled = batch.state(e, batch.ended_at()) == "canceled"
            line = {
                "custom_id": e.custom_id,
                "result": {"type": "canceled"} if canceled else e.result,
            }
            lines.append(json.dumps(line) + "\n")
        return "".join(lines).encode()

    def _page(
        self, limit: int, after_id: str | None, before_id: str | None
    ) -> dict[str, Any] | None:
        """One page of the list, newest first; None when a cursor is unknown."""
        now = self.clock()
        with self._batch_lock:
            newest_first = list(reversed(self._batches))
            position = {b.id: k for k, b in enumerate(newest_first)}
            if after_id is not None:
                if after_id not in position:
                    return None
                rest = [b for b in newest_first[position[after_id] + 1 :] if not b.deleted]
                data, has_more = rest[:limit], len(rest) > limit
            elif before_id is not None:
                if before_id not in position:
                    return None
                rest = [b for b in newest_first[: position[before_id]] if not b.deleted]
                data, has_more = rest[-limit:], len(rest) > limit
            else:
                rest = [b for b in newest_first if not b.deleted]
                data, has_more = rest[:limit], len(rest) > limit
            return {
                "data": [self._batch_json(b, now) for b in data],
                "has_more": has_more,
                "first_id": data[0].id if data else None,
                "last_id": data[-1].id if data else None,
            }


def _validate(body: Any, max_requests: int) -> str | None:
    """Why the API would refuse this batch at creation (400 invalid_request_error)."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return "requests: Field required"
    requests = body["requests"]
    if not requests:
        return "requests: List should have at least 1 item after validation, not 0"
    if len(requests) > max_requests:
        return f"requests: List should have at most {max_requests} items after validation"
    seen: set[str] = set()
    for i, request in enumerate(requests):
        if not isinstance(request, dict):
            return f"requests.{i}: Input should be a valid dictionary"
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str):
            return f"requests.{i}.custom_id: Field required"
        if not CUSTOM_ID.match(custom_id):
            return f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if custom_id in seen:
            return f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}' in this batch"
        seen.add(custom_id)
        if "params" not in request:
            return f"requests.{i}.params: Field required"
    return None


_BATCH_PATH = re.compile(r"^/v1/messages/batches/([^/]+)(/results|/cancel)?$")


class _BatchHandler(_Handler):
    fake: FakeBatchServer

    # ---- plumbing
    def _route(self, method: str) -> tuple[str, str | None]:
        """(endpoint, batch id) for this request; endpoint "" when nothing matches."""
        path = urlsplit(self.path).path
        if path == "/v1/messages/batches":
            return {"POST": "create", "GET": "list"}.get(method, ""), None
        match = _BATCH_PATH.match(path)
        if match is None:
            return "", None
        batch_id, tail = match.groups()
        endpoint = {
            ("GET", None): "retrieve",
            ("DELETE", None): "delete",
            ("GET", "/results"): "results",
            ("POST", "/cancel"): "cancel",
        }.get((method, tail), "")
        return endpoint, batch_id

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length", "0") or "0")
        return self.rfile.read(length) if length else b""

    def _fail(self, call: BatchCall, fault: BatchFault) -> None:
        call.outcome = fault.value
        if fault is BatchFault.DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, kind, message = _HTTP_ERRORS[fault]
        self._error(status, kind, message, {})

    def _refuse(self, call: BatchCall, status: int, kind: str, message: str) -> None:
        call.outcome = f"http_{status}"
        self._error(status, kind, message, {})

    def _ok(self, payload: dict[str, Any]) -> None:
        self._send(200, json.dumps(payload).encode())

    def _handle(self, method: str) -> None:
        fake = self.fake
        endpoint, batch_id = self._route(method)
        raw = self._read_body() if method in ("POST", "DELETE") else b""
        if not endpoint:
            self._error(404, "not_found_error", f"Not found: {method} {self.path}", {})
            return
        call = BatchCall(fake.clock(), method, self.path, endpoint)
        with fake._batch_lock:
            fake.batch_calls.append(call)
            fault = fake._http_fault(endpoint)
        if fault in _AFTER_RECORD and endpoint != "create":
            fault = _AFTER_RECORD[fault]
        if fault is BatchFault.TRUNCATE and endpoint != "results":
            fault = BatchFault.DROP
        if fault in _HTTP_ERRORS or fault is BatchFault.DROP:
            self._fail(call, fault)
            return
        if endpoint == "create":
            self._create(call, raw, fault)
        elif endpoint == "list":
            self._list(call)
        else:
            assert batch_id is not None
            self._one(call, endpoint, batch_id, fault)

    # ---- endpoints
    def _create(self, call: BatchCall, raw: bytes, fault: BatchFault | None) -> None:
        fake = self.fake
        if len(raw) > fake.max_batch_bytes:
            self._refuse(call, 413, "request_too_large", "Request exceeds the maximum size")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._refuse(call, 400, "invalid_request_error", "The request body is not valid JSON")
            return
        problem = _validate(body, fake.max_requests)
        if problem is not None:
            self._refuse(call, 400, "invalid_request_error", problem)
            return
        with fake._batch_lock:
            batch = fake._create(body["requests"])
            call.batch_id = batch.id
            answer = fake._batch_json(batch, fake.clock())
        if fake.create_latency_s:
            time.sleep(fake.create_latency_s)
        if fault in _AFTER_RECORD:
            self._fail(call, _AFTER_RECORD[fault])
            return
        self._ok(answer)

    def _list(self, call: BatchCall) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            self._refuse(call, 400, "invalid_request_error", "limit: must be between 1 and 1000")
            return
        after_id, before_id = query.get("after_id"), query.get("before_id")
        if after_id is not None and before_id is not None:
            message = "after_id and before_id cannot both be given"
            self._refuse(call, 400, "invalid_request_error", message)
            return
        page = self.fake._page(limit, after_id, before_id)
        if page is None:
            self._refuse(call, 400, "invalid_request_error", "Invalid pagination cursor")
            return
        self._ok(page)

    def _one(self, call: BatchCall, endpoint: str, batch_id: str, fault: BatchFault | None) -> None:
        fake = self.fake
        call.batch_id = batch_id
        now = fake.clock()
        with fake._batch_lock:
            batch = fake._by_id.get(batch_id)
            if batch is None or batch.deleted:
                self._refuse(call, 404, "not_found_error", f"Message Batch {batch_id} not found")
                return
            ended = now >= batch.ended_at()
            if endpoint == "retrieve":
                payload: dict[str, Any] | bytes = fake._batch_json(batch, now)
            elif endpoint == "cancel":
                if ended:
                    message = f"Message Batch {batch_id} has already ended and cannot be canceled"
                    self._refuse(call, 400, "invalid_request_error", message)
                    return
                if batch.cancel_at is None:
                    batch.cancel_at = now
                    batch.cancel_end = now + fake.cancel_s
                payload = fake._batch_json(batch, now)
            elif endpoint == "delete":
                if not ended:
                    message = (
                        f"Message Batch {batch_id} is still being processed; cancel it and wait "
                        "for it to end before deleting it"
                    )
                    self._refuse(call, 400, "invalid_request_error", message)
                    return
                batch.deleted = True
                payload = {"id": batch.id, "type": "message_batch_deleted"}
            else:  # results
                if not ended:
                    message = f"Message Batch {batch_id} has not ended: no results yet"
                    self._refuse(call, 400, "invalid_request_error", message)
                    return
                payload = fake._results_jsonl(batch)
        if isinstance(payload, dict):
            self._ok(payload)
            return
        self._send_jsonl(payload, truncate=fault is BatchFault.TRUNCATE)
        if fault is BatchFault.TRUNCATE:
            call.outcome = fault.value

    def _send_jsonl(self, payload: bytes, *, truncate: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/binary")
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", f"req_fakebatch{len(self.fake.batch_calls):06d}")
        if truncate:
            self.send_header("connection", "close")
        self.end_headers()
        try:
            if truncate:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ---- HTTP verbs
    def do_POST(self) -> None:
        if not urlsplit(self.path).path.startswith("/v1/messages/batches"):
            super().do_POST()  # /v1/messages, answered as by FakeMessagesServer
            return
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")
