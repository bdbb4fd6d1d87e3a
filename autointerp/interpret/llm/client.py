"""`LLMClient`: one model call with everything around it that no task should write twice.

`complete(request, parse)` waits for a concurrency slot and for the budgets (`ratelimit.py`),
sends through the provider, and retries: transient errors (429, 529, 5xx, timeouts, dropped
connections) with jittered exponential backoff or the server's `retry-after` (which pauses every
request, not just the one that got it; so does the backoff of a 429, or of a 529 when the server
keeps answering so); unusable answers (a refusal, a cut-off answer, text
that `parse` rejects) a bounded number of times. It accounts usage and cost over every attempt
and keeps the stats the dashboard shows. The API key never appears in a message it makes.

Connection failures (refused, DNS, TLS) are retried too, but while nothing has ever got through
they stop the run after `RetryPolicy.unreachable_give_up_s`, naming the URL: a wrong
`--base-url` or a missing network would otherwise fail every item ten times over.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from autointerp.interpret.llm.errors import (
    FatalAPIError,
    InvalidAnswer,
    RequestFailed,
    Transient,
    Unusable,
    redact,
)
from autointerp.interpret.llm.pricing import Price, Usage, cost_usd, warn_unknown_price
from autointerp.interpret.llm.provider import Provider, Reply, Request, notify_when_sent
from autointerp.interpret.llm.ratelimit import (
    AdaptiveConcurrency,
    Clock,
    MonotonicClock,
    RateLimiter,
    RateLimits,
    Ticket,
)
from autointerp.interpret.llm.retry import MAX_RETRY_AFTER_S, Reachability, RetryPolicy
from autointerp.interpret.llm.stats import ClientStats

log = logging.getLogger(__name__)

T = TypeVar("T")

CHARS_PER_TOKEN = 3.5
"""For the input-token estimate reserved against `--max-input-tpm` before sending."""


@dataclass(frozen=True)
class Completion(Generic[T]):
    """A parsed answer and what it cost, summed over every attempt this request took."""

    answer: T
    text: str
    usage: Usage
    cost_usd: float | None
    """None when the model's price is unknown (never a silent zero)."""


class LLMClient:
    """Shared by every task of a run, so that one pacing and one concurrency limit cover all."""

    def __init__(
        self,
        provider: Provider,
        *,
        max_concurrent: int = 8,
        limits: RateLimits | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        overload_cooldown_s: float = 2.0,
        price: Price | None = None,
    ) -> None:
        """`price`: what a token costs when given (`--price-*-per-mtok`), else the provider's."""
        self.provider = provider
        self.max_concurrent = max_concurrent
        """Most requests in flight at once; AIMD lowers the live limit under sustained 529s."""
        self.retry = retry or RetryPolicy()
        self.clock = clock or MonotonicClock()
        self._rng = random.Random(seed)
        self._limiter = RateLimiter(limits or RateLimits(), self.clock)
        self._concurrency = AdaptiveConcurrency(
            max_concurrent, self.clock, cooldown_s=overload_cooldown_s
        )
        self._price = price if price is not None else provider.price()
        if self._price is None:
            warn_unknown_price(self.model)
        self._output_estimate = 200.0
        self._usage = Usage()
        self._cost = 0.0
        self._requests = 0
        self._retries = 0
        self._sent_times: deque[float] = deque()  # requests of the last minute
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) of the last minute
        self._last_error: str | None = None
        self._reachability = Reachability(self.retry.unreachable_give_up_s)
        self._fatal: FatalAPIError | None = None

    @property
    def model(self) -> str:
        return self.provider.model

    # ---- public
    async def complete(self, request: Request, parse: Callable[[str], T]) -> Completion[T]:
        """Ask until `parse` accepts an answer. Raises `RequestFailed` (give up on this request)
        or `FatalAPIError` (stop the run)."""
        est_input = int((len(request.system) + len(request.user)) / CHARS_PER_TOKEN) + 16
        usage = Usage()
        transient_attempts = content_attempts = 0
        while True:
            if self._fatal is not None:
                raise self._fatal
            try:
                reply = await self._attempt(request, est_input)
                usage = usage + reply.usage
                answer = parse(reply.text)
            except Transient as e:
                transient_attempts += 1
                self._note_error(e.reason)
                self._check_reachable(e)
                if transient_attempts >= self.retry.max_attempts:
                    raise RequestFailed(
                        self._redact(f"gave up after {transient_attempts} attempts: {e.reason}")
                    ) from None
                await self._backoff(e, transient_attempts)
                continue
            except (Unusable, InvalidAnswer) as e:
                if isinstance(e, Unusable):
                    usage = usage + e.used
                content_attempts += 1
                self._note_error(str(e))
                if content_attempts >= self.retry.max_content_attempts:
                    raise RequestFailed(
                        self._redact(f"no usable answer after {content_attempts} tries: {e}")
                    ) from None
                self._retries += 1
                continue
            except FatalAPIError as e:
                self._fatal = FatalAPIError(self._redact(str(e)))
                raise self._fatal from None
            except RequestFailed as e:
                raise RequestFailed(self._redact(str(e))) from None
            return Completion(answer, reply.text, usage, self._cost_of(usage))

    def stats(self) -> ClientStats:
        now = self.clock.now()
        self._prune_recent(now)
        lim = self._limiter
        paused_for = lim.paused_until - now
        headers = self.provider.ratelimit_remaining
        return ClientStats(
            in_flight=self._concurrency.in_flight,
            concurrency_limit=self._concurrency.current,
            requests=self._requests,
            retries=self._retries,
            input_tokens=self._usage.input_tokens,
            output_tokens=self._usage.output_tokens,
            cache_creation_input_tokens=self._usage.cache_creation_input_tokens,
            cache_read_input_tokens=self._usage.cache_read_input_tokens,
            cost_usd=self._cost,
            cost_known=self._price is not None,
            requests_per_minute=float(len(self._sent_times)),
            tokens_per_minute=float(sum(t for _, t in self._recent)),
            ratelimit_requests_remaining=headers.get("requests"),
            ratelimit_tokens_remaining=headers.get("tokens"),
            ratelimit_input_tokens_remaining=headers.get("input-tokens"),
            ratelimit_output_tokens_remaining=headers.get("output-tokens"),
            budget_requests_remaining=lim.remaining("requests"),
            budget_input_tokens_remaining=lim.remaining("input"),
            budget_output_tokens_remaining=lim.remaining("output"),
            paused_until=time.time() + paused_for if paused_for > 0 else None,
            last_error=self._last_error,
        )

    def attach(self, state_dir: Path) -> None:
        """Nothing is kept across starts: a request is answered or retried while it runs."""

    async def aclose(self) -> None:
        await self.provider.aclose()

    # ---- one request
    async def _attempt(self, request: Request, est_input: int) -> Reply:
        """Send once, holding a concurrency slot and a budget ticket for the request's life."""
        await self._concurrency.acquire()
        try:
            ticket = await self._limiter.acquire(est_input, round(self._output_estimate))
            self._requests += 1
            self._sent_times.append(self.clock.now())
            return await self._send(request, ticket)
        finally:
            await self._concurrency.release()

    async def _send(self, request: Request, ticket: Ticket) -> Reply:
        try:
            with notify_when_sent(lambda: ticket.mark_sent(self.clock.now())):
                reply = await self.provider.send(request)
        except Unusable as e:
            self._account(e.used, ticket)
            raise
        except Transient as e:
            if e.rejected:
                ticket.give_back()  # an error status: the server did not count it
            else:
                ticket.settle(0, 0)  # no tokens for a request it did not answer
            raise
        except (RequestFailed, FatalAPIError):
            ticket.settle(0, 0)
            raise
        finally:
            self._limiter.follow(self.provider.ratelimit_limits)
        self._account(reply.usage, ticket)
        return reply

    # ---- bookkeeping
    def _account(self, used: Usage, ticket: Ticket) -> None:
        self._reachability.answered()
        self._concurrency.on_success()
        ticket.settle(used.input_tokens + used.cache_creation_input_tokens, used.output_tokens)
        self._output_estimate = 0.8 * self._output_estimate + 0.2 * used.output_tokens
        self._usage = self._usage + used
        self._cost += self._cost_of(used) or 0.0
        total = used.input_tokens + used.output_tokens
        total += used.cache_creation_input_tokens + used.cache_read_input_tokens
        self._recent.append((self.clock.now(), total))

    def _cost_of(self, used: Usage) -> float | None:
        return None if self._price is None else cost_usd(self._price, used)

    def _prune_recent(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - 60.0:
            self._recent.popleft()
        while self._sent_times and self._sent_times[0] <= now - 60.0:
            self._sent_times.popleft()

    def _check_reachable(self, e: Transient) -> None:
        """Stop the run when connections have failed for a while and none ever succeeded."""
        fatal = self._reachability.check(e, self.clock.now())
        if fatal is not None:
            self._fatal = FatalAPIError(self._redact(str(fatal)))
            raise self._fatal

    async def _backoff(self, e: Transient, attempt: int) -> None:
        self._retries += 1
        sustained = self._concurrency.on_overload() if e.overload else False
        if e.retry_after is not None:
            self._limiter.pause(min(e.retry_after, MAX_RETRY_AFTER_S))
            return
        ceiling = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(ceiling / 2, ceiling)
        deadline = self._reachability.deadline(e)
        if deadline is not None:
            # Wake in time to give up when the deadline comes, not a long backoff after it.
            delay = min(delay, max(0.0, deadline - self.clock.now()) + 0.05)
        if e.rate_limited or sustained:
            self._limiter.pause(delay)  # our budget is spent, or the server is saturated
        else:
            await self.clock.sleep(delay)  # a 5xx, or an overload among many answers

    def _note_error(self, reason: str) -> None:
        self._last_error = self._redact(reason)
        log.debug("model request failed: %s", self._last_error)

    def _redact(self, text: str) -> str:
        """The key never appears in a message we make."""
        return redact(text, self.provider.secret)
