"""Rate control: the sliding-window budget against a brute-force reference, the limiter under
concurrency with a scaled clock, the shared pause, and AIMD concurrency."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.interpret.llm.ratelimit import (
    AdaptiveConcurrency,
    MonotonicClock,
    RateLimiter,
    RateLimits,
    SlidingWindow,
)
from tests.interpret.clocks import ScaledClock


def reference_fits(
    entries: list[tuple[float, float]], amount: float, t: float, window: float, limit: float
) -> bool:
    """Slow and obvious: the amounts started in (t - window, t], plus this one, fit the limit."""
    used = sum(a for s, a in entries if s > t - window)
    return used == 0 or used + amount <= limit


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 20),
    window=st.integers(1, 50),
    requests=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 25)), max_size=40),
)
def test_sliding_window_waits_exactly_as_long_as_the_reference_says(
    limit: int, window: int, requests: list[tuple[int, int]]
) -> None:
    budget = SlidingWindow(limit, window, slack=0.0)
    entries: list[tuple[float, float]] = []
    now = 0.0
    for gap, amount in requests:
        now += gap
        wait = budget.wait_time(amount, now)
        start = now + wait
        assert reference_fits(entries, amount, start, window, limit)
        if wait > 0:  # not a moment earlier
            assert not reference_fits(entries, amount, start - 1e-6, window, limit)
        budget.reserve(amount, start).open = False  # answered at once
        entries.append((start, amount))
        now = start


async def test_limiter_keeps_every_window_within_the_request_budget() -> None:
    clock = ScaledClock(scale=300.0)  # one 60 s window takes 0.2 s
    limiter = RateLimiter(RateLimits(max_rpm=10, slack=0.0), clock)
    starts: list[float] = []

    async def one() -> None:
        ticket = await limiter.acquire(100, 10)
        starts.append(clock.now())
        ticket.close(clock.now())  # an instant answer

    await asyncio.gather(*(one() for _ in range(35)))
    starts.sort()
    for i in range(len(starts) - 10):
        assert starts[i + 10] - starts[i] >= 60.0 - 1e-6
    # And it is not needlessly slow: 35 requests need 3 full windows after the first burst.
    assert starts[-1] < 3 * 60.0 + 30.0


async def test_token_budgets_reserve_estimates_and_settle_to_actual_usage() -> None:
    clock = ScaledClock(scale=600.0)
    limiter = RateLimiter(RateLimits(max_input_tpm=1000, max_output_tpm=300, slack=0.0), clock)
    first = await limiter.acquire(600, 100)
    t0 = clock.now()
    assert limiter.input_tokens is not None and limiter.output_tokens is not None
    assert limiter.input_tokens.remaining(clock.now()) == 400
    first.settle(200, 50)  # the real usage was smaller than the estimate
    first.close(clock.now())
    assert limiter.input_tokens.remaining(clock.now()) == 800
    second = await limiter.acquire(700, 100)  # fits now thanks to the correction: no wait
    second.close(clock.now())
    assert clock.now() - t0 < 30.0
    await limiter.acquire(500, 100)  # 900 + 500 > 1000: waits for the window to move on
    assert clock.now() - t0 >= 60.0 - 1e-6


async def test_requests_in_flight_hold_their_budget_until_they_end() -> None:
    """The window counts from the end of a request, so a slow request cannot be double-counted
    by the server: the next one waits for it to end, then for the window."""
    clock = ScaledClock(scale=600.0)
    limiter = RateLimiter(RateLimits(max_rpm=1), clock)
    ticket = await limiter.acquire(1, 1)
    waiter = asyncio.ensure_future(limiter.acquire(1, 1))
    await asyncio.sleep(0.2)  # 120 virtual seconds: far beyond the window
    assert not waiter.done()
    ended = clock.now()
    ticket.close(ended)
    (await waiter).close(clock.now())
    assert clock.now() - ended >= 60.0 - 1e-6


async def test_pause_holds_every_request() -> None:
    clock = ScaledClock(scale=100.0)
    limiter = RateLimiter(RateLimits(), clock)
    limiter.pause(20.0)
    t0 = clock.now()
    await asyncio.gather(*(limiter.acquire(1, 1) for _ in range(5)))
    assert clock.now() - t0 >= 20.0 - 0.5


async def test_aimd_halves_on_overload_once_per_cooldown_and_recovers() -> None:
    clock = ScaledClock(scale=1.0)
    aimd = AdaptiveConcurrency(maximum=16, clock=clock, cooldown_s=1000.0)
    aimd.on_overload()
    aimd.on_overload()  # a burst of 429s from the same moment counts once
    assert aimd.current == 8
    successes = 0
    while aimd.current < 16:
        aimd.on_success()
        successes += 1
    assert 8 * 8 <= successes <= 16 * 8  # about one step per window of successes
    assert aimd.current == 16


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
    aimd.on_overload()
    assert aimd.current == 1
    peak = 0
    await asyncio.gather(*(one() for _ in range(4)))
    assert peak == 1
