"""Rate control: the continuously refilled bucket against a stepped reference, the limiter under
concurrency with a scaled clock, waiting in line, waking on time, give-backs, wire-time counting,
following the server's headers, the shared pause, and AIMD concurrency."""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.interpret.llm.ratelimit import (
    OVERLOAD_WINDOW,
    OVERLOADS_TO_HALVE,
    AdaptiveConcurrency,
    Bucket,
    MonotonicClock,
    RateLimiter,
    RateLimits,
)
from tests.interpret.clocks import ScaledClock


class ReferenceBucket:
    """Slow and obvious: a level that refills in small steps of time."""

    STEP = 1e-3

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.level, self.at = capacity, 0.0

    def advance(self, t: float) -> None:
        while self.at < t:
            step = min(self.STEP, t - self.at)
            self.at += step
            self.level = min(self.capacity, self.level + self.rate * step)

    def fits(self, amount: float) -> bool:
        return self.level >= min(amount, self.capacity) - 1e-9 or self.level >= self.capacity

    def first_fit(self, amount: float, t: float) -> float:
        """The first step from `t` at which `amount` fits (the bucket itself does not move)."""
        probe = ReferenceBucket(self.rate, self.capacity)
        probe.level, probe.at = self.level, self.at
        probe.advance(t)
        while not probe.fits(amount):
            probe.advance(probe.at + self.STEP)
        return probe.at


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(1, 10),
    capacity=st.integers(1, 5),
    requests=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 12)), max_size=15),
)
def test_bucket_waits_as_long_as_a_stepped_reference(
    rate: int, capacity: int, requests: list[tuple[int, int]]
) -> None:
    bucket = Bucket(rate, capacity)
    reference = ReferenceBucket(rate, capacity)
    now = 0.0
    for gap, amount in requests:
        now += gap
        start = now + bucket.wait_time(amount, now)
        expected = reference.first_fit(amount, now)
        assert abs(start - expected) <= ReferenceBucket.STEP + 1e-6, (start, expected)
        bucket.take(amount, start)
        reference.advance(start)
        reference.level -= amount
        now = start


async def test_requests_are_spaced_evenly_below_the_limit_not_sent_in_a_burst() -> None:
    """60 per minute is one per second: never a minute's budget at once."""
    clock = ScaledClock(scale=60.0)  # a gap of 6.3 virtual seconds takes 0.1 s
    limiter = RateLimiter(RateLimits(max_rpm=10, headroom=0.95), clock)
    starts: list[float] = []

    async def one() -> None:
        ticket = await limiter.acquire(100, 10)
        starts.append(clock.now())
        ticket.settle(100, 10)

    await asyncio.gather(*(one() for _ in range(12)))
    starts.sort()
    spacing = 60.0 / (10 * 0.95)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= spacing - 0.5  # 0.5 virtual s: the scaled clock's scheduling noise
    assert starts[-1] - starts[0] <= 11 * (spacing + 1.0)  # and not slower than it must be


async def test_token_budgets_take_estimates_and_settle_to_actual_usage() -> None:
    clock = ScaledClock(scale=10.0)  # a millisecond of scheduling noise is one token
    limiter = RateLimiter(
        RateLimits(max_input_tpm=6000, max_output_tpm=3000, headroom=1.0), clock
    )  # 100 and 50 tokens per second, one second's worth at most at once
    first = await limiter.acquire(600, 10)  # more than the bucket holds: goes into debt
    assert limiter.input_tokens is not None
    assert limiter.input_tokens.level(clock.now()) == pytest.approx(-500, abs=20)
    first.settle(150, 10)  # the real usage was a quarter of the estimate
    assert limiter.input_tokens.level(clock.now()) == pytest.approx(-50, abs=20)
    t0 = clock.now()
    await limiter.acquire(100, 10)  # waits for about 1.5 s of refill, not 6
    assert 0.5 <= clock.now() - t0 <= 3.0


async def test_with_no_request_budget_one_probe_goes_first_and_its_end_releases_the_rest() -> None:
    clock = ScaledClock(scale=1.0)
    limiter = RateLimiter(RateLimits(headroom=1.0), clock)  # nothing of our own: learn the limit
    probe = await limiter.acquire(10, 10)
    waiting = asyncio.create_task(limiter.acquire(10, 10))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # held until the probe is answered
    probe.settle(10, 10)  # answered without rate-limit headers (or failed): no limit to learn
    await asyncio.wait_for(waiting, timeout=2.0)


async def test_a_probe_cancelled_before_it_went_does_not_hold_the_others() -> None:
    clock = ScaledClock(scale=1.0)
    limiter = RateLimiter(RateLimits(headroom=1.0), clock)
    limiter.pause(3600.0)  # the probe waits, and is cancelled while waiting
    probe = asyncio.create_task(limiter.acquire(10, 10))
    await asyncio.sleep(0.02)
    other = asyncio.create_task(limiter.acquire(10, 10))
    await asyncio.sleep(0.02)
    probe.cancel()
    limiter.paused_until = clock.now()  # the pause is over
    await asyncio.wait_for(other, timeout=2.0)


async def test_a_request_the_server_refused_is_given_back() -> None:
    clock = ScaledClock(scale=600.0)
    limiter = RateLimiter(RateLimits(max_rpm=1, headroom=1.0), clock)
    ticket = await limiter.acquire(1, 1)
    ticket.give_back()  # 429/529/5xx: the server did not count it
    t0 = clock.now()
    await limiter.acquire(1, 1)
    assert clock.now() - t0 < 5.0  # not the 60 s a counted request would cost


async def test_a_give_back_after_later_requests_went_returns_only_what_they_left() -> None:
    """The refusal came back after the next request had gone: the server counted that one, so
    the budget is the bucket without the refused request, not one request fuller than now."""
    clock = ScaledClock(scale=600.0)
    limiter = RateLimiter(RateLimits(max_rpm=1, headroom=1.0), clock)
    refused = await limiter.acquire(1, 1)
    await limiter.acquire(1, 1)  # a minute later, when the bucket let it
    sent = clock.now()
    await clock.sleep(1.0)
    refused.give_back()  # the 429/529/5xx of the first arrives now
    await limiter.acquire(1, 1)
    assert clock.now() - sent >= 60.0 - 1.0  # not at once, a second after the last one went


async def test_a_give_back_wakes_the_requests_waiting_for_budget() -> None:
    clock = ScaledClock(scale=60.0)  # the minute a counted request costs takes 1 s
    limiter = RateLimiter(RateLimits(max_rpm=1, headroom=1.0), clock)
    refused = await limiter.acquire(1, 1)
    waiting = asyncio.create_task(limiter.acquire(1, 1))
    await clock.sleep(3.0)
    assert not waiting.done()  # the bucket is empty for another 57 s
    t0 = clock.now()
    refused.give_back()
    await asyncio.wait_for(waiting, timeout=2.0)
    assert clock.now() - t0 < 20.0  # at once, not 57 s later when its sleep would have ended


async def test_a_faster_rate_from_the_headers_wakes_the_requests_waiting() -> None:
    clock = ScaledClock(scale=60.0)
    limiter = RateLimiter(RateLimits(headroom=1.0), clock)  # no budget of our own
    limiter.follow({"requests": 1})
    await limiter.acquire(1, 1)
    waiting = asyncio.create_task(limiter.acquire(1, 1))
    await clock.sleep(3.0)
    assert not waiting.done()
    t0 = clock.now()
    limiter.follow({"requests": 6000})  # the server's limit was raised: 100 per second
    await asyncio.wait_for(waiting, timeout=2.0)
    assert clock.now() - t0 < 20.0


async def test_a_request_counts_from_when_it_went_on_the_wire() -> None:
    clock = ScaledClock(scale=600.0)
    limiter = RateLimiter(RateLimits(max_rpm=1, headroom=1.0), clock)
    ticket = await limiter.acquire(1, 1)
    await clock.sleep(30.0)  # a slow connection set-up
    ticket.mark_sent(clock.now())
    sent = clock.now()
    await limiter.acquire(1, 1)
    assert clock.now() - sent >= 60.0 - 1.0


async def test_a_request_counts_from_its_send_less_the_quickest_recent_send() -> None:
    """Every send takes a while (here 3 s of virtual time): counting each from its send would
    stretch every interval by that while. Counting it from its send less the quickest recent one
    spaces the sends themselves at the budget's interval."""
    clock = ScaledClock(scale=100.0)
    limiter = RateLimiter(RateLimits(max_rpm=4, headroom=1.0), clock)  # one per 15 s
    sends: list[float] = []
    for _ in range(6):
        ticket = await limiter.acquire(1, 1)
        await clock.sleep(3.0)
        ticket.mark_sent(clock.now())
        sends.append(clock.now())
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert gaps[0] >= 15.0 + 3.0 - 0.5  # the first send has no quicker one before it
    assert all(15.0 - 0.5 <= gap <= 15.0 + 1.5 for gap in gaps[1:]), gaps  # not 18


async def test_a_send_slower_than_the_quickest_still_pushes_the_next_one_back() -> None:
    clock = ScaledClock(scale=100.0)
    limiter = RateLimiter(RateLimits(max_rpm=4, headroom=1.0), clock)
    for _ in range(2):
        ticket = await limiter.acquire(1, 1)
        ticket.mark_sent(clock.now())  # sends that take no time
    slow = await limiter.acquire(1, 1)
    await clock.sleep(10.0)  # this one set up a connection first
    slow.mark_sent(clock.now())
    sent = clock.now()
    await limiter.acquire(1, 1)
    assert clock.now() - sent >= 15.0 - 0.5  # 15 s after it reached the server, not after it
    # was taken


async def test_requests_get_their_budget_in_the_order_they_asked() -> None:
    clock = ScaledClock(scale=200.0)
    limiter = RateLimiter(RateLimits(max_rpm=6, headroom=1.0), clock)  # one per 10 s
    order: list[int] = []

    async def one(i: int) -> None:
        await asyncio.sleep(0.001 * i)  # ask in the order of i
        await limiter.acquire(1, 1)
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(8)))
    assert order == list(range(8))


class CountingClock(ScaledClock):
    def __init__(self, scale: float) -> None:
        super().__init__(scale)
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        await super().sleep(seconds)


async def test_a_slot_wakes_the_first_in_line_not_every_request_waiting() -> None:
    """32 requests waiting for a budget of one at a time: each slot costs a sleep or two, not
    one for every request waiting (which is CPU that makes every wake later)."""
    clock = CountingClock(scale=600.0)
    limiter = RateLimiter(RateLimits(max_rpm=60, headroom=1.0), clock)  # one per s: 1.7 ms
    await asyncio.gather(*(limiter.acquire(1, 1) for _ in range(32)))
    assert clock.sleeps <= 3 * 32


async def test_a_cancelled_request_in_line_hands_its_turn_on() -> None:
    clock = ScaledClock(scale=60.0)
    limiter = RateLimiter(RateLimits(max_rpm=60, headroom=1.0), clock)
    await limiter.acquire(1, 1)  # the bucket is empty for a second
    first = asyncio.create_task(limiter.acquire(1, 1))
    second = asyncio.create_task(limiter.acquire(1, 1))
    third = asyncio.create_task(limiter.acquire(1, 1))
    await asyncio.sleep(0.005)
    first.cancel()  # the one sleeping on the clock
    second.cancel()  # and the next one, before its turn came
    await asyncio.wait_for(third, timeout=2.0)
    assert first.cancelled() and second.cancelled()


class LateClock:
    """Real time whose timers fire half a millisecond later still than the selector's rounding
    up to the next millisecond already makes them."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) + 0.0005)


async def test_the_first_in_line_goes_on_time_though_timers_fire_late() -> None:
    """At a bucket of one request, every late wake is lost for good: at 50 ms between requests a
    timer a millisecond late would cost 2% of the limit. The first in line sleeps to just before
    its time and yields to the loop for the rest. (Without that the mean gap here was 51.4 ms.)"""
    limiter = RateLimiter(RateLimits(max_rpm=1200, headroom=1.0), LateClock())  # 50 ms
    gc.collect()
    gc.disable()
    try:
        starts = []
        for _ in range(21):
            await limiter.acquire(1, 1)
            starts.append(time.monotonic())
    finally:
        gc.enable()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.050 - 1e-4  # never early
    assert statistics.mean(gaps) <= 0.050 + 0.0005  # and not a late timer's millisecond later


class SteppedClock:
    """Virtual time that moves only when slept on."""

    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.mark.parametrize("start", [0.0, 1e6])  # (11 days of uptime: coarser floating point)
async def test_the_last_moment_is_slept_on_a_clock_that_moves_only_when_slept_on(
    start: float,
) -> None:
    clock = SteppedClock(start)
    limiter = RateLimiter(RateLimits(max_rpm=60, headroom=1.0), clock)
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire(1, 1), timeout=2.0)
    assert clock.now() - start == pytest.approx(2.0)


def test_budgets_follow_the_servers_headers_where_they_are_lower() -> None:
    clock = ScaledClock(scale=1.0)
    none = RateLimiter(RateLimits(headroom=1.0), clock)
    none.follow({"requests": 120, "input-tokens": 60_000})
    assert none.requests is not None and none.requests.rate == pytest.approx(2.0)
    assert none.input_tokens is not None and none.input_tokens.rate == pytest.approx(1000.0)
    assert none.output_tokens is None
    lower = RateLimiter(RateLimits(max_rpm=60, headroom=1.0), clock)
    lower.follow({"requests": 120})  # ours is lower: kept
    assert lower.requests is not None and lower.requests.rate == pytest.approx(1.0)
    higher = RateLimiter(RateLimits(max_rpm=600, headroom=1.0), clock)
    higher.follow({"requests": 120})
    assert higher.requests is not None and higher.requests.rate == pytest.approx(2.0)
    off = RateLimiter(RateLimits(follow_headers=False), clock)
    off.follow({"requests": 120})
    assert off.requests is None


async def test_pause_holds_every_request() -> None:
    clock = ScaledClock(scale=100.0)
    limiter = RateLimiter(RateLimits(follow_headers=False), clock)  # no probe: all may go
    limiter.pause(20.0)
    t0 = clock.now()
    await asyncio.gather(*(limiter.acquire(1, 1) for _ in range(5)))
    assert clock.now() - t0 >= 20.0 - 0.5


async def test_aimd_halves_under_sustained_overload_once_per_cooldown_and_recovers() -> None:
    clock = ScaledClock(scale=1.0)
    aimd = AdaptiveConcurrency(maximum=16, clock=clock, cooldown_s=1000.0)
    for _ in range(OVERLOADS_TO_HALVE - 1):
        aimd.on_overload()
    assert aimd.current == 16  # scattered overloads: the pause answers them
    aimd.on_overload()
    assert aimd.current == 8
    aimd.on_overload()  # a burst of 529s from the same moment counts once
    assert aimd.current == 8
    successes = 0
    while aimd.current < 16:
        aimd.on_success()
        successes += 1
    assert 8 * 8 <= successes <= 16 * 8  # about one step per window of successes
    assert aimd.current == 16


@settings(max_examples=200, deadline=None)
@given(outcomes=st.lists(st.booleans() | st.just(False), max_size=300))
def test_aimd_halves_exactly_where_the_last_answers_hold_enough_overloads(
    outcomes: list[bool],
) -> None:
    """Against the obvious reading: before each answer, the limit is halved at an overload when
    the last `OVERLOAD_WINDOW` answers, this one included, hold `OVERLOADS_TO_HALVE` overloads
    (no cooldown here), and grows by 1/limit at a success."""
    aimd = AdaptiveConcurrency(maximum=64, clock=MonotonicClock(), cooldown_s=0.0)
    expected = 64.0
    for i, overload in enumerate(outcomes):
        window = outcomes[max(0, i + 1 - OVERLOAD_WINDOW) : i + 1]
        if overload:
            aimd.on_overload()
            if window.count(True) >= OVERLOADS_TO_HALVE:
                expected = max(1.0, expected / 2.0)
        else:
            aimd.on_success()
            expected = min(64.0, expected + 1.0 / expected)
        assert aimd.limit == pytest.approx(expected)


async def test_aimd_limit_bounds_requests_in_flight() -> None:
    aimd = AdaptiveConcurrency(maximum=3, clock=MonotonicClock(), cooldown_s=0.0)
    peak = 0

    async def one() -> None:
        nonlocal peak
        await aimd.acquire()
        peak = max(peak, aimd.in_flight)
        await asyncio.sleep(0.01)
        await aimd.release()

    await asyncio.gather(*(one() for _ in range(12)))
    assert peak == 3
    for _ in range(OVERLOADS_TO_HALVE):
        aimd.on_overload()
    assert aimd.current == 1
    peak = 0
    await asyncio.gather(*(one() for _ in range(4)))
    assert peak == 1
