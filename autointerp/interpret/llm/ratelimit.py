"""Client-side rate control: request and token budgets, a shared pause, adaptive concurrency.

Budgets are sliding windows: at most `limit` units (requests or tokens) in any window of
`window_s` seconds, as the server counts them. Token amounts are reserved from an estimate before a
request is sent and corrected to the real usage when the response comes back. A `retry-after`
from the server pauses every request, not just the one that got it. Concurrency follows AIMD:
halve on overload (429/529), grow by one per window of successes. The clock is injectable so
tests need not wait in real time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """Real time."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class _Entry:
    at: float
    amount: float
    open: bool = True
    """In flight: counts against the budget until it is closed, however long that takes."""


class SlidingWindow:
    """At most `limit` units in any `window_s` seconds, as the server sees them.

    An entry counts from the moment it is reserved, for as long as it is open (in flight), and
    until `window_s` after the time it is closed with. The server counts a request at some moment
    between our sending it and its answer, so closing with the answer time can never let the
    server see more than `limit` in a window of its own; `Ticket.close` uses the send time plus a
    margin instead when that is earlier (a long generation does not hold the slot).
    A single amount larger than `limit` goes when nothing else counts, never refused forever.
    """

    def __init__(self, limit: float, window_s: float = 60.0, slack: float = 0.0) -> None:
        if limit <= 0:
            raise ValueError("a budget must be positive")
        self.limit = float(limit)
        self.window_s = window_s * (1.0 + slack)
        self._entries: list[_Entry] = []

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        if any(not e.open and e.at <= horizon for e in self._entries):
            self._entries = [e for e in self._entries if e.open or e.at > horizon]

    def used(self, now: float) -> float:
        self._prune(now)
        return sum(e.amount for e in self._entries)

    def remaining(self, now: float) -> float:
        return max(0.0, self.limit - self.used(now))

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0: now; inf: not before a request in flight ends)."""
        used = self.used(now)
        if used + amount <= self.limit or used <= 0:
            return 0.0
        for entry in sorted((e for e in self._entries if not e.open), key=lambda e: e.at):
            used -= entry.amount
            if used + amount <= self.limit or used <= 0:
                return max(0.0, entry.at + self.window_s - now)
        return math.inf

    def reserve(self, amount: float, now: float) -> _Entry:
        entry = _Entry(now, amount)
        self._entries.append(entry)
        return entry


@dataclass
class Ticket:
    """What one request reserved. `settle` puts in the real token usage; `close` ends it.

    `mark_sent` records when the request left (an HTTP event hook); on close, the budget counts
    the request at `min(end, sent + margin_s)`: the margin covers the trip to the server.
    """

    entries: list[_Entry] = field(default_factory=list)
    input_entry: _Entry | None = None
    output_entry: _Entry | None = None
    on_close: Callable[[], None] | None = None
    margin_s: float = 0.0
    sent_at: float | None = None

    def mark_sent(self, now: float) -> None:
        self.sent_at = now

    def settle(self, input_tokens: int, output_tokens: int) -> None:
        if self.input_entry is not None:
            self.input_entry.amount = input_tokens
        if self.output_entry is not None:
            self.output_entry.amount = output_tokens

    def close(self, now: float) -> None:
        at = now if self.sent_at is None else min(now, self.sent_at + self.margin_s)
        for entry in self.entries:
            if entry.open:
                entry.open = False
                entry.at = at
        if self.on_close is not None:
            self.on_close()


@dataclass
class RateLimits:
    """Optional budgets; None means unlimited. `window_s` is 60 for per-minute budgets."""

    max_rpm: float | None = None
    max_input_tpm: float | None = None
    max_output_tpm: float | None = None
    window_s: float = 60.0
    slack: float = 0.0
    """Widen each window by this fraction (extra safety; 0 by default)."""
    send_margin: float = 0.02
    """A request counts at its send time plus this fraction of the window (1.2 s of a minute)."""


class RateLimiter:
    """Waits until a request fits every budget and no pause is in force, then reserves it."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.clock = clock

        def window(limit: float | None) -> SlidingWindow | None:
            return None if limit is None else SlidingWindow(limit, limits.window_s, limits.slack)

        self.requests = window(limits.max_rpm)
        self.input_tokens = window(limits.max_input_tpm)
        self.output_tokens = window(limits.max_output_tpm)
        self.paused_until: float = -math.inf
        self._margin_s = limits.window_s * limits.send_margin
        self._closed = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """Hold every request (including retries) for `seconds` from now."""
        self.paused_until = max(self.paused_until, self.clock.now() + seconds)

    def _wait_time(self, est_input: int, est_output: int, now: float) -> float:
        waits = [self.paused_until - now]
        if self.requests is not None:
            waits.append(self.requests.wait_time(1, now))
        if self.input_tokens is not None:
            waits.append(self.input_tokens.wait_time(est_input, now))
        if self.output_tokens is not None:
            waits.append(self.output_tokens.wait_time(est_output, now))
        return max(waits)

    async def acquire(self, est_input: int, est_output: int) -> Ticket:
        """Reserve budget for one request; the caller must `close` the ticket when it ends."""
        while True:
            now = self.clock.now()
            wait = self._wait_time(est_input, est_output, now)
            if wait <= 0:
                break
            if wait < math.inf:
                await self.clock.sleep(wait)
                continue
            # Only a request in flight ending can make room: wait for one to close.
            self._closed.clear()
            await self._closed.wait()
        ticket = Ticket(on_close=self._closed.set, margin_s=self._margin_s)
        if self.requests is not None:
            ticket.entries.append(self.requests.reserve(1, now))
        if self.input_tokens is not None:
            ticket.input_entry = self.input_tokens.reserve(est_input, now)
            ticket.entries.append(ticket.input_entry)
        if self.output_tokens is not None:
            ticket.output_entry = self.output_tokens.reserve(est_output, now)
            ticket.entries.append(ticket.output_entry)
        return ticket


@dataclass
class AdaptiveConcurrency:
    """AIMD limit on requests in flight: halve on overload (once per cooldown), +1 per window."""

    maximum: int
    clock: Clock
    minimum: int = 1
    cooldown_s: float = 2.0
    limit: float = field(init=False)
    in_flight: int = field(init=False, default=0)
    _last_decrease: float = field(init=False, default=-math.inf)
    _changed: asyncio.Condition = field(init=False, default_factory=asyncio.Condition)

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.limit = float(self.maximum)

    @property
    def current(self) -> int:
        return max(self.minimum, math.floor(self.limit))

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.current)
            self.in_flight += 1

    async def release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    def on_success(self) -> None:
        self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)

    def on_overload(self) -> None:
        now = self.clock.now()
        if now - self._last_decrease >= self.cooldown_s:
            self._last_decrease = now
            self.limit = max(float(self.minimum), self.limit / 2.0)
