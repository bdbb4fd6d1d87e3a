"""Client-side rate control: continuously refilled budgets, a shared pause, adaptive concurrency.

The API's rate limiter is a token bucket: capacity refills continuously, and a limit of 60
requests per minute may be enforced as one request per second. So are ours (`Bucket`): each
budget admits `rate` units per second with a burst of at most one second's worth (one request),
run a little below the limit (`RateLimits.headroom`) so that jitter on the way to the server
never puts two requests closer than the server allows. A request is counted from the moment it
has gone on the wire (its body sent) when the HTTP client reports it (`Ticket.mark_sent`), so a
slow connection set-up or a stall between its headers and its body cannot bunch requests up at
the server; less the quickest recent send, which every request takes anyway (counting that too
stretches every interval by it: 0.86 of a 3000-per-minute limit instead of 0.89). Requests wait
for budget in line: only the first sleeps on the clock, so a slot wakes one waiter, not all of
them. Token amounts are taken from an estimate before sending and corrected to the real usage
when the answer comes. Where the server's `*-ratelimit-*-limit` headers say less than our
settings (or we have none), we follow them.
A request the server answered with an error status (429, 529, 5xx) did not count against its
limit, and it is given back: the bucket becomes what it would be had the request never been
sent, never fuller (the requests sent after it still count), and requests waiting for budget
are woken to use it at once. A `retry-after` pauses every request, not just the one that got
it. Concurrency follows AIMD: halve under sustained overload (529/503), grow by one per window
of successes; a 429 pauses but leaves concurrency alone (the budget, not the number in flight,
decides how fast requests go).
The clock is injectable so tests need not wait in real time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
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
        await asyncio.sleep(max(0.0, seconds))


class Bucket:
    """A token bucket kept as its theoretical arrival time (GCRA): `rate` units per second,
    at most `capacity` at once.

    `tat` is when the bucket would be full again; it holds `capacity - (tat - now) * rate`
    units. An amount fits when taking it leaves the bucket no emptier than zero; an amount
    larger than the capacity fits only into a full bucket (and leaves it in debt), so it is
    delayed, never refused forever.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("a budget must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.tat = -math.inf

    def level(self, now: float) -> float:
        """Units available now (negative: in debt after a correction or a large amount)."""
        return self.capacity - max(0.0, self.tat - now) * self.rate

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0: now)."""
        if self.tat <= now:
            return 0.0  # full: anything fits
        need = min(amount, self.capacity)
        return max(0.0, (need - self.level(now)) / self.rate)

    def take(self, amount: float, now: float) -> None:
        self.tat = max(self.tat, now) + amount / self.rate

    def correct(self, delta: float) -> None:
        """Used `delta` more (or, negative, less) than was taken."""
        self.tat += delta / self.rate

    def counted_at(self, sent_at: float, amount: float) -> None:
        """The server counted `amount` at `sent_at`, later than it was taken: the bucket
        cannot be fuller than it would be had it been taken then."""
        self.tat = max(self.tat, sent_at + amount / self.rate)

    def set_rate(self, rate: float, capacity: float, now: float) -> None:
        """A new rate (from the server's headers); what is owed is kept, in units."""
        owed = max(0.0, self.tat - now) * self.rate
        self.rate, self.capacity = float(rate), float(capacity)
        self.tat = now + owed / self.rate if owed > 0 else -math.inf


@dataclass
class Ticket:
    """What one request took. `mark_sent` records when it left (an HTTP event hook);
    `settle` puts in the real token usage; `give_back` returns the request to a server that
    did not count it (an error status)."""

    taken_at: float = 0.0
    requests: Bucket | None = None
    input_tokens: Bucket | None = None
    output_tokens: Bucket | None = None
    est_input: float = 0.0
    est_output: float = 0.0
    settled: bool = False
    counted: list[float] = field(default_factory=list)
    """[when the server counts it]: the limiter's record of this request, moved to the send
    time once known."""
    on_settled: Callable[[], None] | None = None
    """Called once the request is over, whatever its outcome (the startup probe's end)."""
    on_given_back: Callable[[Ticket], None] | None = None
    """Returns the request to the limiter's request budget (`RateLimiter._give_back`)."""
    on_sent: Callable[[float], float] | None = None
    """Told how long this send took, returns the quickest recent send (`RateLimiter._sent`)."""

    def mark_sent(self, now: float) -> None:
        """Count the request from when it went, less the least time a send takes: the next
        request, taken when this counted time allows, goes on the wire no sooner than that
        after it is taken."""
        least = self.on_sent(now - self.taken_at) if self.on_sent is not None else 0.0
        at = max(self.taken_at, now - least)
        if self.requests is not None:
            self.requests.counted_at(at, 1.0)
        if self.counted:
            self.counted[0] = max(self.counted[0], at)

    def settle(self, input_tokens: int, output_tokens: int) -> None:
        if self.settled:
            return
        self.settled = True
        if self.input_tokens is not None:
            self.input_tokens.correct(input_tokens - self.est_input)
        if self.output_tokens is not None:
            self.output_tokens.correct(output_tokens - self.est_output)
        if self.on_settled is not None:
            self.on_settled()

    def give_back(self) -> None:
        """The server refused or failed the request before counting it: nothing was used."""
        if self.settled:
            return
        if self.on_given_back is not None:
            self.on_given_back(self)
        elif self.requests is not None:
            self.requests.correct(-1.0)
        self.settle(0, 0)


@dataclass
class RateLimits:
    """Optional budgets; None means unlimited (until the server's headers say otherwise)."""

    max_rpm: float | None = None
    max_input_tpm: float | None = None
    max_output_tpm: float | None = None
    window_s: float = 60.0
    """The period the budgets are per (a minute; tests and benchmarks shrink it)."""
    headroom: float = 0.95
    """Run at this share of each limit, ours or the server's: the margin for jitter between
    our clock and the server's."""
    follow_headers: bool = True
    """Lower a budget to the server's `*-ratelimit-*-limit` header where that is lower."""


HEADER_KINDS = {"requests": "requests", "input": "input-tokens", "output": "output-tokens"}
"""Our budgets by the `*-ratelimit-<kind>-limit` header that can lower them."""
RECENT_REQUESTS = 256
FINE_WAIT_S = 0.0015
"""The first in line sleeps until this long before its time, then yields to the event loop
until the time comes: the selector rounds a timer up to the next millisecond, and at a bucket
of one request every wake that late is time lost for good (0.90 of a 3000-per-minute
limit instead of 0.92). Yielding for the last moment costs about that long of a core per request."""
ROUNDING_S = 1e-6
"""A wait this short is floating-point rounding, not time to wait: a clock that moves only when
slept on may not move at all for it (a microsecond is far below any network's jitter)."""
RECENT_SENDS = 64
"""Recent sends (budget taken to body on the wire) whose quickest is discounted."""
TOKEN_BURST_S = 1.0
"""A token budget holds at most this many seconds of its rate (like the server's buckets)."""


class RateLimiter:
    """Waits until a request fits every budget and no pause is in force, then takes it."""

    def __init__(self, limits: RateLimits, clock: Clock) -> None:
        self.clock = clock
        self.limits = limits
        self._configured = {
            "requests": limits.max_rpm,
            "input": limits.max_input_tpm,
            "output": limits.max_output_tpm,
        }
        self.buckets: dict[str, Bucket] = {}
        for kind, limit in self._configured.items():
            if limit is not None:
                self.buckets[kind] = self._bucket(kind, limit / limits.window_s)
        self.followed: dict[str, float] = {}
        """Budgets lowered to the server's headers: per-minute limit by kind."""
        self.paused_until: float = -math.inf
        self._heard = asyncio.Event()
        """Set once any answer came back: until then, with no request budget of our own and
        headers to follow, one request goes alone and the others wait to learn the limit."""
        if self.requests is not None or not limits.follow_headers:
            self._heard.set()
        self._probing = False
        self._recent_requests: deque[list[float]] = deque(maxlen=RECENT_REQUESTS)
        """When recent requests were counted (taken, then moved to when they were sent): a
        request budget made from the server's header counts them, so that the request after the
        first answer does not go at once, and a give-back replays the ones sent after it."""
        self._changed = asyncio.Event()
        """Set (and replaced) when budget comes back early, to wake the request waiting."""
        self._line: deque[asyncio.Future[None]] = deque()
        """Requests waiting for budget, first come first served: only the first sleeps on
        the clock; it hands over to the next when it has taken its budget (or gave up)."""
        self._send_durations: deque[float] = deque(maxlen=RECENT_SENDS)

    def _bucket(self, kind: str, per_second: float) -> Bucket:
        rate = per_second * self.limits.headroom
        return Bucket(rate, 1.0 if kind == "requests" else max(1.0, rate * TOKEN_BURST_S))

    @property
    def requests(self) -> Bucket | None:
        return self.buckets.get("requests")

    @property
    def input_tokens(self) -> Bucket | None:
        return self.buckets.get("input")

    @property
    def output_tokens(self) -> Bucket | None:
        return self.buckets.get("output")

    def _notify(self) -> None:
        """Budget came back (or the rate rose): the waiters work out their wait again."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        """Sleep `seconds` on the clock, or until `_notify`, whichever comes first."""
        changed = self._changed
        sleeping = asyncio.ensure_future(self.clock.sleep(seconds))
        woken = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()

    def _give_back(self, ticket: Ticket) -> None:
        """The server did not count this request: the request budget becomes what it would be
        had it never been sent. Taking the request out of the bucket's history and replaying
        the rest: the requests counted after it keep their place (a bucket that filled up to
        its capacity while they were sent did not hold the returned request), so the budget
        comes back only where it was not spent since. (Simply moving the bucket back by one
        request would let a request go at once after another that was sent a moment ago.)"""
        bucket = self.requests
        counted = ticket.counted
        if bucket is None or not counted:
            return
        for i, entry in enumerate(self._recent_requests):
            if entry is counted:
                del self._recent_requests[i]
                break
        else:
            return  # too old to replay what came after it: keep it counted
        at = counted[0]
        later = sorted(t for (t,) in self._recent_requests if t >= at)
        floor = max(
            (t + (len(later) - i) / bucket.rate for i, t in enumerate(later)), default=-math.inf
        )
        bucket.tat = max(bucket.tat - 1.0 / bucket.rate, floor)
        self._notify()

    def _sent(self, took: float) -> float:
        """A request took `took` seconds from its budget to the wire; returns the least a send
        took before it (0 for the first: it counts from its send)."""
        least = min(self._send_durations, default=0.0)
        self._send_durations.append(max(0.0, took))
        return least

    def _leave_line(self, turn: asyncio.Future[None]) -> None:
        """`turn` is no longer waiting; if it was first, the next one's turn comes."""
        first = self._line[0] is turn
        self._line.remove(turn)
        if first and self._line and not self._line[0].done():
            self._line[0].set_result(None)

    def pause(self, seconds: float) -> None:
        """Hold every request (including retries) for `seconds` from now."""
        self.paused_until = max(self.paused_until, self.clock.now() + seconds)

    def follow(self, server_limits: Mapping[str, int]) -> None:
        """Lower each budget to the server's stated per-minute limit where that is lower than
        ours (or where we have none)."""
        self._heard.set()
        if not self.limits.follow_headers:
            return
        now = self.clock.now()
        for kind, header in HEADER_KINDS.items():
            limit = server_limits.get(header)
            if limit is None or limit <= 0 or self.followed.get(kind) == limit:
                continue
            ours = self._configured[kind]
            per_second = limit / 60.0
            if ours is not None and ours / self.limits.window_s <= per_second:
                continue
            self.followed[kind] = limit
            fresh = self._bucket(kind, per_second)
            bucket = self.buckets.get(kind)
            if bucket is None:
                if kind == "requests":
                    for (counted_at,) in sorted(self._recent_requests):
                        fresh.take(1.0, counted_at)
                self.buckets[kind] = fresh
            else:
                bucket.set_rate(fresh.rate, fresh.capacity, now)
                self._notify()  # a faster rate may let a waiting request go sooner

    def _wait_time(self, amounts: dict[str, float], now: float) -> float:
        waits = [self.paused_until - now]
        waits += [b.wait_time(amounts[k], now) for k, b in self.buckets.items()]
        return max(waits)

    async def acquire(self, est_input: int, est_output: int) -> Ticket:
        """Take budget for one request (waiting until it fits)."""
        amounts = {"requests": 1.0, "input": float(est_input), "output": float(est_output)}
        probe = False
        if not self._heard.is_set():
            if self._probing:
                await self._heard.wait()
            else:
                self._probing = probe = True
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        try:
            if self._line[0] is not turn:
                await turn
            yielded_at: float | None = None
            while True:
                now = self.clock.now()
                wait = self._wait_time(amounts, now)
                if wait <= ROUNDING_S:
                    break
                if wait - FINE_WAIT_S > ROUNDING_S:
                    await self._sleep(wait - FINE_WAIT_S)
                elif now != yielded_at:
                    yielded_at = now
                    await asyncio.sleep(0)  # the last moment: yield to the loop, not a timer
                else:
                    await self._sleep(wait)  # a clock that moves only when slept on
        except BaseException:
            if probe:
                self._heard.set()  # the probe never went: nobody may wait for its answer
            raise
        finally:
            self._leave_line(turn)  # the next one runs only after this takes its budget
        for kind, bucket in self.buckets.items():
            bucket.take(amounts[kind], now)
        counted = [now]
        self._recent_requests.append(counted)
        return Ticket(
            taken_at=now,
            counted=counted,
            requests=self.requests,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            est_input=float(est_input),
            est_output=float(est_output),
            on_settled=self._heard.set if probe else None,
            on_given_back=self._give_back,
            on_sent=self._sent,
        )

    def remaining(self, kind: str) -> float | None:
        """What the budget of `kind` (`requests`, `input`, `output`) holds now, None if none."""
        bucket = self.buckets.get(kind)
        return None if bucket is None else bucket.level(self.clock.now())


OVERLOAD_WINDOW = 32
OVERLOADS_TO_HALVE = 8
"""Concurrency is halved when this many of the last `OVERLOAD_WINDOW` answers were overloads
(529/503): a server that keeps saying so (then an overload's backoff also pauses every request,
not just its own). Halving on every overload would pin the limit near sqrt(2 / p) for an
overload share p, whatever the budget allows: 8 in flight at 3% overloads, 160 requests a
minute at 3 s an answer. Scattered overloads are met by the backoff of the requests they hit.
By chance, 8 in 32 comes up about once in a million answers at a 3% share of overloads, once
in 330 at 10%, once in 6 at 25% (where the cooldown spaces the halvings)."""


@dataclass
class AdaptiveConcurrency:
    """AIMD limit on requests in flight: halve under sustained overload (at most once per
    cooldown), +1 per window of successes."""

    maximum: int
    clock: Clock
    minimum: int = 1
    cooldown_s: float = 2.0
    limit: float = field(init=False)
    in_flight: int = field(init=False, default=0)
    _last_decrease: float = field(init=False, default=-math.inf)
    _changed: asyncio.Condition = field(init=False, default_factory=asyncio.Condition)
    _recent: deque[bool] = field(init=False, default_factory=lambda: deque(maxlen=OVERLOAD_WINDOW))
    """The last answers: True for an overload."""

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
        self._recent.append(False)
        self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)

    def on_overload(self) -> bool:
        """Count an overload; returns whether overloads are sustained (halving, if the
        cooldown allows)."""
        self._recent.append(True)
        if sum(self._recent) < OVERLOADS_TO_HALVE:
            return False
        now = self.clock.now()
        if now - self._last_decrease >= self.cooldown_s:
            self._last_decrease = now
            self.limit = max(float(self.minimum), self.limit / 2.0)
        return True
