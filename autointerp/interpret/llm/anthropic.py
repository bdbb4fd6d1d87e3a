"""The Claude labeller: one Messages API call per component, with our own retries and rate control.

The SDK's retries are off (`max_retries=0`): a `retry-after` must pause every worker, not just the
one that got it, and refusals or malformed answers need bounded retries the SDK does not do.
The API key is read from `ANTHROPIC_API_KEY` only and is scrubbed from every message we make.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import logging
import os
import random
import time
from collections import deque
from dataclasses import dataclass

import anthropic
import httpx2

from autointerp.errors import UserError
from autointerp.interpret.base import (
    FatalLabellerError,
    LabelError,
    Labeller,
    LabellerStats,
)
from autointerp.interpret.defaults import API_KEY_ENV, DEFAULT_MODEL
from autointerp.interpret.pricing import Usage, cost_of
from autointerp.interpret.prompt import Prompt, render_prompt
from autointerp.interpret.ratelimit import (
    AdaptiveConcurrency,
    Clock,
    MonotonicClock,
    RateLimiter,
    RateLimits,
    Ticket,
)
from autointerp.interpret.response import InvalidResponse, parse_response, response_schema
from autointerp.schemas import ArchitectureInfo, ComponentData, InterpretationResult

log = logging.getLogger(__name__)

MAX_TOKENS = 1024
MAX_RETRY_AFTER_S = 900.0
_SENDING: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("sending", default=None)
"""The ticket of the request this task is sending, for the HTTP hook that timestamps it."""
CHARS_PER_TOKEN = 3.5
"""For the input-token estimate reserved against `--max-input-tpm` before sending."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    """Attempts per component on transient errors: 429, 529, 5xx, timeouts, dropped connections."""
    max_content_attempts: int = 3
    """Attempts per component when the answer is unusable: refusal, max_tokens, invalid JSON."""
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0


class _Transient(Exception):
    """Worth another attempt after a backoff (or the server's `retry-after`)."""

    def __init__(self, reason: str, *, overload: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.overload = overload
        self.retry_after = retry_after


class _Unusable(Exception):
    """A 200 whose text is not a usable label (a refusal, a truncated answer); it still cost."""

    def __init__(self, reason: str, used: Usage) -> None:
        super().__init__(reason)
        self.used = used


def retry_after_seconds(headers: httpx2.Headers | None) -> float | None:
    """`retry-after-ms`, else `retry-after` (seconds or an HTTP date); None when absent."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _int_header(headers: httpx2.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def api_key_from_env() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise UserError(
            f"{API_KEY_ENV} is not set: export your Anthropic API key in {API_KEY_ENV}, "
            "or use --labeller offline to label without the API"
        )
    return key


class ClaudeLabeller(Labeller):
    name = "claude"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_concurrent: int = 8,
        limits: RateLimits | None = None,
        retry: RetryPolicy | None = None,
        max_tokens: int = MAX_TOKENS,
        clock: Clock | None = None,
        seed: int | None = None,
        overload_cooldown_s: float = 2.0,
        _strict_response_validation: bool = False,
    ) -> None:
        self.model = model
        self._secret = api_key_from_env()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_tokens = max_tokens
        self.clock = clock or MonotonicClock()
        self._rng = random.Random(seed)
        self._client = anthropic.AsyncAnthropic(
            api_key=self._secret,
            base_url=base_url,  # None: the SDK reads ANTHROPIC_BASE_URL, else the public API
            max_retries=0,
            timeout=timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(
                event_hooks={"request": [self._on_request]}
            ),
            _strict_response_validation=_strict_response_validation,
        )
        self._limiter = RateLimiter(limits or RateLimits(), self.clock)
        self._concurrency = AdaptiveConcurrency(
            max_concurrent, self.clock, cooldown_s=overload_cooldown_s
        )
        self._schema = response_schema()
        self._output_estimate = 200.0
        self._usage = Usage()
        self._cost = 0.0
        self._cost_known = True
        self._requests = 0
        self._retries = 0
        self._sent_times: deque[float] = deque()  # requests of the last minute
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) of the last minute
        self._headers: dict[str, int | None] = {}
        self._last_error: str | None = None

    # ---- public
    async def label(
        self, component: ComponentData, architecture: ArchitectureInfo
    ) -> InterpretationResult:
        prompt = render_prompt(component, architecture)
        est_input = int((len(prompt.system) + len(prompt.user)) / CHARS_PER_TOKEN) + 16
        usage = Usage()
        transient_attempts = content_attempts = 0
        while True:
            try:
                text, used = await self._attempt(prompt, est_input)
                usage = usage + used
                parsed = parse_response(text)
            except _Transient as e:
                transient_attempts += 1
                self._note_error(e.reason)
                if transient_attempts >= self.retry.max_attempts:
                    raise LabelError(
                        self._redact(f"gave up after {transient_attempts} attempts: {e.reason}")
                    ) from None
                await self._backoff(e, transient_attempts)
                continue
            except (_Unusable, InvalidResponse) as e:
                if isinstance(e, _Unusable):
                    usage = usage + e.used
                content_attempts += 1
                self._note_error(str(e))
                if content_attempts >= self.retry.max_content_attempts:
                    raise LabelError(
                        self._redact(f"no usable answer after {content_attempts} tries: {e}")
                    ) from None
                self._retries += 1
                continue
            cost = cost_of(self.model, usage)
            return InterpretationResult(
                component_key=component.component_key,
                label=parsed.label,
                confidence=parsed.confidence,
                reasoning=parsed.reasoning,
                raw_response=text,
                labeller=self.name,
                model=self.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cost_usd=cost if cost is not None else 0.0,
                cost_known=cost is not None,
                timestamp=time.time(),
            )

    def stats(self) -> LabellerStats:
        now = self.clock.now()
        self._prune_recent(now)
        lim = self._limiter
        paused_for = lim.paused_until - now
        return LabellerStats(
            in_flight=self._concurrency.in_flight,
            concurrency_limit=self._concurrency.current,
            requests=self._requests,
            retries=self._retries,
            input_tokens=self._usage.input_tokens,
            output_tokens=self._usage.output_tokens,
            cache_creation_input_tokens=self._usage.cache_creation_input_tokens,
            cache_read_input_tokens=self._usage.cache_read_input_tokens,
            cost_usd=self._cost,
            cost_known=self._cost_known,
            requests_per_minute=float(len(self._sent_times)),
            tokens_per_minute=float(sum(t for _, t in self._recent)),
            ratelimit_requests_remaining=self._headers.get("requests"),
            ratelimit_tokens_remaining=self._headers.get("tokens"),
            ratelimit_input_tokens_remaining=self._headers.get("input-tokens"),
            ratelimit_output_tokens_remaining=self._headers.get("output-tokens"),
            budget_requests_remaining=lim.requests.remaining(now) if lim.requests else None,
            budget_input_tokens_remaining=(
                lim.input_tokens.remaining(now) if lim.input_tokens else None
            ),
            budget_output_tokens_remaining=(
                lim.output_tokens.remaining(now) if lim.output_tokens else None
            ),
            paused_until=time.time() + paused_for if paused_for > 0 else None,
            last_error=self._last_error,
        )

    async def aclose(self) -> None:
        await self._client.close()

    # ---- one request
    async def _attempt(self, prompt: Prompt, est_input: int) -> tuple[str, Usage]:
        """Send once. Returns (text, usage) or raises _Transient / _Unusable / fatal errors."""
        await self._concurrency.acquire()
        try:
            ticket = await self._limiter.acquire(est_input, round(self._output_estimate))
            self._requests += 1
            self._sent_times.append(self.clock.now())
            try:
                return await self._send(prompt, ticket)
            finally:
                ticket.close(self.clock.now())
        finally:
            await self._concurrency.release()

    async def _on_request(self, request: httpx2.Request) -> None:
        """HTTP event hook: trace this request so that its send time can be taken."""
        request.extensions["trace"] = self._trace

    async def _trace(self, event: str, info: dict[str, object]) -> None:
        """The moment the request headers go on the wire (after any connection set-up)."""
        if event.endswith("send_request_headers.started"):
            ticket = _SENDING.get()
            if ticket is not None:
                ticket.mark_sent(self.clock.now())

    async def _send(self, prompt: Prompt, ticket: Ticket) -> tuple[str, Usage]:
        sending = _SENDING.set(ticket)
        try:
            return await self._send_once(prompt, ticket)
        finally:
            _SENDING.reset(sending)

    async def _send_once(self, prompt: Prompt, ticket: Ticket) -> tuple[str, Usage]:
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self._client.messages.with_raw_response.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=[
                        {
                            "type": "text",
                            "text": prompt.system,
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                    messages=[{"role": "user", "content": prompt.user}],
                    output_config={"format": {"type": "json_schema", "schema": self._schema}},
                )
                self._read_ratelimit_headers(raw.headers)
                message = await raw.parse()
        except anthropic.APIStatusError as e:
            ticket.settle(0, 0)
            self._read_ratelimit_headers(e.response.headers)
            raise self._classify(e) from None
        except (anthropic.APIConnectionError, TimeoutError) as e:
            timed_out = isinstance(e, TimeoutError | anthropic.APITimeoutError)
            what = "timed out" if timed_out else "connection failed"
            raise _Transient(f"request {what} ({type(e).__name__})") from None
        except (json.JSONDecodeError, anthropic.APIResponseValidationError) as e:
            raise _Transient(f"malformed response body ({type(e).__name__})") from None

        u = message.usage
        used = Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
            cache_read_input_tokens=u.cache_read_input_tokens or 0,
        )
        self._account(used, ticket)
        self._concurrency.on_success()
        text = "".join(b.text for b in message.content if b.type == "text")
        if message.stop_reason == "refusal":
            raise _Unusable("the model refused", used)
        if message.stop_reason == "max_tokens":
            raise _Unusable(f"the answer was cut off at max_tokens ({self.max_tokens})", used)
        return text, used

    def _classify(self, e: anthropic.APIStatusError) -> Exception:
        status = e.status_code
        kind, message = _error_parts(e)
        reason = self._redact(f"HTTP {status} {kind}: {message}")
        if status == 401:
            return FatalLabellerError(
                f"the API rejected the key in {API_KEY_ENV} ({reason}); check the key"
            )
        if status == 403:
            return FatalLabellerError(f"the API key may not use this API or model ({reason})")
        if status == 402 or kind == "billing_error" or "credit balance" in message.lower():
            return FatalLabellerError(f"spend limit or credit exhausted ({reason})")
        if status == 404:
            return FatalLabellerError(f"model {self.model!r} not found ({reason}); check --model")
        retry_after = retry_after_seconds(e.response.headers)
        if status in (429, 529):
            return _Transient(reason, overload=True, retry_after=retry_after)
        if status in (408, 409) or status >= 500:
            return _Transient(reason, retry_after=retry_after)
        return LabelError(reason)

    # ---- bookkeeping
    def _account(self, used: Usage, ticket: Ticket) -> None:
        ticket.settle(used.input_tokens + used.cache_creation_input_tokens, used.output_tokens)
        self._output_estimate = 0.8 * self._output_estimate + 0.2 * used.output_tokens
        self._usage = self._usage + used
        cost = cost_of(self.model, used)
        if cost is None:
            self._cost_known = False
        else:
            self._cost += cost
        total = used.input_tokens + used.output_tokens
        total += used.cache_creation_input_tokens + used.cache_read_input_tokens
        self._recent.append((self.clock.now(), total))

    def _prune_recent(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - 60.0:
            self._recent.popleft()
        while self._sent_times and self._sent_times[0] <= now - 60.0:
            self._sent_times.popleft()

    def _read_ratelimit_headers(self, headers: httpx2.Headers) -> None:
        for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
            value = _int_header(headers, f"anthropic-ratelimit-{kind}-remaining")
            if value is not None:
                self._headers[kind] = value

    async def _backoff(self, e: _Transient, attempt: int) -> None:
        self._retries += 1
        if e.overload:
            self._concurrency.on_overload()
        if e.retry_after is not None:
            self._limiter.pause(min(e.retry_after, MAX_RETRY_AFTER_S))
            return
        ceiling = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(ceiling / 2, ceiling)
        if e.overload:
            self._limiter.pause(delay)  # the server is saturated: everyone waits
        else:
            await self.clock.sleep(delay)

    def _note_error(self, reason: str) -> None:
        self._last_error = self._redact(reason)
        log.debug("labelling attempt failed: %s", self._last_error)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _error_parts(e: anthropic.APIStatusError) -> tuple[str, str]:
    """(error type, message) from an API error body, tolerating bodies that are not JSON."""
    body = e.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("type", "error")), str(error.get("message", ""))[:300]
    return "error", str(e.message)[:300]
