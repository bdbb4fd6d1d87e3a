"""The LLM client on its own: an API that cannot be reached stops the run quickly and names the
URL; once anything got through, connection failures are ordinary retries; any task can use it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import msgspec
import pytest

from autointerp.interpret.llm.anthropic import AnthropicProvider
from autointerp.interpret.llm.client import LLMClient
from autointerp.interpret.llm.errors import FatalAPIError, InvalidAnswer, RequestFailed
from autointerp.interpret.llm.provider import Request, notify_when_sent, wire_send_hooks
from autointerp.interpret.llm.retry import RetryPolicy
from tests.interpret.fake_api import FakeMessagesServer

SECRET = "sk-ant-client-test-77aa"
QUICK = RetryPolicy(max_attempts=50, base_delay_s=0.02, max_delay_s=0.1, unreachable_give_up_s=0.6)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def client(base_url: str, retry: RetryPolicy = QUICK, **kwargs: Any) -> LLMClient:
    provider = AnthropicProvider(base_url=base_url, timeout=5.0, _strict_response_validation=True)
    return LLMClient(provider, retry=retry, seed=0, **kwargs)


REQUEST = Request(
    system="You answer in JSON.",
    user="Component: layers.0.mlp:1\nSay something.",
    schema={"type": "object"},
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable_urls(tls_port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{closed_port()}",  # connection refused
        "http://no-such-host.invalid",  # DNS: .invalid never resolves
        f"https://127.0.0.1:{tls_port}",  # TLS handshake against a plain HTTP server
    ]


async def test_an_unreachable_api_is_fatal_within_the_bound_and_names_the_url() -> None:
    with FakeMessagesServer() as plain_http:
        port = int(plain_http.base_url.rsplit(":", 1)[1])
        for url in _unreachable_urls(port):
            llm = client(url)
            t0 = time.monotonic()
            with pytest.raises(FatalAPIError) as err:
                await llm.complete(REQUEST, str)
            took = time.monotonic() - t0
            await llm.aclose()
            message = str(err.value)
            assert url.split("//")[1] in message, message
            assert "cannot reach the API" in message and "--base-url" in message
            assert SECRET not in message
            assert QUICK.unreachable_give_up_s <= took < QUICK.unreachable_give_up_s + 2.0
        assert plain_http.requests == []  # the TLS attempt never became a request


async def test_every_waiting_request_stops_once_the_api_is_known_unreachable() -> None:
    import asyncio

    llm = client(f"http://127.0.0.1:{closed_port()}", max_concurrent=4)
    t0 = time.monotonic()
    outcomes = await asyncio.gather(
        *(llm.complete(REQUEST, str) for _ in range(8)), return_exceptions=True
    )
    await llm.aclose()
    assert all(isinstance(o, FatalAPIError) for o in outcomes), outcomes
    assert time.monotonic() - t0 < QUICK.unreachable_give_up_s + 2.0


async def test_after_a_success_connection_failures_are_retried_not_fatal() -> None:
    server = FakeMessagesServer(keep_alive=False).start()
    url = server.base_url
    llm = client(url, retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02,
                                        unreachable_give_up_s=0.0))  # fmt: skip
    first = await llm.complete(REQUEST, json.loads)
    assert first.answer["label"] == "fake label for layers.0.mlp:1"
    server.stop()  # the API goes away mid-run: a network blip, not a wrong URL
    with pytest.raises(RequestFailed, match="gave up after 3 attempts"):
        await llm.complete(REQUEST, json.loads)
    await llm.aclose()


class Verdict(msgspec.Struct):
    label: str
    confidence: str


async def test_any_task_plugs_in_its_own_schema_and_parser() -> None:
    """A scorer-like task: its own schema and parser, the same retries and accounting."""
    calls = []

    def parse(text: str) -> Verdict:
        calls.append(text)
        if len(calls) == 1:
            raise InvalidAnswer("first answer rejected by the task")
        return msgspec.json.decode(text.encode(), type=Verdict)

    schema = msgspec.json.schema(Verdict)
    with FakeMessagesServer() as srv:
        llm = client(srv.base_url)
        request = Request(system="Judge.", user="Component: x:1", schema=schema)
        done = await llm.complete(request, parse)
        stats = llm.stats()
        once = await llm.complete(request, parse)
        await llm.aclose()
        assert srv.requests[0].body["output_config"]["format"]["schema"] == schema
    assert done.answer == once.answer == Verdict("fake label for x:1", "medium")
    assert stats.requests == 2 and stats.retries == 1
    assert done.usage.input_tokens == 2 * once.usage.input_tokens > 0  # both attempts count
    assert done.cost_usd is not None and done.cost_usd > 0


async def test_a_request_counts_once_its_body_has_gone_not_from_its_first_byte() -> None:
    """Headers out, then the body held up (the event loop busy elsewhere, a garbage
    collection): the server has the request, and counts it, only once the body arrives."""
    body_sent: list[float] = []
    marked: list[float] = []

    async def body() -> AsyncIterator[bytes]:
        yield b'{"model":'
        await asyncio.sleep(0.3)
        yield b' "m"}'
        body_sent.append(time.monotonic())

    with FakeMessagesServer() as srv:
        async with httpx2.AsyncClient(event_hooks=wire_send_hooks()) as http:
            with notify_when_sent(lambda: marked.append(time.monotonic())):
                await http.post(
                    f"{srv.base_url}/v1/messages", content=body(), headers={"content-length": "14"}
                )
        assert srv.requests[0].body == {"model": "m"}  # the server read the whole request
    assert len(marked) == 1
    assert marked[0] >= body_sent[0]  # not 0.3 s before the server could have had it
