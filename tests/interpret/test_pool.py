"""The labelling pool: each component ends in exactly one of results/failures; restarts pay once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autointerp.files import read_jsonl
from autointerp.interpret.base import Labeller
from autointerp.interpret.labeller import ModelLabeller
from autointerp.interpret.llm.errors import FatalAPIError
from autointerp.interpret.llm.retry import RetryPolicy
from autointerp.interpret.offline import OfflineLabeller
from autointerp.interpret.pool import LabellingPool
from autointerp.schemas import ComponentData, InterpretationResult, LabelFailure
from autointerp.store import RunDir
from tests.interpret.fake_api import (
    CONTENT_FAULTS,
    TRANSIENT_FAULTS,
    FakeMessagesServer,
    Fault,
)
from tests.interpret.labellers import claude_labeller
from tests.interpret.runs import components, make_run
from tests.interpret.samples import ARCH

SECRET = "sk-ant-pool-test-key-8d0c"
FEW_RETRIES = RetryPolicy(max_attempts=2, max_content_attempts=1, base_delay_s=0.005)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def claude(srv: FakeMessagesServer, **kwargs: Any) -> ModelLabeller:
    kwargs.setdefault("retry", FEW_RETRIES)
    kwargs.setdefault("timeout", 0.25)
    return claude_labeller(srv.base_url, seed=1, overload_cooldown_s=0.0, **kwargs)


async def run_pool(
    run: RunDir, labeller: Labeller, comps: list[ComponentData], **kwargs: Any
) -> LabellingPool:
    pool = LabellingPool(labeller, ARCH, run, **kwargs)
    queue: asyncio.Queue[ComponentData | None] = asyncio.Queue()
    for c in comps:
        queue.put_nowait(c)
    queue.put_nowait(None)
    try:
        await pool.run(queue)
    finally:
        await labeller.aclose()
    return pool


def files(run: RunDir) -> tuple[list[str], list[str]]:
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    failures, _ = read_jsonl(run.failures_path, LabelFailure)
    return [r.component_key for r in results], [f.component_key for f in failures]


def alive_keys(comps: list[ComponentData]) -> set[str]:
    return {c.component_key for c in comps if c.firing_count > 0}


async def test_faults_leave_each_component_in_exactly_one_file_and_restart_pays_once(
    tmp_path: Path,
) -> None:
    comps = components(80, dead_every=10)
    run = make_run(tmp_path, comps)
    kinds = [k for k in TRANSIENT_FAULTS + CONTENT_FAULTS if k is not Fault.SLOW]
    with FakeMessagesServer(fault_rate=0.3, fault_kinds=[*kinds, Fault.SLOW], slow_s=0.4) as srv:
        pool = await run_pool(run, claude(srv, max_concurrent=6), comps)
        faulted = sum(o != "ok" for o in srv.outcomes())
    results, failures = files(run)
    assert faulted >= 0.15 * len(srv.requests)  # 30% drawn at random
    assert len(results) == len(set(results)) and len(failures) == len(set(failures))
    assert not set(results) & set(failures)
    assert set(results) | set(failures) == alive_keys(comps)
    assert failures, "with 30% faults and one retry some components must fail"
    snap = pool.snapshot()
    assert (snap.done, snap.failed, snap.skipped_dead) == (len(results), len(failures), 8)
    assert snap.stop_reason == "done" and snap.in_flight == 0

    # Restart against a healthy server: only the failures are requested, each once.
    with FakeMessagesServer() as srv:
        pool = await run_pool(run, claude(srv, max_concurrent=6), comps)
        assert Counter(srv.keys_requested()) == Counter(failures)
    results_after, failures_after = files(run)
    assert failures_after == []
    assert sorted(results_after) == sorted(alive_keys(comps))
    assert pool.snapshot().done_this_run == len(failures)

    # A third start has nothing left to do.
    with FakeMessagesServer() as srv:
        await run_pool(run, claude(srv), comps)
        assert srv.requests == []


async def test_failures_stay_failed_without_retry(tmp_path: Path) -> None:
    comps = components(6)
    run = make_run(tmp_path, comps)
    with FakeMessagesServer(faults=[Fault.SERVER_ERROR] * 4) as srv:
        await run_pool(run, claude(srv, max_concurrent=2), comps[:2])
    _, failed = files(run)
    assert sorted(failed) == sorted(c.component_key for c in comps[:2])
    with FakeMessagesServer(faults=[Fault.SERVER_ERROR] * 4) as srv:  # fails again: 2nd run
        await run_pool(run, claude(srv, max_concurrent=2), comps[:2])
    again, _ = read_jsonl(run.failures_path, LabelFailure)
    assert [f.attempts for f in again] == [2, 2]
    before = run.failures_path.read_bytes()
    with FakeMessagesServer() as srv:
        pool = await run_pool(run, claude(srv), comps, retry_failed=False)
        assert sorted(srv.keys_requested()) == sorted(c.component_key for c in comps[2:])
    assert run.failures_path.read_bytes() == before
    assert pool.snapshot().skipped == 2


async def test_a_failure_that_already_has_a_result_is_dropped_on_start(tmp_path: Path) -> None:
    comps = components(3)
    run = make_run(tmp_path, comps)
    await run_pool(run, OfflineLabeller(), comps[:1])
    key = comps[0].component_key
    stale = LabelFailure(component_key=key, reason="old", attempts=1)
    other = LabelFailure(component_key=comps[1].component_key, reason="old", attempts=1)
    from autointerp.files import JsonlAppender

    with JsonlAppender(run.failures_path) as out:
        out.append(stale)
        out.append(other)
        out.append(other)  # a repeat
    pool = LabellingPool(OfflineLabeller(), ARCH, run, retry_failed=False)
    keys, labelled = [c.component_key for c in comps], {key}
    assert {k for k in keys if not pool.is_pending(k)} - labelled == {comps[1].component_key}
    assert files(run)[1] == [comps[1].component_key]
    assert [k for k in keys if pool.is_pending(k)] == [comps[2].component_key]


async def test_torn_last_result_line_is_tolerated_and_relabelled(tmp_path: Path) -> None:
    comps = components(4)
    run = make_run(tmp_path, comps)
    await run_pool(run, OfflineLabeller(), comps[:2])
    with open(run.results_path, "ab") as f:
        f.write(b'{"component_key": "' + comps[2].component_key.encode() + b'", "lab')
    pool = await run_pool(run, OfflineLabeller(), comps)
    results, _ = files(run)
    assert sorted(results) == sorted(c.component_key for c in comps)
    assert pool.snapshot().done_this_run == 2


async def test_dead_and_repeated_components_are_not_labelled(tmp_path: Path) -> None:
    comps = components(10, dead_every=5)
    run = make_run(tmp_path, comps)
    pool = await run_pool(run, OfflineLabeller(), comps + comps[:3])
    results, _ = files(run)
    assert sorted(results) == sorted(alive_keys(comps))
    snap = pool.snapshot()
    assert snap.skipped_dead == 2  # components 4 and 9
    assert snap.skipped == 2 + 3  # and the three repeats


async def test_budget_stops_new_requests_and_run_returns(tmp_path: Path) -> None:
    comps = components(40)
    run = make_run(tmp_path, comps)
    with FakeMessagesServer(latency=0.01) as srv:
        probe = claude(srv)
        await probe.label(comps[0], ARCH)  # writes the fake's prompt cache
        one = await probe.label(comps[0], ARCH)  # what each later request costs (cache read)
        await probe.aclose()
        budget = one.cost_usd * 5.5
        pool = await run_pool(run, claude(srv, max_concurrent=2), comps, budget_usd=budget)
        sent = len(srv.requests) - 2
    results, failures = files(run)
    snap = pool.snapshot()
    assert snap.stop_reason == "budget"
    assert 5 <= len(results) <= 5 + 2  # the in-flight ones finish and are recorded
    assert sent == len(results) and failures == []
    assert snap.cost_usd >= budget
    # A restart with the same budget spends nothing more: the budget covers the whole run.
    with FakeMessagesServer() as srv:
        pool = await run_pool(run, claude(srv), comps, budget_usd=budget)
        assert srv.requests == []
        assert pool.snapshot().stop_reason == "budget"


async def test_fatal_error_stops_the_pool_and_is_raised(tmp_path: Path) -> None:
    comps = components(30)
    run = make_run(tmp_path, comps)
    with FakeMessagesServer(faults=[Fault.AUTH] * 100, latency=0.01) as srv:
        with pytest.raises(FatalAPIError, match="rejected the key"):
            await run_pool(run, claude(srv, max_concurrent=4), comps)
        assert len(srv.requests) <= 4
    assert files(run) == ([], [])
    for path in run.root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()


async def test_stop_lets_in_flight_work_finish_and_be_recorded(tmp_path: Path) -> None:
    comps = components(40)
    run = make_run(tmp_path, comps)
    with FakeMessagesServer(latency=0.05) as srv:
        # A generous timeout: on a starved CPU a 0.25 s timeout retries a request, and the
        # server would see that key twice; timeouts are not what this test is about.
        pool = LabellingPool(claude(srv, timeout=5.0, max_concurrent=4), ARCH, run)
        queue: asyncio.Queue[ComponentData | None] = asyncio.Queue()
        for c in comps:
            queue.put_nowait(c)
        task = asyncio.ensure_future(pool.run(queue))
        while pool.snapshot().done_this_run < 6:
            await asyncio.sleep(0.01)
        pool.stop()
        await asyncio.wait_for(task, 5)
        await pool.labeller.aclose()
        requested = srv.keys_requested()
    results, _ = files(run)
    assert sorted(results) == sorted(requested)  # nothing sent was lost
    assert len(results) < len(comps)
    assert pool.snapshot().stop_reason == "stopped"
    assert queue.qsize() == len(comps) - len(results)  # the rest is still pending


async def test_cancelling_the_run_leaves_whole_lines_and_a_clean_restart(tmp_path: Path) -> None:
    """The daemon cancels the pool when its grace period is over: no torn or lost records."""
    comps = components(40)
    run = make_run(tmp_path, comps)
    with FakeMessagesServer(latency=0.03) as srv:
        labeller = claude(srv)
        pool = LabellingPool(labeller, ARCH, run)
        queue: asyncio.Queue[ComponentData | None] = asyncio.Queue()
        for c in [*comps, None]:
            queue.put_nowait(c)
        task = asyncio.ensure_future(pool.run(queue))
        while pool.snapshot().done_this_run < 10:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await labeller.aclose()
    first, report = read_jsonl(run.results_path, InterpretationResult)
    assert not report.torn_tail and not report.bad_lines
    assert 10 <= len(first) < len(comps)
    with FakeMessagesServer() as srv:
        await run_pool(run, claude(srv), comps)
        assert sorted(srv.keys_requested()) == sorted(
            set(alive_keys(comps)) - {r.component_key for r in first}
        )
    results, failures = files(run)
    assert sorted(results) == sorted(alive_keys(comps)) and failures == []


async def test_snapshot_reports_recent_labels_and_rates(tmp_path: Path) -> None:
    comps = components(30)
    run = make_run(tmp_path, comps)
    pool = await run_pool(run, OfflineLabeller(), comps)
    snap = pool.snapshot()
    assert len(snap.recent) == 20
    assert snap.recent[-1].key == comps[-1].component_key
    assert snap.labeller_name == "offline" and snap.model == "offline"
    assert snap.cost_usd == 0.0 and snap.started_at is not None


fault_scripts = st.lists(
    st.sampled_from([None, None, *(k for k in TRANSIENT_FAULTS if k is not Fault.SLOW)])
    | st.sampled_from(CONTENT_FAULTS),
    max_size=30,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=fault_scripts, concurrency=st.integers(1, 5))
def test_any_fault_script_keeps_the_invariant_and_restart_only_retries_failures(
    tmp_path_factory: pytest.TempPathFactory, script: list[Fault | None], concurrency: int
) -> None:
    comps = components(12, dead_every=6)
    run = make_run(tmp_path_factory.mktemp("run"), comps)

    async def scenario() -> None:
        with FakeMessagesServer(faults=script) as srv:
            await run_pool(run, claude(srv, max_concurrent=concurrency), comps)
        results, failures = files(run)
        assert len(results) == len(set(results)) and len(failures) == len(set(failures))
        assert not set(results) & set(failures)
        assert set(results) | set(failures) == alive_keys(comps)
        with FakeMessagesServer() as srv:  # no faults: a generous timeout, so no resend on a
            # loaded machine (a request past 0.25 s would be retried and counted twice)
            await run_pool(run, claude(srv, max_concurrent=concurrency, timeout=30.0), comps)
            assert Counter(srv.keys_requested()) == Counter(failures)
        assert sorted(files(run)[0]) == sorted(alive_keys(comps))

    asyncio.run(scenario())
