"""The batch client against a loopback Message Batches server, through the real SDK (strict).

Half price, each entry paid once, errored and expired entries retried in later batches, content
faults asked again as new entries, a restart that polls the open batch instead of submitting it
again, and orphans (a submission whose answer was lost) adopted or, when the server never had
them, submitted again.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from autointerp.interpret.llm.anthropic import AnthropicProvider
from autointerp.interpret.llm.anthropic_batches import AnthropicBatches
from autointerp.interpret.llm.batch_client import BatchClient, entry_id
from autointerp.interpret.llm.batch_ledger import BatchLedger
from autointerp.interpret.llm.errors import FatalAPIError, InvalidAnswer, RequestFailed
from autointerp.interpret.llm.options import BatchOptions
from autointerp.interpret.llm.pricing import HAIKU_4_5, Usage, batch_price, cost_usd
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.llm.retry import RetryPolicy
from tests.interpret.fake_batches import FakeBatchServer

SECRET = "sk-ant-batch-test-secret-0123456789"
MODEL = "claude-haiku-4-5-20251001"
FAST = BatchOptions(size=25, max_wait_s=0.3, idle_s=0.1, poll_s=0.05, settle_s=0.6)
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def client(srv: FakeBatchServer, state: Path, *, timeout: float = 5.0, **kw: Any) -> BatchClient:
    provider = AnthropicProvider(
        MODEL, base_url=srv.base_url, timeout=timeout, _strict_response_validation=True
    )
    c = BatchClient(AnthropicBatches(provider), kw.pop("options", FAST), **kw)
    c.attach(state)
    return c


def request(i: int) -> Request:
    return Request(system="label it", user=f"Component: c:{i}\n", schema=SCHEMA, tag=f"label c:{i}")


def parse(text: str) -> str:
    try:
        return str(json.loads(text)["label"])
    except (ValueError, KeyError, TypeError):
        raise InvalidAnswer("not the label JSON") from None


async def ask_all(c: BatchClient, ids: range) -> list[Any]:
    return list(
        await asyncio.gather(*(c.complete(request(i), parse) for i in ids), return_exceptions=True)
    )


async def test_batches_cost_half_and_every_entry_is_paid_once(tmp_path: Path) -> None:
    with FakeBatchServer(
        process_s=0.2, entry_fault_rate=0.3, entry_fault_kinds=["errored_transient", "expired"]
    ) as srv:
        c = client(srv, tmp_path)
        done = await ask_all(c, range(60))
        await c.aclose()
        assert all(not isinstance(d, Exception) for d in done), done
        assert [d.answer for d in done] == [f"fake label for c:{i}" for i in range(60)]
        assert srv.paid_twice() == []
        assert len(srv.succeeded_ids()) == 60  # each question answered (and billed) once
        assert len(srv.batches_created()) >= 4  # 60 in batches of 25, then the retries
        billed = Usage(**srv.billed_usage())
        recorded = sum((d.usage for d in done), Usage())
        assert recorded == billed
        half = cost_usd(batch_price(HAIKU_4_5), billed)
        assert sum(d.cost_usd for d in done) == pytest.approx(half)
        assert half == pytest.approx(cost_usd(HAIKU_4_5, billed) / 2)
        assert c.stats().cost_usd == pytest.approx(half)
        assert c.stats().pending_cost_usd == pytest.approx(0.0, abs=1e-12)
        ledger = BatchLedger(tmp_path)
        assert {r.batch_id for r in ledger.records.values()} == set(srv.batches_created())
        assert all(r.status == "ended" for r in ledger.records.values())


async def test_an_invalid_entry_fails_that_request_alone(tmp_path: Path) -> None:
    bad = entry_id(MODEL, request(3))
    with FakeBatchServer(
        process_s=0.1, entry_outcome=lambda cid, p, n: "errored_invalid" if cid == bad else None
    ) as srv:
        c = client(srv, tmp_path)
        done = await ask_all(c, range(6))
        await c.aclose()
    assert isinstance(done[3], RequestFailed) and "invalid_request_error" in str(done[3])
    assert all(not isinstance(d, Exception) for i, d in enumerate(done) if i != 3)
    assert srv.paid_twice() == []


async def test_an_unusable_answer_is_asked_again_and_both_are_paid_for(tmp_path: Path) -> None:
    with FakeBatchServer(
        process_s=0.1, entry_outcome=lambda cid, p, n: "refusal" if n == 0 else None
    ) as srv:
        c = client(srv, tmp_path)
        done = await ask_all(c, range(3))
        await c.aclose()
    assert [d.answer for d in done] == [f"fake label for c:{i}" for i in range(3)]
    assert len(srv.batches_created()) == 2  # the refusals, then the second attempts
    assert Usage(**srv.billed_usage()) == sum((d.usage for d in done), Usage())
    assert srv.paid_twice() == []


async def test_a_restart_polls_the_open_batch_and_never_submits_it_again(tmp_path: Path) -> None:
    with FakeBatchServer(process_s=1.5) as srv:
        first = client(srv, tmp_path)
        asking = asyncio.create_task(ask_all(first, range(10)))
        while not any(r.batch_id for r in BatchLedger(tmp_path).records.values()):
            await asyncio.sleep(0.02)
        asking.cancel()  # the daemon stops while the batch runs
        await first.aclose()
        assert len(srv.batches_created()) == 1

        second = client(srv, tmp_path)  # the next start asks the same questions
        assert second.stats().batch.in_progress == 1  # type: ignore[union-attr]
        done = await ask_all(second, range(10))
        await second.aclose()
    assert [d.answer for d in done] == [f"fake label for c:{i}" for i in range(10)]
    assert len(srv.batches_created()) == 1
    assert srv.paid_twice() == []


async def test_a_lost_submission_answer_is_found_on_the_server_and_adopted(tmp_path: Path) -> None:
    # The server records the batch, then answers after the client has timed out: an orphan.
    with FakeBatchServer(process_s=0.2, create_latency_s=1.0) as srv:
        c = client(srv, tmp_path, timeout=0.4)
        done = await ask_all(c, range(5))
        await c.aclose()
    assert [d.answer for d in done] == [f"fake label for c:{i}" for i in range(5)]
    assert len(srv.batches_created()) == 1
    assert srv.paid_twice() == []
    (record,) = BatchLedger(tmp_path).records.values()
    assert record.batch_id == srv.batches_created()[0] and "adopted" in record.note


async def test_a_submission_the_server_never_got_is_submitted_again(tmp_path: Path) -> None:
    with FakeBatchServer(process_s=0.1, batch_faults={"create": ["drop"]}) as srv:
        c = client(srv, tmp_path)
        done = await ask_all(c, range(4))
        await c.aclose()
    assert [d.answer for d in done] == [f"fake label for c:{i}" for i in range(4)]
    assert len(srv.batches_created()) == 1
    statuses = sorted(r.status for r in BatchLedger(tmp_path).records.values())
    assert statuses == ["abandoned", "ended"]


async def test_a_dropped_answer_after_the_batch_was_created_is_adopted(tmp_path: Path) -> None:
    with FakeBatchServer(process_s=0.1, batch_faults={"create": ["drop_after_record"]}) as srv:
        c = client(srv, tmp_path)
        done = await ask_all(c, range(4))
        await c.aclose()
    assert [d.answer for d in done] == [f"fake label for c:{i}" for i in range(4)]
    assert len(srv.batches_created()) == 1
    assert srv.paid_twice() == []


async def test_the_key_is_in_no_error_and_no_ledger_file(tmp_path: Path) -> None:
    with FakeBatchServer(process_s=0.1, entry_outcome=lambda cid, p, n: "errored_invalid") as srv:
        c = client(srv, tmp_path)
        done = await ask_all(c, range(2))
        await c.aclose()
    assert all(isinstance(d, RequestFailed) and SECRET not in str(d) for d in done)
    assert all(SECRET.encode() not in p.read_bytes() for p in tmp_path.iterdir())


async def test_an_unreachable_api_stops_the_run_naming_the_url(tmp_path: Path) -> None:
    """Nothing ever got through: the run stops after the bound instead of waiting forever."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = AnthropicProvider(MODEL, base_url=f"http://127.0.0.1:{port}", timeout=2.0)
    retry = RetryPolicy(unreachable_give_up_s=0.5, base_delay_s=0.05)
    c = BatchClient(AnthropicBatches(provider), FAST, retry=retry)
    c.attach(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(FatalAPIError, match=f"cannot reach the API at http://127.0.0.1:{port}"):
        await asyncio.wait_for(c.complete(request(0), parse), timeout=20)
    await c.aclose()
    assert time.monotonic() - t0 < 5.0
    assert {r.status for r in BatchLedger(tmp_path).records.values()} == {"abandoned"}
