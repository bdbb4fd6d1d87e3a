"""`--provider openai`: the OpenAI-compatible provider against the loopback chat-completions
server, through the real `openai` SDK in strict mode, with the client's retries, pacing and cost."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autointerp.errors import UserError
from autointerp.files import read_jsonl
from autointerp.interpret.labeller import ModelLabeller
from autointerp.interpret.llm.client import LLMClient
from autointerp.interpret.llm.defaults import DEFAULT_MODEL
from autointerp.interpret.llm.errors import FatalAPIError, RequestFailed
from autointerp.interpret.llm.openai import OpenAIProvider, schema_name
from autointerp.interpret.llm.options import ClientOptions, build_client
from autointerp.interpret.llm.pricing import Price
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.llm.providers import (
    check_budget,
    is_local_url,
    key_available,
    openai_price_of,
    price_for,
    price_from_options,
)
from autointerp.interpret.llm.retry import RetryPolicy
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PromptVersion
from autointerp.interpret.response import response_schema
from autointerp.interpret.scoring.asking import ModelAnswerer
from autointerp.interpret.scoring.classify import NUMBERS_SCHEMA
from autointerp.interpret.scoring.intruder import SCHEMA as INTRUDER_SCHEMA
from autointerp.interpret.scoring.simulation import SCHEMA as SIMULATION_SCHEMA
from autointerp.schemas import InterpretationResult
from tests.interpret.fake_openai import (
    CONTENT_FAULTS,
    TRANSIENT_FAULTS,
    FakeChatServer,
    Fault,
    strict_schema_problem,
)
from tests.interpret.runs import components, make_run
from tests.interpret.samples import ARCH, component
from tests.interpret.test_scorers import heldout, oracle, score_all

SECRET = "sk-proj-openai-test-Q7v2-never-print-me"
FAST = RetryPolicy(max_attempts=4, max_content_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
KEY = "model.layers.3.mlp.up_proj:17"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def make_labeller(
    srv: FakeChatServer,
    *,
    model: str = "some-model",
    price: Price | None = None,
    timeout: float = 5.0,
    retry: RetryPolicy = FAST,
    prompt: PromptVersion = DEFAULT_PROMPT,
    base_url: str | None = None,
    **client: Any,
) -> ModelLabeller:
    provider = OpenAIProvider(
        model,
        base_url=base_url or srv.base_url,
        timeout=timeout,
        _strict_response_validation=True,
    )
    llm = LLMClient(provider, retry=retry, seed=0, price=price, **client)
    return ModelLabeller(llm, name="openai", prompt=prompt)


async def label_one(srv: FakeChatServer, **kwargs: Any) -> Any:
    labeller = make_labeller(srv, **kwargs)
    try:
        return await labeller.label(component(), ARCH)
    finally:
        await labeller.aclose()


# ---- a clean answer
async def test_a_clean_answer_becomes_a_result_with_usage_and_the_option_price() -> None:
    price = price_from_options("openai", 0.5, 2.0)
    with FakeChatServer() as srv:
        result = await label_one(srv, price=price)
        (request,) = srv.requests
    assert result.label == f"fake label for {KEY}"
    assert result.input_label == f"fake input side of {KEY}"
    assert result.output_label == f"fake output side of {KEY}"
    assert (result.labeller, result.model, result.prompt) == ("openai", "some-model", "v2")
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.cache_read_input_tokens == 0  # the first sight of this system prompt
    expected = (result.input_tokens * 0.5 + result.output_tokens * 2.0) / 1e6
    assert result.cost_known and result.cost_usd == pytest.approx(expected)
    body = request.body
    assert request.path == "/v1/chat/completions"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert f"Component: {KEY}" in body["messages"][1]["content"]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "BothSidesResponse"
    assert set(fmt["json_schema"]["schema"]["required"]) == {
        "label", "input_label", "output_label", "confidence", "reasoning"
    }  # fmt: skip
    assert body["max_tokens"] == 1024 and "max_completion_tokens" not in body
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["x-stainless-retry-count"] == "0"  # the SDK does not retry on its own


async def test_cached_prompt_tokens_are_cache_reads_at_the_table_price() -> None:
    """gpt-4.1-mini from the table: $0.40 in, $0.10 cached in, $1.60 out per million."""
    with FakeChatServer() as srv:
        labeller = make_labeller(srv, model="gpt-4.1-mini")
        first = await labeller.label(component(), ARCH)
        second = await labeller.label(component("h.0.mlp:3"), ARCH)
        stats = labeller.stats()
        await labeller.aclose()
    assert first.cache_read_input_tokens == 0 and second.cache_read_input_tokens > 0
    expected = (
        second.input_tokens * 0.40
        + second.cache_read_input_tokens * 0.10
        + second.output_tokens * 1.60
    ) / 1e6
    assert second.cost_usd == pytest.approx(expected)
    assert stats.cost_known and stats.cost_usd == pytest.approx(first.cost_usd + second.cost_usd)
    assert stats.cache_read_input_tokens == second.cache_read_input_tokens


async def test_the_one_line_prompt_asks_for_no_sides() -> None:
    with FakeChatServer() as srv:
        result = await label_one(srv, prompt="v1")
        (request,) = srv.requests
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"label", "confidence", "reasoning"}
    assert (result.prompt, result.input_label, result.output_label) == ("v1", "", "")


async def test_an_unknown_price_is_unknown_never_zero() -> None:
    with FakeChatServer() as srv:
        labeller = make_labeller(srv, model="my-local-llama")
        result = await labeller.label(component(), ARCH)
        stats = labeller.stats()
        await labeller.aclose()
    assert result.cost_known is False and stats.cost_known is False
    assert result.input_tokens > 0  # tokens are still counted


# ---- faults
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS)
async def test_transient_faults_are_retried(fault: Fault) -> None:
    with FakeChatServer(faults=[fault, fault], slow_s=1.5, retry_after_s=0.02) as srv:
        t0 = time.monotonic()
        result = await label_one(srv, timeout=0.3)
        assert srv.outcomes() == [fault.value, fault.value, "ok"]
    assert result.label == f"fake label for {KEY}"
    assert time.monotonic() - t0 < 1.4  # a slow answer is abandoned at the timeout


@pytest.mark.parametrize("fault", CONTENT_FAULTS)
async def test_unusable_answers_are_retried_a_bounded_number_of_times(fault: Fault) -> None:
    price = Price(1.0, 5.0)
    with FakeChatServer(faults=[fault]) as srv:
        result = await label_one(srv, price=price)
    with FakeChatServer() as srv:
        clean = await label_one(srv, price=price)
    assert result.label == clean.label
    # The unusable answer's tokens are part of what this component cost.
    assert result.input_tokens + result.cache_read_input_tokens > clean.input_tokens
    assert result.cost_usd > clean.cost_usd
    with FakeChatServer(faults=[fault] * 10) as srv:
        with pytest.raises(RequestFailed, match="after 3 tries") as err:
            await label_one(srv)
        assert len(srv.requests) == FAST.max_content_attempts
    words = {
        Fault.REFUSAL: "refused",
        Fault.LENGTH: "cut off at max_tokens",
        Fault.INVALID_JSON: "not the label JSON",
        Fault.EMPTY: "empty",
    }
    assert words[fault] in str(err.value)


async def test_persistent_server_errors_give_up_with_a_label_error() -> None:
    with FakeChatServer(faults=[Fault.UNAVAILABLE] * 10) as srv:
        with pytest.raises(RequestFailed, match="gave up after 4 attempts: HTTP 503"):
            await label_one(srv)
        assert len(srv.requests) == FAST.max_attempts


async def test_a_bad_request_fails_that_item_without_retries() -> None:
    with FakeChatServer(faults=[Fault.BAD_REQUEST]) as srv:
        labeller = make_labeller(srv)
        with pytest.raises(RequestFailed, match="HTTP 400"):
            await labeller.label(component(), ARCH)
        # Not fatal: the next component goes through.
        result = await labeller.label(component("h.0.mlp:1"), ARCH)
        await labeller.aclose()
        assert srv.outcomes() == ["bad_request", "ok"]
    assert result.label == "fake label for h.0.mlp:1"


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.AUTH, "rejected the key in OPENAI_API_KEY"),
        (Fault.PERMISSION, "may not use"),
        (Fault.NO_MODEL, "model 'some-model' not found"),
        (Fault.QUOTA, "spend limit or credit"),
    ],
)
async def test_fatal_errors_stop_at_once_and_never_show_the_key(
    fault: Fault, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeChatServer(faults=[fault] * 5) as srv:
        labeller = make_labeller(srv)
        with pytest.raises(FatalAPIError) as err:
            await labeller.label(component(), ARCH)
        with pytest.raises(FatalAPIError):  # every later request stops too, unsent
            await labeller.label(component("h.0.mlp:2"), ARCH)
        stats = labeller.stats()
        await labeller.aclose()
        assert len(srv.requests) == 1  # no retry storm
    assert words in str(err.value)
    for text in (str(err.value), repr(err.value), caplog.text, str(stats)):
        assert SECRET not in text
        assert SECRET[-4:] not in text  # not even the masked form the 401 message echoes


async def test_a_wrong_base_url_path_is_fatal_and_says_where_to_look() -> None:
    with FakeChatServer() as srv:
        with pytest.raises(FatalAPIError, match=r"ends in /v1"):
            await label_one(srv, base_url=srv.root_url)  # forgot the /v1
        assert srv.outcomes() == ["not_found"]


async def test_retry_after_pauses_every_worker() -> None:
    """One 429 with retry-after 0.4 s: no request at all goes out until the pause is over."""
    pause = 0.4
    with FakeChatServer(faults=[Fault.RATE_LIMIT], retry_after_s=pause, latency=0.1) as srv:
        labeller = make_labeller(srv, max_concurrent=3)
        comps = [component(f"h.0.mlp.c_fc:{i}") for i in range(6)]
        results = await asyncio.gather(*(labeller.label(c, ARCH) for c in comps))
        await labeller.aclose()
        times = sorted(r.at for r in srv.requests)
        answered = srv.requests[0].at + 0.1  # the 429 (after the server's latency)
    assert len(results) == 6
    assert not [t for t in times if answered + 0.06 < t < answered + pause - 0.03]
    assert len(times) == 7


async def test_the_servers_rate_limit_headers_reach_the_stats() -> None:
    with FakeChatServer(rate_limit=(600, 60.0)) as srv:
        labeller = make_labeller(srv)
        await labeller.label(component(), ARCH)
        stats = labeller.stats()
        provider = labeller.client.provider
        await labeller.aclose()
    assert stats.ratelimit_requests_remaining is not None
    assert stats.ratelimit_tokens_remaining == 999000
    assert provider.ratelimit_limits["requests"] == 600  # per minute, as the headers say


async def test_a_model_that_rejects_max_tokens_gets_max_completion_tokens() -> None:
    """OpenAI's reasoning models answer 400 to `max_tokens`: switch once, then always."""
    with FakeChatServer(reasoning_model=True) as srv:
        labeller = make_labeller(srv)
        first = await labeller.label(component(), ARCH)
        second = await labeller.label(component("h.0.mlp:5"), ARCH)
        await labeller.aclose()
        assert srv.outcomes() == ["max_tokens_unsupported", "ok", "ok"]
        assert [("max_tokens" in r.body, r.body.get("max_completion_tokens")) for r in
                srv.requests] == [(True, None), (False, 1024), (False, 1024)]  # fmt: skip
    assert first.label and second.label


async def test_a_server_without_usage_still_labels() -> None:
    with FakeChatServer(usage=False) as srv:
        result = await label_one(srv)
    assert result.label and result.input_tokens == 0


# ---- keys
def test_a_missing_key_is_a_user_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UserError, match=r"OPENAI_API_KEY is not set.*--labeller offline"):
        OpenAIProvider("gpt-4.1-mini", base_url="https://openrouter.ai/api/v1")
    assert key_available("openai", "https://api.openai.com/v1") == (False, "no OPENAI_API_KEY")


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8000/v1", "http://127.0.0.1:11434/v1", "http://[::1]:8000/v1"],
)
def test_a_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    assert is_local_url(url)
    assert key_available("openai", url)[0]
    assert OpenAIProvider("llama", base_url=url).secret == "none"
    assert not key_available("anthropic", url)[0]  # the Messages API always needs its key


def test_only_this_machine_counts_as_local() -> None:
    for url in ("https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "http://localhostx/v1"):
        assert not is_local_url(url), url


async def test_a_local_server_without_a_key_gets_a_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeChatServer() as srv:
        result = await label_one(srv)
        assert srv.requests[0].headers["authorization"] == "Bearer none"
    assert result.label
    # A local server that does want a key: the message says none was set.
    with (
        FakeChatServer(require_key="vllm-server-key") as srv,
        pytest.raises(FatalAPIError, match="OPENAI_API_KEY is not set"),
    ):
        await label_one(srv)


async def test_the_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeChatServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        llm = build_client(ClientOptions(provider="openai", model="some-model"))
        labeller = ModelLabeller(llm, name="openai")
        await labeller.label(component(), ARCH)
        await labeller.aclose()
        assert len(srv.requests) == 1


# ---- options: model, prices, budget
def test_openai_needs_an_explicit_model() -> None:
    with pytest.raises(UserError, match="--provider openai needs --model"):
        build_client(ClientOptions(provider="openai", model=DEFAULT_MODEL))
    with pytest.raises(UserError, match="needs --model"):
        check_budget(ClientOptions(provider="openai"), None)


def test_prices_come_from_the_options_else_the_table_else_unknown() -> None:
    table = openai_price_of("gpt-4.1-mini-2025-04-14")
    assert table == Price(0.40, 1.60, cache_read_per_mtok=0.10)
    assert openai_price_of("gpt-4o") is None and openai_price_of("llama3") is None
    given = price_from_options("openai", 0.2, 0.8)
    assert given == Price(0.2, 0.8, cache_read_per_mtok=0.2)  # cached input: at most full price
    assert price_from_options("anthropic", 3, 15) == Price(3, 15)  # Claude's cache factors
    assert price_for(ClientOptions(provider="openai", model="gpt-4.1-mini")) == table
    assert price_for(ClientOptions(provider="openai", model="llama3")) is None
    assert price_for(ClientOptions(provider="openai", model="llama3", price=given)) == given
    assert price_for(ClientOptions(model="claude-x-1", price=given)) == given
    with pytest.raises(UserError, match="go together"):
        price_from_options("openai", 0.2, None)


def test_a_budget_needs_a_known_price() -> None:
    unpriced = ClientOptions(provider="openai", model="llama3")
    with pytest.raises(UserError, match="price is not in the table"):
        check_budget(unpriced, 5.0)
    check_budget(unpriced, None)  # no budget: an unknown price is fine
    check_budget(ClientOptions(provider="openai", model="llama3", price=Price(0, 0)), 5.0)
    check_budget(ClientOptions(provider="openai", model="gpt-4.1-nano"), 5.0)


# ---- schemas and scoring
@pytest.mark.parametrize(
    "schema",
    [
        response_schema("v1"),
        response_schema("v2"),
        NUMBERS_SCHEMA,
        INTRUDER_SCHEMA,
        SIMULATION_SCHEMA,
    ],
)
def test_every_schema_we_send_passes_strict_mode(schema: dict[str, Any]) -> None:
    assert strict_schema_problem(schema) is None
    name = schema_name(schema)
    assert 1 <= len(name) <= 64 and name.replace("_", "").replace("-", "").isalnum()


async def test_a_schema_strict_mode_rejects_is_a_request_failure() -> None:
    loose = Request(system="s", user="Component: a:1", schema={"type": "object"})
    with FakeChatServer() as srv:
        provider = OpenAIProvider("some-model", base_url=srv.base_url)
        llm = LLMClient(provider, retry=FAST)
        with pytest.raises(RequestFailed, match=r"HTTP 400.*properties"):
            await llm.complete(loose, lambda text: text)
        await llm.aclose()


async def test_scorers_ask_through_the_openai_provider() -> None:
    components = [heldout(f"layers.0.mlp:{i}", seed=i) for i in range(2)]
    with FakeChatServer(answer=oracle) as srv:
        labeller = make_labeller(srv, price=Price(1.0, 5.0))
        ans = ModelAnswerer(labeller.client, "openai")
        names = ["detection", "fuzzing", "intruder", "simulation", "output"]
        scores = await score_all(ans, None, components, names)
        await ans.aclose()
        assert "bad_schema" not in srv.outcomes()
    for name, records in scores.items():
        for r in records:
            assert r.score is not None and r.n_errors == 0, (name, r)
            assert r.score >= 0.95, (name, r.score)
            assert r.answerer == "openai" and r.input_tokens > 0 and r.cost_usd > 0


def test_the_interpret_command_labels_through_the_openai_provider(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", components(6))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env |= {"PYTHONPATH": str(ROOT), "OPENAI_API_KEY": SECRET}
    prices = ("--price-input-per-mtok", "1", "--price-output-per-mtok", "4")
    with FakeChatServer(faults=[Fault.UNAVAILABLE, Fault.REFUSAL]) as srv:
        done = subprocess.run(
            [sys.executable, "-m", "tests.interpret.interpret_cli", str(run.root),
             "--provider", "openai", "--base-url", srv.base_url, "--model", "gpt-x", *prices],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(srv.requests) == 8  # 6 components, one 503 and one refusal retried
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    assert len(results) == 6
    assert all(r.labeller == "openai" and r.model == "gpt-x" and r.cost_known for r in results)
    assert SECRET not in done.stdout + done.stderr + run.results_path.read_text()
