"""A loopback server that speaks the Anthropic Messages API, with scripted faults.

Used by the labelling tests, the daemon tests and `bench/interpret.py`:

    with FakeMessagesServer(fault_rate=0.3, seed=1, rate_limit=(40, 1.0)) as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        ...
        srv.requests          # every request: time, headers, parsed body, what was answered
        srv.keys_requested()  # component keys read from the prompts, in arrival order

Faults (`Fault`): scripted per request number with `faults=[...]` (None = answer normally), or
drawn at random with probability `fault_rate` from `fault_kinds`. `rate_limit=(n, window_s)`
enforces `n` requests per `window_s` the way the real API's limiter counts: a bucket refilled
continuously at n / window_s requests per second holding at most `bucket_capacity` (default 1:
60 per minute is one per second); a request that finds it empty is answered 429 (with
`retry-after` and `retry-after-ms`). Requests answered with an error status or a dropped
connection are not counted; served ones are, faulted or not (`COUNTED_FAULTS`: a refusal is a
200 the real API counts). `latency` is a fixed delay in seconds or a function of a `random.Random`.
`arrival_jitter` (the same kinds) holds each request before the limiter counts it: the network's
varying delay between the client sending a request and the server's limiter seeing it.
`error_latency` (the same kinds; default: `latency`) is how long an answer with an error status
takes: the real API refuses or fails a request without generating anything, so its errors come
back in about a round trip while its answers take the model's time. Each is drawn from a
generator of its own, so the faults and latencies of a seed do not change.
Success bodies are full Message objects (so the SDK's strict validation passes), with the four
usage fields and `request-id` / `anthropic-ratelimit-*` headers.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Fault(StrEnum):
    RATE_LIMIT = "rate_limit"  # 429 with retry-after
    OVERLOADED = "overloaded"  # 529
    SERVER_ERROR = "server_error"  # 500
    SLOW = "slow"  # answers after `slow_s`, beyond the client's timeout
    DROP = "drop"  # closes the connection without an answer
    NOT_JSON = "not_json"  # 200 with a body that is not JSON
    REFUSAL = "refusal"  # stop_reason "refusal"
    MAX_TOKENS = "max_tokens"  # stop_reason "max_tokens", truncated text
    INVALID_JSON = "invalid_json"  # end_turn, but the text is not the label JSON
    AUTH = "auth"  # 401
    PERMISSION = "permission"  # 403
    BILLING = "billing"  # 400: credit balance too low
    SPEND_LIMIT = "spend_limit"  # 429 enforced_spend_limit_reached, no retry-after
    ON_HOLD = "on_hold"  # 403, details.error_code organization_on_hold
    RAMP_LIMIT = "ramp_limit"  # 429, details.error_code ramp_limit_exceeded, with retry-after


TRANSIENT_FAULTS = (
    Fault.RATE_LIMIT,
    Fault.OVERLOADED,
    Fault.SERVER_ERROR,
    Fault.SLOW,
    Fault.DROP,
    Fault.NOT_JSON,
)
CONTENT_FAULTS = (Fault.REFUSAL, Fault.MAX_TOKENS, Fault.INVALID_JSON)
COUNTED_FAULTS = frozenset((Fault.SLOW, Fault.NOT_JSON, *CONTENT_FAULTS))
"""Faults the rate limiter counts like an answer: the request was served (a 200, or an answer
the client stopped waiting for). Error statuses and dropped connections are not counted."""

_KEY_LINE = re.compile(r"^Component: (.+)$", re.MULTILINE)


def prompt_key(body: dict[str, Any]) -> str | None:
    """The component key named in a labelling prompt's user message."""
    for message in body.get("messages", []):
        content = message.get("content")
        texts = [content] if isinstance(content, str) else [b.get("text", "") for b in content]
        for text in texts:
            match = _KEY_LINE.search(text)
            if match:
                return match.group(1).strip()
    return None


def asked_fields(body: dict[str, Any]) -> set[str]:
    """The fields the request's structured-output schema asks for."""
    schema = body.get("output_config", {}).get("format", {}).get("schema", {})
    return set(schema.get("properties", {}))


def default_answer(body: dict[str, Any]) -> str:
    key = prompt_key(body) or "unknown"
    answer = {
        "label": f"fake label for {key}",
        "confidence": "medium",
        "reasoning": "The fake server always answers this. It reads no statistics.",
    }
    if "input_label" in asked_fields(body):  # the both-sides prompt (v2)
        answer["input_label"] = f"fake input side of {key}"
        answer["output_label"] = f"fake output side of {key}"
    return json.dumps(answer)


def _as_draw(value: float | Callable[[random.Random], float]) -> Callable[[random.Random], float]:
    """A fixed number of seconds, or a draw from a generator, as a draw."""
    if callable(value):
        return value
    fixed = float(value)
    return lambda _rng: fixed


@dataclass
class RecordedRequest:
    at: float
    """time.monotonic() when the request was read."""
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    outcome: str = "ok"
    """"ok", a `Fault` value, or "rate_limited" (429 from the server's own rate limit)."""


@dataclass
class _Script:
    faults: list[Fault | None]
    fault_rate: float
    fault_kinds: Sequence[Fault]
    rng: random.Random
    latency: Callable[[random.Random], float]
    rate_limit: tuple[int, float] | None
    bucket_capacity: float = 1.0
    level: float = math.nan
    """Requests the bucket holds (starts full)."""
    refilled_at: float = 0.0
    cached_system: set[str] = field(default_factory=set)
    arrival_jitter: Callable[[random.Random], float] | None = None
    error_latency: Callable[[random.Random], float] | None = None
    jitter_rng: random.Random = field(default_factory=random.Random)
    error_rng: random.Random = field(default_factory=random.Random)


class FakeMessagesServer:
    def __init__(
        self,
        *,
        faults: Sequence[Fault | str | None] = (),
        fault_rate: float = 0.0,
        fault_kinds: Sequence[Fault | str] = TRANSIENT_FAULTS + CONTENT_FAULTS,
        seed: int = 0,
        latency: float | Callable[[random.Random], float] = 0.0,
        arrival_jitter: float | Callable[[random.Random], float] = 0.0,
        error_latency: float | Callable[[random.Random], float] | None = None,
        rate_limit: tuple[int, float] | None = None,
        bucket_capacity: float = 1.0,
        retry_after_s: float = 0.05,
        slow_s: float = 2.0,
        answer: Callable[[dict[str, Any]], str] = default_answer,
        model: str | None = None,
        keep_alive: bool = True,
    ) -> None:
        self._script = _Script(
            faults=[Fault(f) if f is not None else None for f in faults],
            fault_rate=fault_rate,
            fault_kinds=[Fault(k) for k in fault_kinds],
            rng=random.Random(seed),
            latency=_as_draw(latency),
            rate_limit=rate_limit,
            bucket_capacity=bucket_capacity,
            arrival_jitter=_as_draw(arrival_jitter) if arrival_jitter else None,
            error_latency=None if error_latency is None else _as_draw(error_latency),
            jitter_rng=random.Random(f"arrival-jitter-{seed}"),
            error_rng=random.Random(f"error-latency-{seed}"),
        )
        self.retry_after_s = retry_after_s
        self.slow_s = slow_s
        self.answer = answer
        self.model = model
        self.keep_alive = keep_alive
        """False: every answer closes its connection, so each request connects anew."""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def _handler_class(self) -> type[_Handler]:
        """The request handler (a subclass may answer more endpoints)."""
        return _Handler

    def start(self) -> FakeMessagesServer:
        handler = type("Handler", (self._handler_class(),), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeMessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ---- what was seen
    def keys_requested(self) -> list[str]:
        with self._lock:
            return [k for r in self.requests if (k := prompt_key(r.body)) is not None]

    def outcomes(self) -> list[str]:
        with self._lock:
            return [r.outcome for r in self.requests]

    def max_in_window(self, window_s: float, *, accepted_only: bool = False) -> int:
        """The most requests that arrived within any `window_s` seconds."""
        with self._lock:
            times = sorted(
                r.at for r in self.requests if not accepted_only or r.outcome != "rate_limited"
            )
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # ---- deciding what to answer
    def _arrival_delay(self) -> float:
        """Seconds this request spends on its way to the limiter (0 without jitter)."""
        s = self._script
        if s.arrival_jitter is None:
            return 0.0
        with self._lock:
            return max(0.0, s.arrival_jitter(s.jitter_rng))

    def _decide(self, record: RecordedRequest) -> tuple[Fault | None, float, float | None]:
        """(fault, latency, retry_after for a rate-limit rejection) for one request."""
        s = self._script
        with self._lock:
            index = len(self.requests)
            self.requests.append(record)
            latency = max(0.0, s.latency(s.rng))
            if index < len(s.faults):
                fault = s.faults[index]
            elif s.fault_rate and s.rng.random() < s.fault_rate:
                fault = s.rng.choice(list(s.fault_kinds))
            else:
                fault = None
            if s.rate_limit is not None and (fault is None or fault in COUNTED_FAULTS):
                rate = self._refill(record.at)
                if s.level < 1.0:
                    record.outcome = "rate_limited"
                    return None, 0.0, (1.0 - s.level) / rate
                s.level -= 1.0
            if fault is not None:
                record.outcome = fault.value
                if fault in _ERRORS and s.error_latency is not None:
                    latency = max(0.0, s.error_latency(s.error_rng))
            return fault, latency, None

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        system = body.get("system", "")
        blocks = [system] if isinstance(system, str) else system
        system_text = "".join(b if isinstance(b, str) else b.get("text", "") for b in blocks)
        cached = any(isinstance(b, dict) and b.get("cache_control") for b in blocks)
        user_text = json.dumps(body.get("messages", []))
        creation = read = 0
        system_tokens = len(system_text) // 4
        if cached:
            with self._lock:
                if system_text in self._script.cached_system:
                    read = system_tokens
                else:
                    self._script.cached_system.add(system_text)
                    creation = system_tokens
            system_tokens = 0
        return {
            "input_tokens": system_tokens + len(user_text) // 4,
            "output_tokens": max(1, len(text) // 4),
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
        }

    def message(self, body: dict[str, Any], fault: Fault | None, message_id: str) -> dict[str, Any]:
        """The full Message object answering `body`, with a content fault applied (if any)."""
        text = self.answer(body)
        stop_reason = "end_turn"
        if fault is Fault.REFUSAL:
            stop_reason, text = "refusal", ""
        elif fault is Fault.MAX_TOKENS:
            stop_reason, text = "max_tokens", text[: len(text) // 2]
        elif fault is Fault.INVALID_JSON:
            text = "Sure! Here is the label: determiners."
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model or body.get("model", "claude-haiku-4-5-20251001"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self._usage(body, text),
        }

    def _refill(self, now: float) -> float:
        """Bring the bucket up to `now` (under the lock); returns its rate per second."""
        s = self._script
        assert s.rate_limit is not None
        limit, window = s.rate_limit
        rate = limit / window
        if math.isnan(s.level):
            s.level, s.refilled_at = s.bucket_capacity, now
        s.level = min(s.bucket_capacity, s.level + (now - s.refilled_at) * rate)
        s.refilled_at = now
        return rate

    def _ratelimit_headers(self) -> dict[str, str]:
        s = self._script
        if s.rate_limit is None:
            return {}
        limit, window = s.rate_limit
        with self._lock:
            rate = self._refill(time.monotonic())
            remaining = max(0, math.floor(s.level))
            full_in = (s.bucket_capacity - s.level) / rate
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + full_in))
        per_minute = round(limit * 60.0 / window)  # the real headers are per minute
        return {
            "anthropic-ratelimit-requests-limit": str(per_minute),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": "1000000",
            "anthropic-ratelimit-tokens-remaining": "999000",
            "anthropic-ratelimit-tokens-reset": reset,
        }


_ERRORS: dict[Fault, tuple[int, str, str]] = {
    Fault.RATE_LIMIT: (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    Fault.OVERLOADED: (529, "overloaded_error", "Overloaded"),
    Fault.SERVER_ERROR: (500, "api_error", "Internal server error"),
    Fault.AUTH: (401, "authentication_error", "invalid x-api-key"),
    Fault.PERMISSION: (403, "permission_error", "Your API key does not have permission"),
    Fault.BILLING: (
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API.",
    ),
    Fault.SPEND_LIMIT: (
        429,
        "rate_limit_error",
        "You have reached your organization's monthly usage limit.",
    ),
    Fault.ON_HOLD: (403, "permission_error", "Your organization has been disabled."),
    Fault.RAMP_LIMIT: (429, "rate_limit_error", "Usage is increasing too quickly."),
}
_ERROR_CODES: dict[Fault, str] = {
    Fault.SPEND_LIMIT: "enforced_spend_limit_reached",
    Fault.ON_HOLD: "organization_on_hold",
    Fault.RAMP_LIMIT: "ramp_limit_exceeded",
}
"""`error.details.error_code` of the errors that carry one (the SDK's `ErrorDetails`)."""


class _Handler(BaseHTTPRequestHandler):
    fake: FakeMessagesServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", f"req_fake{len(self.fake.requests):06d}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if not self.fake.keep_alive:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout): nothing to answer

    def _error(
        self,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str],
        error_code: str | None = None,
    ) -> None:
        error: dict[str, Any] = {"type": kind, "message": message}
        if error_code is not None:
            error["details"] = {"error_code": error_code}
        body = {"type": "error", "error": error}
        self._send(status, json.dumps(body).encode(), headers)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        fake = self.fake
        if delay := fake._arrival_delay():
            time.sleep(delay)
        record = RecordedRequest(
            at=time.monotonic(),
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fault, latency, rejected_for = fake._decide(record)
        if latency:
            time.sleep(latency)
        headers = fake._ratelimit_headers()
        if rejected_for is not None:
            wait = max(rejected_for, 0.001)
            headers |= {"retry-after-ms": str(math.ceil(wait * 1000)), "retry-after": "1"}
            self._error(429, "rate_limit_error", "rate limit exceeded (fake)", headers)
            return
        if fault is Fault.DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is Fault.SLOW:
            time.sleep(fake.slow_s)
        if fault in _ERRORS:
            status, kind, message = _ERRORS[fault]
            if fault in (Fault.RATE_LIMIT, Fault.RAMP_LIMIT):
                headers |= {
                    "retry-after-ms": str(math.ceil(fake.retry_after_s * 1000)),
                    "retry-after": str(max(1, math.ceil(fake.retry_after_s))),
                }
            self._error(status, kind, message, headers, _ERROR_CODES.get(fault))
            return
        if fault is Fault.NOT_JSON:
            self._send(200, b"<html>upstream gateway hiccup</html>", headers)
            return
        message = fake.message(body, fault, f"msg_fake{len(fake.requests):06d}")
        self._send(200, json.dumps(message).encode(), headers)

    def do_GET(self) -> None:
        self._error(404, "not_found_error", "not found", {})
