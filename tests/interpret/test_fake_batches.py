"""The loopback Message Batches server against the real SDK in strict mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from tests.interpret.fake_batches import BatchFault, EntryOutcome, FakeBatchServer

PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5-20251001",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Component: model.layers.0.mlp:1"}],
}


class ManualClock:
    """The fake's clock, moved by the test: no waiting for batches to end."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def requests(*custom_ids: str, params: dict[str, Any] | None = None) -> list[Any]:
    return [{"custom_id": c, "params": params or PARAMS} for c in custom_ids]


def sdk(srv: FakeBatchServer, timeout: float = 5.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=srv.base_url,
        api_key="k",
        max_retries=0,
        timeout=timeout,
        _strict_response_validation=True,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def srv(clock: ManualClock) -> Iterator[FakeBatchServer]:
    with FakeBatchServer(process_s=1.0, clock=clock, seed=3) as server:
        yield server


def results(client: anthropic.Anthropic, batch_id: str) -> list[MessageBatchIndividualResponse]:
    lines = list(client.messages.batches.results(batch_id))
    # the SDK builds the lines without validation: check them strictly here
    return [MessageBatchIndividualResponse.model_validate(x.model_dump()) for x in lines]


def test_create_retrieve_and_results_through_the_strict_sdk(
    srv: FakeBatchServer, clock: ManualClock
) -> None:
    client = sdk(srv)
    ids = [f"c{i}" for i in range(12)]
    batch = client.messages.batches.create(requests=requests(*ids))
    assert isinstance(batch, MessageBatch)
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 12 and batch.ended_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(86400)
    assert srv.submissions == [(batch.id, ids, clock.t)]
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(batch.id)
    raw = httpx.get(f"{srv.base_url}/v1/messages/batches/{batch.id}/results")
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"

    clock.advance(0.5)  # half of the entries are done: the counts move (progressive_counts)
    half = client.messages.batches.retrieve(batch.id)
    assert half.processing_status == "in_progress"
    assert (half.request_counts.processing, half.request_counts.succeeded) == (6, 6)

    clock.advance(0.5)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 12 and ended.request_counts.processing == 0
    assert ended.ended_at is not None and ended.ended_at > ended.created_at
    assert ended.results_url == f"{srv.base_url}/v1/messages/batches/{batch.id}/results"

    first, again = results(client, batch.id), results(client, batch.id)
    order = [line.custom_id for line in first]
    assert sorted(order) == sorted(ids) and order != ids  # any order, keyed by custom_id
    assert [line.model_dump() for line in again] == [line.model_dump() for line in first]
    line = first[0]
    assert line.result.type == "succeeded"
    message = line.result.message
    assert isinstance(message, Message) and message.stop_reason == "end_turn"
    assert "fake label for model.layers.0.mlp:1" in message.content[0].text  # type: ignore[union-attr]
    assert sorted(srv.succeeded_ids()) == sorted(ids)
    billed = srv.billed_usage()
    assert billed["input_tokens"] == sum(x.result.message.usage.input_tokens for x in first)  # type: ignore[union-attr]
    assert billed["output_tokens"] == sum(x.result.message.usage.output_tokens for x in first)  # type: ignore[union-attr]


def test_the_real_apis_counts_stay_in_processing_until_the_end(clock: ManualClock) -> None:
    with FakeBatchServer(process_s=1.0, clock=clock, progressive_counts=False) as srv:
        client = sdk(srv)
        batch = client.messages.batches.create(requests=requests("a", "b", "c"))
        clock.advance(0.9)
        counts = client.messages.batches.retrieve(batch.id).request_counts
        assert (counts.processing, counts.succeeded) == (3, 0)
        clock.advance(0.1)
        counts = client.messages.batches.retrieve(batch.id).request_counts
        assert (counts.processing, counts.succeeded) == (0, 3)


def test_every_outcome_kind_in_the_results(clock: ManualClock) -> None:
    script = {
        "ok": "succeeded",
        "transient": "errored_transient",
        "invalid": "errored_invalid",
        "gone": "expired",
        "cancelled": EntryOutcome.CANCELED,
        "refused": "refusal",
        "cut": "max_tokens",
    }
    seen_index: list[int] = []

    def outcome(custom_id: str, params: Any, submission: int) -> str | None:
        seen_index.append(submission)
        return script.get(custom_id)

    with FakeBatchServer(process_s=0.0, clock=clock, entry_outcome=outcome) as srv:
        client = sdk(srv)
        bad_params = {"model": "claude-haiku-4-5-20251001", "max_tokens": 0, "messages": []}
        batch = client.messages.batches.create(
            requests=[*requests(*script), *requests("malformed", params=bad_params)]
        )
        assert set(seen_index) == {0}
        ended = client.messages.batches.retrieve(batch.id)
        counts = ended.request_counts
        assert ended.processing_status == "ended"
        assert (counts.succeeded, counts.errored, counts.expired, counts.canceled) == (3, 3, 1, 1)
        by_id = {line.custom_id: line.result for line in results(client, batch.id)}
    assert by_id["ok"].type == "succeeded"
    refused, cut = by_id["refused"], by_id["cut"]
    assert refused.type == "succeeded" and refused.message.stop_reason == "refusal"
    assert cut.type == "succeeded" and cut.message.stop_reason == "max_tokens"
    assert by_id["gone"].type == "expired" and by_id["cancelled"].type == "canceled"
    transient, invalid, malformed = by_id["transient"], by_id["invalid"], by_id["malformed"]
    assert transient.type == "errored" and invalid.type == "errored"
    assert transient.error.type == "error"
    assert transient.error.error.type in ("api_error", "overloaded_error")
    assert invalid.error.error.type == "invalid_request_error"
    assert malformed.type == "errored" and malformed.error.error.type == "invalid_request_error"
    assert "max_tokens" in malformed.error.error.message
    assert sorted(srv.succeeded_ids()) == ["cut", "ok", "refused"]


def test_seeded_entry_faults_are_stable_and_drawn_from_the_given_kinds(clock: ManualClock) -> None:
    def outcomes(seed: int) -> list[tuple[str, str]]:
        with FakeBatchServer(
            process_s=0.0,
            clock=clock,
            seed=seed,
            entry_fault_rate=0.5,
            entry_fault_kinds=["errored_transient", "expired"],
        ) as srv:
            client = sdk(srv)
            batch = client.messages.batches.create(requests=requests(*[f"k{i}" for i in range(40)]))
            return [(x.custom_id, x.result.type) for x in results(client, batch.id)]

    first = outcomes(7)
    assert first == outcomes(7) and first != outcomes(8)
    kinds = [kind for _, kind in first]
    assert set(kinds) == {"succeeded", "errored", "expired"}
    assert 8 <= kinds.count("succeeded") <= 32


def test_list_paginates_newest_first(srv: FakeBatchServer) -> None:
    client = sdk(srv)
    created = [client.messages.batches.create(requests=requests(f"x{i}")).id for i in range(5)]
    newest_first = created[::-1]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more and (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # auto-paging
    last = client.messages.batches.list(limit=2, after_id=newest_first[3])
    assert [b.id for b in last.data] == newest_first[4:] and not last.has_more
    before = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3] and before.has_more
    assert [b.id for b in client.messages.batches.list(limit=2, before_id=newest_first[4])] == (
        newest_first[2:4] + newest_first[:2]  # pages of the closest two, going back
    )
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=0)
    assert client.messages.batches.list(limit=1000).has_more is False


def test_cancel_ends_the_batch_with_the_unfinished_entries_canceled(
    srv: FakeBatchServer, clock: ManualClock
) -> None:
    client = sdk(srv)
    batch = client.messages.batches.create(requests=requests("a", "b", "c", "d"))
    clock.advance(0.5)  # two of four are done
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None and canceling.results_url is None
    assert canceling.request_counts.processing == 2
    clock.advance(srv.cancel_s)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (2, 2)
    kinds = sorted(line.result.type for line in results(client, batch.id))
    assert kinds == ["canceled", "canceled", "succeeded", "succeeded"]
    assert len(srv.succeeded_ids()) == 2
    clock.advance(5.0)  # the canceled entries stay canceled after their planned end
    assert len(srv.succeeded_ids()) == 2
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.cancel(batch.id)


def test_delete_only_once_ended(srv: FakeBatchServer, clock: ManualClock) -> None:
    client = sdk(srv)
    batch = client.messages.batches.create(requests=requests("a"))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)
    clock.advance(1.0)
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    assert list(client.messages.batches.list()) == []
    assert srv.batches_created() == [batch.id]  # still counted as submitted
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")


@pytest.mark.parametrize(
    "bad",
    [
        [],
        requests("has space"),
        requests("x" * 65),
        requests("same", "same"),
        requests("a", "b", "c", "d"),  # more than max_requests=3
        [{"custom_id": "noparams"}],
    ],
)
def test_batch_validation_is_a_400(bad: list[Any], clock: ManualClock) -> None:
    with FakeBatchServer(clock=clock, max_requests=3) as srv:
        with pytest.raises(anthropic.BadRequestError) as error:
            sdk(srv).messages.batches.create(requests=bad)
        assert error.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert srv.batches_created() == [] and srv.submissions == []


def test_paid_twice_counts_resubmissions_of_succeeded_or_in_progress_entries(
    srv: FakeBatchServer, clock: ManualClock
) -> None:
    fates = {"s": "succeeded", "e": "errored_transient", "x": "expired", "i": "errored_invalid"}
    srv.entry_outcome = lambda custom_id, _params, _n: fates.get(custom_id)
    client = sdk(srv)
    client.messages.batches.create(requests=requests("s", "e", "x", "i"))
    clock.advance(1.0)  # ended
    client.messages.batches.create(requests=requests("s", "e", "x", "i"))  # only s paid twice
    assert srv.paid_twice() == ["s"]

    clock.advance(1.0)
    client.messages.batches.create(requests=requests("p", "q"))
    clock.advance(0.1)  # still in progress: resubmitting it pays twice
    client.messages.batches.create(requests=requests("p"))
    assert srv.paid_twice() == ["s", "p"]

    doomed = client.messages.batches.create(requests=requests("r"))
    client.messages.batches.cancel(doomed.id)  # canceled before it finished: not paid
    client.messages.batches.create(requests=requests("r"))
    assert srv.paid_twice() == ["s", "p"]
    # the counts are as of each resubmission: later outcomes do not change them
    clock.advance(10.0)
    assert srv.paid_twice() == ["s", "p"]


def test_create_latency_makes_an_orphan_when_the_client_times_out() -> None:
    with FakeBatchServer(create_latency_s=1.0) as srv:
        client = sdk(srv, timeout=0.2)
        with pytest.raises(anthropic.APITimeoutError):
            client.messages.batches.create(requests=requests("a", "b"))
        (orphan,) = srv.batches_created()  # recorded although its id never reached the client
        assert srv.submissions[0].custom_ids == ["a", "b"]
        listed = [b.id for b in client.messages.batches.list()]
        assert listed == [orphan]  # a client can find it again by listing


def test_scripted_http_faults(clock: ManualClock) -> None:
    faults: dict[str, list[BatchFault | str | None]] = {
        "create": ["server_error", "drop_after_record", "overloaded"],
        "retrieve": ["drop", None],
        "results": ["truncate"],
    }
    with FakeBatchServer(process_s=0.0, clock=clock, batch_faults=faults) as srv:
        client = sdk(srv)
        many = requests(*[f"k{i}" for i in range(20)])
        with pytest.raises(anthropic.InternalServerError):
            client.messages.batches.create(requests=many)
        assert srv.batches_created() == []  # failed before recording
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.create(requests=many)
        (orphan,) = srv.batches_created()  # recorded, then the connection dropped
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            client.messages.batches.create(requests=many)
        assert overloaded.value.status_code == 529
        batch = client.messages.batches.create(requests=many)
        assert srv.batches_created() == [orphan, batch.id]
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.retrieve(batch.id)
        with pytest.raises(anthropic.APIConnectionError):  # the results stream breaks halfway
            results(client, batch.id)
        assert len(results(client, batch.id)) == 20
        outcomes = [c.outcome for c in srv.batch_calls_to("create")]
    assert outcomes == ["server_error", "drop", "overloaded", "ok"]


def test_random_drops_after_record_make_orphans(clock: ManualClock) -> None:
    with FakeBatchServer(clock=clock, create_drop_after_record_rate=1.0) as srv:
        client = sdk(srv)
        for _ in range(3):
            with pytest.raises(anthropic.APIConnectionError):
                client.messages.batches.create(requests=requests("a"))
        assert len(srv.batches_created()) == 3
        assert srv.paid_twice() == ["a", "a"]  # each retry paid again for the same request


def test_an_entry_can_fail_the_first_time_and_succeed_when_resubmitted(clock: ManualClock) -> None:
    def outcome(custom_id: str, params: Any, n: int) -> str | None:
        return "errored_transient" if n == 0 else None

    with FakeBatchServer(clock=clock, process_s=0.0, entry_outcome=outcome) as srv:
        client = sdk(srv)
        first = client.messages.batches.create(requests=requests("a", "b"))
        assert {x.result.type for x in results(client, first.id)} == {"errored"}
        second = client.messages.batches.create(requests=requests("a", "b"))
        assert {x.result.type for x in results(client, second.id)} == {"succeeded"}
        assert srv.paid_twice() == [] and sorted(srv.succeeded_ids()) == ["a", "b"]


def test_random_http_faults_are_seeded(clock: ManualClock) -> None:
    def statuses(seed: int) -> list[int]:
        with FakeBatchServer(clock=clock, seed=seed, http_fault_rate=0.5) as srv:
            client = sdk(srv)
            out = []
            for _ in range(12):
                try:
                    client.messages.batches.list()
                    out.append(200)
                except anthropic.APIStatusError as error:
                    out.append(error.status_code)
                except anthropic.APIConnectionError:
                    out.append(0)
            return out

    first = statuses(4)
    assert first == statuses(4)
    assert 200 in first and set(first) - {200} <= {0, 500, 529} and set(first) != {200}


def test_plain_messages_and_batches_from_one_server(clock: ManualClock) -> None:
    with FakeBatchServer(clock=clock, process_s=0.0) as srv:
        client = sdk(srv)
        message = client.messages.create(**PARAMS)
        assert message.content[0].text.startswith('{"label": "fake label')  # type: ignore[union-attr]
        batch = client.messages.batches.create(requests=requests("a"))
        assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
        assert len(srv.requests) == 1 and srv.keys_requested() == ["model.layers.0.mlp:1"]


async def test_the_async_sdk_reads_results_while_time_really_passes() -> None:
    with FakeBatchServer(process_s=0.05) as srv:
        client = anthropic.AsyncAnthropic(
            base_url=srv.base_url, api_key="k", max_retries=0, _strict_response_validation=True
        )
        batch = await client.messages.batches.create(requests=requests("a", "b", "c"))
        deadline = time.monotonic() + 5.0
        while (await client.messages.batches.retrieve(batch.id)).processing_status != "ended":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        lines = [line async for line in await client.messages.batches.results(batch.id)]
        assert sorted(line.custom_id for line in lines) == ["a", "b", "c"]
        await client.close()
