"""Labelling throughput against the loopback Messages API: `python -m bench.interpret`.

The fake server enforces a rate limit of R requests per W seconds the way the real API counts,
as a bucket refilled continuously and holding one request (W scaled down from a minute so the
whole benchmark takes about a minute) with a log-normal latency, optionally faulting 30%
of requests (429, 529, 500, dropped connections, non-JSON bodies, slow answers past the timeout,
refusals, max_tokens stops, invalid JSON; `--faults http` leaves out the last three). The real
SDK and the real pool label N components into a temporary run directory (windows x limit
components). Reported: labels per minute over the whole
run; the share of the server's limit that became labels (requests the server accepted and answered
with a label in the first windows-1 windows, over the most it accepts in that time); the share of
the limit the client sent in that time, faulted requests included, and how many of those were
faulted (labels / limit cannot exceed sent / limit times the unfaulted share); requests the
server refused with 429; and the time from start (before the labeller is built) to the first
request.

Two client set-ups: `--max-rpm` set to the server's limit (the client paces itself), and no
client budget at all (the client follows the server's `anthropic-ratelimit-requests-limit`
header from the first answer on). "429 once steady" counts the server's rate-limit rejections
after the first window. `--headroom` sets the share of each limit the client runs at (the
product keeps a 5% margin for jitter between its clock and the server's), to measure what that
margin costs, and `--jitter-ms J` holds each request for a uniform 0 to J ms before the server's
limiter counts it (the network's varying delay, which loopback lacks), to measure what the margin
protects. `--error-latency-ms M` answers error statuses after a median M ms instead of an answer's
120 ms, as the real API, which generates nothing for an error, does. `--ignore-pauses` is an
ablation, not a setting of the product: the client does not hold its requests for a 429's
`retry-after` or a backoff (each failed request still waits its own), to measure what honouring
the server's pauses costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autointerp.files import read_jsonl
from autointerp.interpret.llm.ratelimit import RateLimiter, RateLimits
from autointerp.interpret.llm.retry import RetryPolicy
from autointerp.interpret.pool import LabellingPool
from autointerp.schemas import ComponentData, InterpretationResult
from tests.interpret.fake_api import CONTENT_FAULTS, TRANSIENT_FAULTS, FakeMessagesServer, Fault
from tests.interpret.labellers import claude_labeller
from tests.interpret.runs import components, make_run
from tests.interpret.samples import ARCH

FAULT_MIXES = {"all": TRANSIENT_FAULTS + CONTENT_FAULTS, "http": TRANSIENT_FAULTS}
"""What the faults are drawn from: every kind, or only those of the HTTP exchange (the model's
answer itself is never refused, cut off or malformed)."""


@dataclass
class Row:
    scenario: str
    labels: int
    failed: int
    requests: int
    refused: int
    refused_steady: int
    per_minute: float
    of_limit: float
    """Answered requests the server accepted in the first (windows - 1) windows, over the most it
    allows in that time: the share of the limit that became labels."""
    sent_of_limit: float
    """Requests sent in the same time (faulted ones included), over the same most: the share of
    the limit the client used. Labels / limit can be at most this times the share of requests
    that were not faulted."""
    faulted: float
    """Share of the requests sent in that time that the server faulted (429 from the bucket
    excluded)."""
    first_request_ms: float
    seconds: float


def latency_around(median_s: float) -> Callable[[random.Random], float]:
    """Log-normal with this median, long tail capped at 1.5 s."""
    return lambda rng: min(1.5, rng.lognormvariate(math.log(median_s), 0.5))


latency = latency_around(0.12)


@contextlib.contextmanager
def pauses_ignored(ignore: bool) -> Iterator[None]:
    """The ablation: `RateLimiter.pause` does nothing while this holds (when `ignore`)."""
    if not ignore:
        yield
        return
    pause = RateLimiter.pause
    RateLimiter.pause = lambda self, seconds: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        RateLimiter.pause = pause  # type: ignore[method-assign]


async def scenario(
    name: str,
    *,
    limit: int,
    window: float,
    windows: int,
    fault_rate: float,
    client_budget: bool,
    headroom: float,
    jitter_s: float,
    fault_kinds: tuple[Fault, ...],
    error_latency_s: float | None,
    ignore_pauses: bool = False,
) -> Row:
    comps = components(windows * limit)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeMessagesServer(
            rate_limit=(limit, window),
            latency=latency,
            arrival_jitter=lambda rng: rng.uniform(0.0, jitter_s),
            error_latency=None if error_latency_s is None else latency_around(error_latency_s),
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
            retry_after_s=window / 20,
            slow_s=1.5,
            seed=7,
        ) as srv,
    ):
        run = make_run(Path(tmp), comps)
        t0 = time.monotonic()
        labeller = claude_labeller(
            srv.base_url,
            timeout=0.8,
            max_concurrent=32,
            limits=(
                RateLimits(max_rpm=limit, window_s=window, follow_headers=False, headroom=headroom)
                if client_budget
                else RateLimits(headroom=headroom)
            ),
            retry=RetryPolicy(base_delay_s=window / 60, max_delay_s=window),
            overload_cooldown_s=0.3,
            seed=1,
            strict=False,
        )
        pool = LabellingPool(labeller, ARCH, run)
        queue: asyncio.Queue[ComponentData | None] = asyncio.Queue()
        for c in comps:
            queue.put_nowait(c)
        queue.put_nowait(None)
        with pauses_ignored(ignore_pauses):
            await pool.run(queue)
        await labeller.aclose()
        end = time.monotonic()
        first_request = min(r.at for r in srv.requests) - t0
        outcomes = srv.outcomes()
        first = min(r.at for r in srv.requests)
        horizon = first + (windows - 1) * window
        useful = sum(r.outcome == "ok" and r.at < horizon for r in srv.requests)
        sent = [r.outcome for r in srv.requests if r.at < horizon]
        injected = sum(o not in ("ok", "rate_limited") for o in sent)
        results, _ = read_jsonl(run.results_path, InterpretationResult)
    snap = pool.snapshot()
    elapsed = end - t0
    return Row(
        scenario=name,
        labels=len(results),
        failed=snap.failed,
        requests=len(outcomes),
        refused=outcomes.count("rate_limited"),
        refused_steady=sum(
            r.outcome == "rate_limited" and r.at >= first + window for r in srv.requests
        ),
        per_minute=len(results) / elapsed * 60,
        of_limit=useful / ((windows - 1) * limit),
        sent_of_limit=len(sent) / ((windows - 1) * limit),
        faulted=injected / max(1, len(sent)),
        first_request_ms=first_request * 1000,
        seconds=elapsed,
    )


def table(rows: list[Row], args: argparse.Namespace) -> str:
    limit, window = args.limit, args.window
    errors = (
        "as slow as answers"
        if args.error_latency_ms is None
        else f"after a median {args.error_latency_ms:g} ms"
    )
    head = (
        f"Server limit: {limit} requests per {window:g} s "
        f"({limit / window * 60:.0f}/min); latency log-normal, median 120 ms; "
        f"arrival jitter 0 to {args.jitter_ms:g} ms; faults drawn from {args.faults}: "
        f"{', '.join(f.value for f in FAULT_MIXES[args.faults])}; errors {errors}; "
        f"client runs at {args.headroom:g} of each limit"
        f"{' and ignores pauses (ablation)' if args.ignore_pauses else ''}.\n\n"
        "| scenario | labels | failed | requests | 429 from limit | 429 once steady "
        "| labels/min (whole run) | labels / limit | sent / limit | faulted "
        "| start → first request | time |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r.scenario} | {r.labels} | {r.failed} | {r.requests} | {r.refused} "
        f"| {r.refused_steady} "
        f"| {r.per_minute:.0f} | {r.of_limit:.2f} | {r.sent_of_limit:.2f} | {r.faulted:.0%} "
        f"| {r.first_request_ms:.0f} ms | {r.seconds:.1f} s |"
        for r in rows
    ]
    return head + "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench-not-a-real-key")
    rows = []
    for name, fault_rate, budget in [
        ("--max-rpm = limit, no faults", 0.0, True),
        ("no client budget, no faults", 0.0, False),
        ("--max-rpm = limit, 30% faults", 0.3, True),
        ("no client budget, 30% faults", 0.3, False),
    ]:
        row = await scenario(
            name,
            limit=args.limit,
            window=args.window,
            windows=args.windows,
            fault_rate=fault_rate,
            client_budget=budget,
            headroom=args.headroom,
            jitter_s=args.jitter_ms / 1000,
            fault_kinds=FAULT_MIXES[args.faults],
            error_latency_s=None if args.error_latency_ms is None else args.error_latency_ms / 1000,
            ignore_pauses=args.ignore_pauses,
        )
        print(f"{name}: {row.labels} labels in {row.seconds:.1f} s", flush=True)
        rows.append(row)
    print()
    print(table(rows, args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20, help="server requests per window")
    parser.add_argument("--window", type=float, default=4.0, help="server window, seconds")
    parser.add_argument("--windows", type=int, default=6, help="components = windows x limit")
    parser.add_argument(
        "--headroom",
        type=float,
        default=RateLimits.headroom,
        help="share of each limit the client runs at (the product's jitter margin: %(default)s)",
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="hold each request a uniform 0 to this many ms before the server counts it",
    )
    parser.add_argument(
        "--faults",
        choices=sorted(FAULT_MIXES),
        default="all",
        help="what the 30%% faults are drawn from (http: error statuses, drops, non-JSON bodies "
        "and slow answers, no refusals or bad labels)",
    )
    parser.add_argument(
        "--error-latency-ms",
        type=float,
        default=None,
        help="median time to an error status (log-normal; default: as slow as an answer)",
    )
    parser.add_argument(
        "--ignore-pauses",
        action="store_true",
        help="ablation: do not hold every request for a 429's retry-after or a backoff",
    )
    parsed = parser.parse_args()
    if not 0 < parsed.headroom <= 1:
        parser.error("--headroom must be in (0, 1]")
    if not 0 <= parsed.jitter_ms < 1000:
        parser.error("--jitter-ms must be in [0, 1000)")
    if parsed.error_latency_ms is not None and not 0 < parsed.error_latency_ms < 1000:
        parser.error("--error-latency-ms must be in (0, 1000)")
    asyncio.run(main(parsed))
