"""A loopback server that speaks OpenAI's chat-completions API, with scripted faults.

The OpenAI-compatible counterpart of `fake_api.py` (the Messages API), used by the
`--provider openai` tests:

    with FakeChatServer(fault_rate=0.3, seed=1, rate_limit=(40, 1.0)) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        ...
        srv.requests          # every request: time, path, headers, raw body, what was answered
        srv.keys_requested()  # component keys read from the prompts, in arrival order

`srv.base_url` ends in `/v1`, as vLLM's, Ollama's and OpenAI's do; a request to any other path
than `/v1/chat/completions` is answered 404, as a wrong `--base-url` would be.

Faults (`Fault`): scripted per request number with `faults=[...]` (None = answer normally), or
drawn at random with probability `fault_rate` from `fault_kinds`. `rate_limit=(n, window_s)` is a
continuously refilled bucket of `n` requests per `window_s` (holding at most one request); a
request that finds it empty is answered 429 with `retry-after` and `retry-after-ms`.
`require_key` answers 401 to any other bearer token (vLLM started with `--api-key`).
`reasoning_model` rejects `max_tokens` with OpenAI's 400 naming `max_completion_tokens`.
`check_schema` answers 400 to a `response_format` OpenAI's strict mode would reject (every
object closed with `additionalProperties: false` and every property required).

Answers: `answer(view)` gets the request in the Messages API's shape (`system` blocks, one user
message, `output_config.format.schema`), so that answer functions written for `fake_api`
(`default_answer`, the scorers' oracles) work unchanged; `srv.requests[i].body` is the raw
chat-completions body. Success bodies are full `chat.completion` objects (the SDK validates them
strictly in the tests) with `usage` (a system prompt seen before counts as cached prompt tokens)
and `x-request-id` / `x-ratelimit-*` headers.
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

from tests.interpret.fake_api import default_answer, prompt_key


class Fault(StrEnum):
    RATE_LIMIT = "rate_limit"  # 429 with retry-after and retry-after-ms
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503 (vLLM or a proxy with no model loaded yet)
    SLOW = "slow"  # answers after `slow_s`, beyond the client's timeout
    DROP = "drop"  # closes the connection without an answer
    NOT_JSON = "not_json"  # 200 with a body that is not JSON
    REFUSAL = "refusal"  # message.refusal set, content null
    LENGTH = "length"  # finish_reason "length", truncated content
    INVALID_JSON = "invalid_json"  # finish_reason "stop", but the content is not the JSON
    EMPTY = "empty"  # finish_reason "stop", empty content
    AUTH = "auth"  # 401 (the message echoes the key masked, as OpenAI's does)
    PERMISSION = "permission"  # 403
    NO_MODEL = "no_model"  # 404 model_not_found
    QUOTA = "quota"  # 429 insufficient_quota: no credit, retrying cannot help
    BAD_REQUEST = "bad_request"  # 400 for this request only


TRANSIENT_FAULTS = (
    Fault.RATE_LIMIT,
    Fault.SERVER_ERROR,
    Fault.UNAVAILABLE,
    Fault.SLOW,
    Fault.DROP,
    Fault.NOT_JSON,
)
CONTENT_FAULTS = (Fault.REFUSAL, Fault.LENGTH, Fault.INVALID_JSON, Fault.EMPTY)
FATAL_FAULTS = (Fault.AUTH, Fault.PERMISSION, Fault.NO_MODEL, Fault.QUOTA)

CHAT_PATH = "/v1/chat/completions"
_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def messages_view(body: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions body in the Messages API's shape, for `fake_api`'s answer functions."""
    system = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "system"]
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema", {})
    return {
        "model": body.get("model"),
        "system": [{"type": "text", "text": text} for text in system],
        "messages": [{"role": "user", "content": m.get("content", "")} for m in users],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }


def strict_schema_problem(schema: Any, where: str = "schema") -> str | None:
    """Why OpenAI's strict structured output would reject `schema` (None: it would not).

    The rules checked: every object lists `properties`, closes them with `additionalProperties:
    false` and requires every one of them; arrays say what their items are."""
    if not isinstance(schema, dict):
        return f"{where} is not an object"
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return f"{where}: an object needs 'properties'"
        if schema.get("additionalProperties") is not False:
            return f"{where}: 'additionalProperties' must be false"
        if set(schema.get("required", [])) != set(props):
            return f"{where}: 'required' must list every property"
        for name, sub in props.items():
            if problem := strict_schema_problem(sub, f"{where}.{name}"):
                return problem
    if schema.get("type") == "array":
        if "items" not in schema:
            return f"{where}: an array needs 'items'"
        return strict_schema_problem(schema["items"], f"{where}[]")
    return None


@dataclass
class RecordedRequest:
    at: float
    """time.monotonic() when the request was read."""
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    outcome: str = "ok"
    """"ok", a `Fault` value, "rate_limited" (the server's own limit), "unauthorized" (not the
    required key), "bad_schema", "max_tokens_unsupported" or "not_found"."""


@dataclass
class _Script:
    faults: list[Fault | None]
    fault_rate: float
    fault_kinds: Sequence[Fault]
    rng: random.Random
    latency: Callable[[random.Random], float]
    rate_limit: tuple[int, float] | None
    level: float = math.nan
    """Requests the rate-limit bucket holds (starts full)."""
    refilled_at: float = 0.0
    seen_system: set[str] = field(default_factory=set)
    decided: int = 0
    """Requests that got past the checks (`faults[i]` is the i-th of them)."""


class FakeChatServer:
    def __init__(
        self,
        *,
        faults: Sequence[Fault | str | None] = (),
        fault_rate: float = 0.0,
        fault_kinds: Sequence[Fault | str] = TRANSIENT_FAULTS + CONTENT_FAULTS,
        seed: int = 0,
        latency: float | Callable[[random.Random], float] = 0.0,
        rate_limit: tuple[int, float] | None = None,
        retry_after_s: float = 0.05,
        slow_s: float = 2.0,
        answer: Callable[[dict[str, Any]], str] = default_answer,
        require_key: str | None = None,
        reasoning_model: bool = False,
        check_schema: bool = True,
        usage: bool = True,
    ) -> None:
        fixed = float(latency) if not callable(latency) else 0.0
        self._script = _Script(
            faults=[Fault(f) if f is not None else None for f in faults],
            fault_rate=fault_rate,
            fault_kinds=[Fault(k) for k in fault_kinds],
            rng=random.Random(seed),
            latency=latency if callable(latency) else (lambda _rng: fixed),
            rate_limit=rate_limit,
        )
        self.retry_after_s = retry_after_s
        self.slow_s = slow_s
        self.answer = answer
        self.require_key = require_key
        self.reasoning_model = reasoning_model
        self.check_schema = check_schema
        self.usage = usage
        """False: answers carry no `usage` (some servers omit it)."""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> FakeChatServer:
        handler = type("Handler", (_Handler,), {"fake": self})
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

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # ---- what was seen
    def keys_requested(self) -> list[str]:
        with self._lock:
            bodies = [r.body for r in self.requests]
        return [k for b in bodies if (k := prompt_key(messages_view(b))) is not None]

    def keys_answered(self) -> list[str]:
        """Component keys of requests answered with a usable label, in arrival order."""
        with self._lock:
            bodies = [r.body for r in self.requests if r.outcome == "ok"]
        return [k for b in bodies if (k := prompt_key(messages_view(b))) is not None]

    def outcomes(self) -> list[str]:
        with self._lock:
            return [r.outcome for r in self.requests]

    # ---- deciding what to answer
    def _decide(self, record: RecordedRequest) -> tuple[Fault | None, float, float | None]:
        """(fault, latency, retry_after for a rate-limit rejection) for one request."""
        s = self._script
        with self._lock:
            index = s.decided
            s.decided += 1
            self.requests.append(record)
            latency = max(0.0, s.latency(s.rng))
            if index < len(s.faults):
                fault = s.faults[index]
            elif s.fault_rate and s.rng.random() < s.fault_rate:
                fault = s.rng.choice(list(s.fault_kinds))
            else:
                fault = None
            if s.rate_limit is not None and fault is None:
                rate = self._refill(record.at)
                if s.level < 1.0:
                    record.outcome = "rate_limited"
                    return None, 0.0, (1.0 - s.level) / rate
                s.level -= 1.0
            if fault is not None:
                record.outcome = fault.value
            return fault, latency, None

    def _refill(self, now: float) -> float:
        """Bring the bucket up to `now` (under the lock); returns its rate per second."""
        s = self._script
        assert s.rate_limit is not None
        limit, window = s.rate_limit
        rate = limit / window
        if math.isnan(s.level):
            s.level, s.refilled_at = 1.0, now
        s.level = min(1.0, s.level + (now - s.refilled_at) * rate)
        s.refilled_at = now
        return rate

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        system = "".join(
            m.get("content", "") for m in body.get("messages", []) if m.get("role") == "system"
        )
        prompt = len(json.dumps(body.get("messages", []))) // 4
        with self._lock:
            cached = len(system) // 4 if system in self._script.seen_system else 0
            self._script.seen_system.add(system)
        completion = max(1, len(text) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def _ratelimit_headers(self) -> dict[str, str]:
        s = self._script
        if s.rate_limit is None:
            return {}
        limit, window = s.rate_limit
        with self._lock:
            self._refill(time.monotonic())
            remaining = max(0, math.floor(s.level))
        return {
            "x-ratelimit-limit-requests": str(round(limit * 60.0 / window)),  # per minute
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{window / limit:.3f}s",
            "x-ratelimit-limit-tokens": "1000000",
            "x-ratelimit-remaining-tokens": "999000",
            "x-ratelimit-reset-tokens": "6ms",
        }


def _masked(key: str) -> str:
    """A key as OpenAI's 401 message shows it: the start and the end, the middle starred."""
    return f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 8 else "***"


_ERRORS: dict[Fault, tuple[int, str, str | None, str]] = {
    Fault.RATE_LIMIT: (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests"),
    Fault.SERVER_ERROR: (500, "server_error", None, "The server had an error"),
    Fault.UNAVAILABLE: (503, "server_error", None, "The engine is currently overloaded"),
    Fault.PERMISSION: (403, "invalid_request_error", "unsupported_country_region_territory",
                       "Your key may not use this model"),
    Fault.NO_MODEL: (404, "invalid_request_error", "model_not_found",
                     "The model does not exist or you do not have access to it."),
    Fault.QUOTA: (429, "insufficient_quota", "insufficient_quota",
                  "You exceeded your current quota, please check your plan and billing details."),
    Fault.BAD_REQUEST: (400, "invalid_request_error", None, "Invalid 'messages': bad content"),
}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    fake: FakeChatServer
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
        self.send_header("x-request-id", f"req_fake{len(self.fake.requests):06d}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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
        code: str | None,
        message: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self._send(status, json.dumps(body).encode(), headers)

    def _refuse_before_answering(self, record: RecordedRequest, body: dict[str, Any]) -> bool:
        """Answer what a real server checks before it looks at the request's content; a refused
        request is recorded (before its answer goes out) with the reason as its outcome."""
        fake = self.fake
        given = self.headers.get("authorization", "").removeprefix("Bearer ")
        problem = _format_problem(body) if fake.check_schema else None
        if self.path != CHAT_PATH:
            refusal = (404, "unknown_url", "not_found", f"Unknown request URL: POST {self.path}.",
                       None)  # fmt: skip
        elif fake.require_key is not None and given != fake.require_key:
            refusal = (401, "invalid_api_key", "unauthorized",
                       f"Incorrect API key provided: {_masked(given)}.", None)  # fmt: skip
        elif fake.reasoning_model and "max_tokens" in body:
            refusal = (400, "unsupported_parameter", "max_tokens_unsupported",
                       "Unsupported parameter: 'max_tokens' is not supported with this model. "
                       "Use 'max_completion_tokens' instead.", "max_tokens")  # fmt: skip
        elif problem is not None:
            refusal = (400, None, "bad_schema", f"Invalid schema for response_format: {problem}",
                       "response_format")  # fmt: skip
        else:
            return False
        status, code, outcome, message, param = refusal
        record.outcome = outcome
        with fake._lock:
            fake.requests.append(record)
        self._error(status, "invalid_request_error", code, message, param=param)
        return True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        record = RecordedRequest(
            at=time.monotonic(),
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fake = self.fake
        if self._refuse_before_answering(record, body):
            return
        fault, latency, rejected_for = fake._decide(record)
        if latency:
            time.sleep(latency)
        headers = fake._ratelimit_headers()
        if rejected_for is not None:
            wait = max(rejected_for, 0.001)
            headers |= {"retry-after-ms": str(math.ceil(wait * 1000)), "retry-after": "1"}
            self._error(429, "requests", "rate_limit_exceeded", "rate limit (fake)", headers)
            return
        if fault is Fault.DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is Fault.SLOW:
            time.sleep(fake.slow_s)
        if fault is Fault.AUTH:
            given = self.headers.get("authorization", "").removeprefix("Bearer ")
            self._error(401, "invalid_request_error", "invalid_api_key",
                        f"Incorrect API key provided: {_masked(given)}.", headers)  # fmt: skip
            return
        if fault in _ERRORS:
            status, kind, code, message = _ERRORS[fault]
            if fault is Fault.RATE_LIMIT:
                headers |= {
                    "retry-after-ms": str(math.ceil(fake.retry_after_s * 1000)),
                    "retry-after": str(max(1, math.ceil(fake.retry_after_s))),
                }
            self._error(status, kind, code, message, headers)
            return
        if fault is Fault.NOT_JSON:
            self._send(200, b"<html>upstream gateway hiccup</html>", headers)
            return
        text: str | None = fake.answer(messages_view(body))
        refusal = None
        finish_reason = "stop"
        if fault is Fault.REFUSAL:
            text, refusal = None, "I'm sorry, I can't help with that."
        elif fault is Fault.LENGTH:
            finish_reason, text = "length", (text or "")[: len(text or "") // 2]
        elif fault is Fault.INVALID_JSON:
            text = "Sure! Here is the label: determiners."
        elif fault is Fault.EMPTY:
            text = ""
        completion = {
            "id": f"chatcmpl-fake{len(fake.requests):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "system_fingerprint": "fp_fake",
        }
        if fake.usage:
            completion["usage"] = fake._usage(body, text or refusal or "")
        self._send(200, json.dumps(completion).encode(), headers)

    def do_GET(self) -> None:
        self._error(404, "invalid_request_error", "unknown_url", f"Unknown URL: GET {self.path}")


def _format_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with the request's `response_format` for strict structured output."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return "response_format.type must be 'json_schema'"
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        return "response_format.json_schema is missing"
    if not _SCHEMA_NAME.match(str(spec.get("name", ""))):
        return "json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$"
    if spec.get("strict") is not True:
        return "json_schema.strict must be true"
    return strict_schema_problem(spec.get("schema"))
