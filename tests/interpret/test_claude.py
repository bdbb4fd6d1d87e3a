"""The Claude labeller against the loopback Messages API, with the real SDK in strict mode."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from autointerp.errors import UserError
from autointerp.interpret.labeller import ModelLabeller
from autointerp.interpret.llm.anthropic import AnthropicProvider
from autointerp.interpret.llm.errors import FatalAPIError, RequestFailed
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.llm.ratelimit import OVERLOADS_TO_HALVE, RateLimits
from autointerp.interpret.llm.retry import RetryPolicy
from tests.interpret.clocks import ScaledClock
from tests.interpret.fake_api import (
    CONTENT_FAULTS,
    TRANSIENT_FAULTS,
    FakeMessagesServer,
    Fault,
    prompt_key,
)
from tests.interpret.labellers import claude_labeller
from tests.interpret.samples import ARCH, component

SECRET = "sk-ant-test-Zq81-never-print-me"
FAST = RetryPolicy(max_attempts=4, max_content_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
PATIENT = RetryPolicy(max_attempts=10, base_delay_s=0.005, max_delay_s=0.02)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)


def make_labeller(srv: FakeMessagesServer, **kwargs: Any) -> ModelLabeller:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5.0)
    return claude_labeller(srv.base_url, seed=0, **kwargs)


async def label_one(srv: FakeMessagesServer, **kwargs: Any) -> Any:
    labeller = make_labeller(srv, **kwargs)
    try:
        return await labeller.label(component(), ARCH)
    finally:
        await labeller.aclose()


async def test_a_clean_answer_becomes_a_result_with_usage_and_cost() -> None:
    with FakeMessagesServer() as srv:
        result = await label_one(srv)
        (request,) = srv.requests
    assert result.label == "fake label for model.layers.3.mlp.up_proj:17"
    assert result.confidence == "medium"
    assert (result.labeller, result.model) == ("claude", "claude-haiku-4-5-20251001")
    assert result.input_tokens > 0 and result.output_tokens > 0
    # The instructions are far below Haiku's 4,096-token cache minimum: no mark, nothing cached.
    assert result.cache_creation_input_tokens == result.cache_read_input_tokens == 0
    expected = (
        result.input_tokens
        + 1.25 * result.cache_creation_input_tokens
        + 0.1 * result.cache_read_input_tokens
        + 5 * result.output_tokens
    ) / 1e6
    assert result.cost_usd == pytest.approx(expected)
    body = request.body
    assert "cache_control" not in body["system"][0]
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert set(body["output_config"]["format"]["schema"]["required"]) == {
        "label",
        "input_label",
        "output_label",
        "confidence",
        "reasoning",
    }
    assert result.prompt == "v2"
    assert result.input_label == "fake input side of model.layers.3.mlp.up_proj:17"
    assert result.output_label == "fake output side of model.layers.3.mlp.up_proj:17"
    assert "Component: model.layers.3.mlp.up_proj:17" in body["messages"][0]["content"]
    assert request.headers["x-stainless-retry-count"] == "0"  # the SDK does not retry on its own


@pytest.mark.parametrize(
    ("model", "chars", "marked"),
    [
        ("claude-haiku-4-5-20251001", 3_000, False),  # ~1,000 tokens: below 4,096
        ("claude-haiku-4-5-20251001", 20_000, True),
        ("claude-sonnet-4-5", 4_000, True),  # Sonnet caches from 1,024 tokens
        ("some-unknown-model", 100, True),  # unknown minimum: a mark costs nothing
    ],
)
async def test_instructions_are_marked_for_caching_only_where_the_cache_can_hold_them(
    model: str, chars: int, marked: bool
) -> None:
    system = "Follow these instructions. " * (chars // 27)
    with FakeMessagesServer() as srv:
        provider = AnthropicProvider(model, base_url=srv.base_url)
        request = Request(system=system, user="Component: x:1", schema={"type": "object"})
        first = await provider.send(request)
        second = await provider.send(request)
        await provider.aclose()
        bodies = [r.body for r in srv.requests]
    assert all(("cache_control" in b["system"][0]) == marked for b in bodies)
    assert (first.usage.cache_creation_input_tokens > 0) == marked
    assert (second.usage.cache_read_input_tokens > 0) == marked


async def test_the_one_line_prompt_asks_for_and_records_no_sides() -> None:
    with FakeMessagesServer() as srv:
        result = await label_one(srv, prompt="v1")
        (request,) = srv.requests
    schema = request.body["output_config"]["format"]["schema"]
    assert set(schema["required"]) == {"label", "confidence", "reasoning"}
    assert (result.prompt, result.input_label, result.output_label) == ("v1", "", "")
    assert result.label == "fake label for model.layers.3.mlp.up_proj:17"


async def test_an_answer_without_its_sides_is_unusable() -> None:
    """The v2 schema requires both sides: a v1-shaped answer is retried, then fails."""
    one_line = json.dumps({"label": "x", "confidence": "low", "reasoning": "r"})
    with FakeMessagesServer(answer=lambda body: one_line) as srv:
        with pytest.raises(RequestFailed, match="not the label JSON"):
            await label_one(srv)
        assert len(srv.requests) == FAST.max_content_attempts


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
async def test_transient_faults_are_retried(fault: Fault) -> None:
    with FakeMessagesServer(faults=[fault, fault], slow_s=1.5, retry_after_s=0.02) as srv:
        t0 = time.monotonic()
        result = await label_one(srv, timeout=0.3)
        assert srv.outcomes() == [fault.value, fault.value, "ok"]
    assert result.label.startswith("fake label")
    assert time.monotonic() - t0 < 1.4  # a slow answer is abandoned at the timeout


@pytest.mark.parametrize("fault", CONTENT_FAULTS)
async def test_unusable_answers_are_retried_a_bounded_number_of_times(fault: Fault) -> None:
    with FakeMessagesServer(faults=[fault]) as srv:
        result = await label_one(srv)
        assert result.label.startswith("fake label")
    with FakeMessagesServer() as srv:
        clean = await label_one(srv)
    # The unusable answer's tokens are part of what this component cost.
    assert result.input_tokens == 2 * clean.input_tokens
    assert result.cost_usd > clean.cost_usd
    with FakeMessagesServer(faults=[fault] * 10) as srv:
        with pytest.raises(RequestFailed) as err:
            await label_one(srv)
        assert len(srv.requests) == FAST.max_content_attempts
    assert "after 3 tries" in str(err.value)


async def test_persistent_transient_faults_give_up_with_a_label_error() -> None:
    with FakeMessagesServer(faults=[Fault.SERVER_ERROR] * 10) as srv:
        with pytest.raises(RequestFailed, match="gave up after 4 attempts: HTTP 500"):
            await label_one(srv)
        assert len(srv.requests) == FAST.max_attempts


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.AUTH, "rejected the key in ANTHROPIC_API_KEY"),
        (Fault.PERMISSION, "may not use"),
        (Fault.BILLING, "spend limit or credit"),
        (Fault.SPEND_LIMIT, "spend limit reached"),
        (Fault.ON_HOLD, "on hold"),
    ],
)
async def test_fatal_errors_stop_at_once_and_never_show_the_key(
    fault: Fault, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeMessagesServer(faults=[fault] * 5) as srv:
        labeller = make_labeller(srv)
        with pytest.raises(FatalAPIError) as err:
            await labeller.label(component(), ARCH)
        stats = labeller.stats()
        await labeller.aclose()
        assert len(srv.requests) == 1  # no retry storm
        assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert words in str(err.value)
    for text in (str(err.value), repr(err.value), caplog.text, str(stats)):
        assert SECRET not in text


async def test_a_ramp_limit_is_waited_out_not_fatal() -> None:
    """A 429 whose `error_code` is `ramp_limit_exceeded` says usage grew too fast: wait as told
    and go on (unlike a spend limit, the other 429 with a code, which stops the run)."""
    with FakeMessagesServer(faults=[Fault.RAMP_LIMIT], retry_after_s=0.05) as srv:
        result = await label_one(srv)
        assert len(srv.requests) == 2
    assert result.label.startswith("fake label")


def test_a_missing_key_is_a_user_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(UserError, match=r"ANTHROPIC_API_KEY.*--labeller offline"):
        AnthropicProvider()


async def test_retry_after_pauses_every_worker() -> None:
    """One 429 with retry-after 0.4 s: no request at all goes out until the pause is over."""
    pause = 0.4
    with FakeMessagesServer(faults=[Fault.RATE_LIMIT], retry_after_s=pause, latency=0.1) as srv:
        labeller = make_labeller(srv, max_concurrent=3)
        comps = [component(f"h.0.mlp.c_fc:{i}") for i in range(6)]
        results = await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        await labeller.aclose()
        times = sorted(r.at for r in srv.requests)
        answered = srv.requests[0].at + 0.1  # the 429 (after the server's latency)
    assert len(results) == 6
    # Answers that came back together with the 429 may race it out; after that, nothing is sent
    # until the pause is over.
    assert not [t for t in times if answered + 0.06 < t < answered + pause - 0.03]
    assert len(times) == 7


@pytest.fixture
def no_gc_pauses() -> Iterator[None]:
    """Client and server share this interpreter: a garbage collection that lands between a
    request's sending and the server's counting delays only that request, and brings the next one
    closer than the margin allows. The pacing tests measure the client, not the host's collector."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_gc_pauses")
async def test_max_rpm_keeps_a_continuous_bucket_server_from_ever_refusing() -> None:
    """The server refills one request every 1/3 s and holds one at most (the real limiter's
    strictest reading); a scaled clock makes the client's minute last 1 s of real time. The
    default 5% margin leaves 17 ms between requests to spare."""
    window = 1.0
    rpm = 3
    with FakeMessagesServer(rate_limit=(rpm, window), latency=0.02) as srv:
        labeller = make_labeller(
            srv,
            max_concurrent=8,
            clock=ScaledClock(scale=60.0 / window),
            limits=RateLimits(max_rpm=rpm, follow_headers=False),
        )
        comps = [component(f"h.1.mlp.c_fc:{i}") for i in range(2 * rpm + 1)]
        await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        stats = labeller.stats()
        await labeller.aclose()
        assert "rate_limited" not in srv.outcomes()
        assert srv.max_in_window(window) <= rpm
    assert stats.ratelimit_requests_remaining is not None
    assert stats.requests == 2 * rpm + 1
    assert 0 < stats.requests_per_minute <= rpm + 1  # per minute of the labeller's clock
    assert stats.budget_requests_remaining is not None


@pytest.mark.usefixtures("no_gc_pauses")
@pytest.mark.parametrize("headroom", [0.75, 1.0])
async def test_the_margin_absorbs_network_jitter_smaller_than_itself(headroom: float) -> None:
    """Each request reaches the server's limiter 0 to 10 ms after it was sent. At 6 requests a
    second a 25% margin leaves 56 ms between requests to spare: the jitter takes at most 10 ms of
    it and the rest absorbs this process's own scheduling noise (client and server share one
    interpreter), so nothing is refused. With no margin, a request that took longer on the way
    than the one after it brings the next one too close, and the bucket (which holds one request)
    refuses it."""
    window = 1.0
    rpm = 6
    jitter = FakeMessagesServer(
        rate_limit=(rpm, window), latency=0.02, arrival_jitter=lambda rng: rng.uniform(0, 0.01)
    )
    with jitter as srv:
        labeller = make_labeller(
            srv,
            max_concurrent=8,
            clock=ScaledClock(scale=60.0 / window),
            limits=RateLimits(max_rpm=rpm, follow_headers=False, headroom=headroom),
        )
        comps = [component(f"h.1.mlp.c_fc:{i}") for i in range(2 * rpm + 1)]
        await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        await labeller.aclose()
        refused = srv.outcomes().count("rate_limited")
    if headroom < 1.0:
        assert refused == 0
    else:
        assert refused > 0


@pytest.mark.usefixtures("no_gc_pauses")
async def test_without_a_budget_the_client_follows_the_servers_limit_header() -> None:
    """No --max-rpm: the first answer's `anthropic-ratelimit-requests-limit` (240 a minute, one
    request every 250 ms) sets the pace; the 5% margin leaves 13 ms between requests to spare."""
    with FakeMessagesServer(rate_limit=(4, 1.0), latency=0.01) as srv:
        labeller = make_labeller(srv, max_concurrent=1)
        await labeller.label(component("h.3.mlp.c_fc:0"), ARCH)  # learns the limit
        comps = [component(f"h.3.mlp.c_fc:{i}") for i in range(1, 10)]
        labeller_many = asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        await labeller_many
        await labeller.aclose()
        assert "rate_limited" not in srv.outcomes()


async def test_sustained_overload_lowers_concurrency_and_success_restores_it() -> None:
    with FakeMessagesServer(faults=[Fault.OVERLOADED] * OVERLOADS_TO_HALVE, latency=0.01) as srv:
        labeller = make_labeller(srv, max_concurrent=8, overload_cooldown_s=0.0, retry=PATIENT)
        await labeller.label(component(), ARCH)
        after_one = labeller.stats().concurrency_limit
        comps = [component(f"h.2.mlp.c_fc:{i}") for i in range(80)]
        await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        recovered = labeller.stats().concurrency_limit
        await labeller.aclose()
    assert after_one == 4
    assert recovered == 8


async def test_429s_and_scattered_529s_pause_but_leave_concurrency_alone() -> None:
    """A 429 says our budget ran out, which the pacing answers; a few 529s among many answers are
    the server's noise. Neither is a reason to send fewer at once."""
    faults = [Fault.RATE_LIMIT] * 5 + [None] + [Fault.OVERLOADED] * (OVERLOADS_TO_HALVE - 1)
    with FakeMessagesServer(faults=faults, latency=0.01) as srv:
        labeller = make_labeller(srv, max_concurrent=8, overload_cooldown_s=0.0, retry=PATIENT)
        await labeller.label(component("h.2.mlp.c_fc:0"), ARCH)
        await labeller.label(component("h.2.mlp.c_fc:1"), ARCH)
        stats = labeller.stats()
        await labeller.aclose()
    assert srv.outcomes()[: len(faults)] == [f.value if f else "ok" for f in faults]
    assert stats.retries == len(faults) - 1
    assert stats.concurrency_limit == 8


async def test_a_scattered_529_backs_off_its_own_request_while_the_others_go_on() -> None:
    with FakeMessagesServer(faults=[Fault.OVERLOADED], latency=0.05) as srv:
        labeller = make_labeller(
            srv, max_concurrent=2, retry=RetryPolicy(base_delay_s=0.6, max_delay_s=0.6)
        )
        comps = [component(f"h.2.mlp.c_fc:{i}") for i in range(8)]
        await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        await labeller.aclose()
    overloaded, *others = srv.requests
    answered = overloaded.at + 0.05
    retried = [r.at for r in others if prompt_key(r.body) == prompt_key(overloaded.body)]
    assert retried and retried[0] >= answered + 0.3 - 0.02  # its own backoff: 0.3 to 0.6 s
    assert [r for r in others if answered + 0.02 < r.at < answered + 0.25]  # nobody else's


async def test_sustained_529s_pause_every_request_for_the_backoff() -> None:
    faults = [Fault.OVERLOADED] * OVERLOADS_TO_HALVE
    with FakeMessagesServer(faults=faults, latency=0.02) as srv:
        labeller = make_labeller(
            srv, max_concurrent=2, retry=RetryPolicy(base_delay_s=0.2, max_delay_s=0.2)
        )
        comps = [component(f"h.2.mlp.c_fc:{i}") for i in range(6)]
        await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        await labeller.aclose()
    last = srv.requests[OVERLOADS_TO_HALVE - 1]
    assert last.outcome == Fault.OVERLOADED.value
    answered = last.at + 0.02
    later = [r.at for r in srv.requests if r.at > answered]
    assert later and min(later) >= answered + 0.1 - 0.02  # the backoff is 0.1 to 0.2 s


async def test_unknown_model_cost_is_reported_unknown() -> None:
    with FakeMessagesServer() as srv:
        labeller = make_labeller(srv, model="claude-future-9")
        result = await labeller.label(component(), ARCH)
        stats = labeller.stats()
        await labeller.aclose()
    assert result.cost_known is False and result.cost_usd == 0.0
    assert stats.cost_known is False


async def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeMessagesServer() as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.base_url)
        labeller = claude_labeller(None, retry=FAST, strict=False)
        await labeller.label(component(), ARCH)
        await labeller.aclose()
        assert len(srv.requests) == 1


def test_the_fake_server_answers_errors_after_their_own_latency() -> None:
    """The pacing benchmark models the real API's fast errors: an overloaded request comes back
    after `error_latency`, an answer after `latency`."""
    with FakeMessagesServer(faults=[Fault.OVERLOADED], latency=0.4, error_latency=0.0) as srv:
        client = anthropic.Anthropic(base_url=srv.base_url, api_key="k", max_retries=0)
        ask = {
            "model": "claude-haiku-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "Component: a:1"}],
        }
        started = time.monotonic()
        with pytest.raises(anthropic.APIStatusError) as refused:
            client.messages.create(**ask)
        error_s = time.monotonic() - started
        started = time.monotonic()
        client.messages.create(**ask)
        answer_s = time.monotonic() - started
        client.close()
    assert refused.value.status_code == 529
    assert error_s < 0.2
    assert answer_s >= 0.4
