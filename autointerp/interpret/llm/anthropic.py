"""Claude through the Messages API (anthropic SDK 2.x), with structured JSON output.

The SDK's own retries are off (`max_retries=0`): a `retry-after` must pause every request, not
just the one that got it, and refusals or malformed answers need bounded retries the SDK does
not do. The API key is read from `ANTHROPIC_API_KEY` only.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import anthropic
import httpx2

from autointerp.errors import UserError
from autointerp.interpret.llm.defaults import API_KEY_ENV, DEFAULT_MODEL
from autointerp.interpret.llm.errors import FatalAPIError, RequestFailed, Transient, Unusable
from autointerp.interpret.llm.pricing import Price, Usage, cache_minimum_tokens, price_of
from autointerp.interpret.llm.provider import Provider, Reply, Request, wire_send_hooks
from autointerp.interpret.llm.retry import retry_after_seconds

PUBLIC_BASE_URL = "https://api.anthropic.com"
RATELIMIT_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
CACHE_CHARS_PER_TOKEN = 3.0
"""A generous token count for the cache decision: better to mark a prefix just short of the
minimum (which costs nothing) than to leave a long enough one unmarked."""


def api_key_from_env() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise UserError(
            f"{API_KEY_ENV} is not set: export your Anthropic API key in {API_KEY_ENV}, "
            "or use --labeller offline to label without the API"
        )
    return key


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        _strict_response_validation: bool = False,
    ) -> None:
        self.model = model
        self.secret = api_key_from_env()
        self.timeout = timeout
        self.ratelimit_remaining = {}
        self.ratelimit_limits = {}
        self._client = anthropic.AsyncAnthropic(
            api_key=self.secret,
            base_url=base_url,  # None: the SDK reads ANTHROPIC_BASE_URL, else the public API
            max_retries=0,
            timeout=timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(event_hooks=wire_send_hooks()),
            _strict_response_validation=_strict_response_validation,
        )
        self.base_url = str(self._client.base_url).rstrip("/") or PUBLIC_BASE_URL

    def price(self) -> Price | None:
        return price_of(self.model)

    async def aclose(self) -> None:
        await self._client.close()

    def params(self, request: Request) -> dict[str, Any]:
        """The Messages API parameters of `request` (also the `params` of a batch entry)."""
        return {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "system": [self._system_block(request.system)],
            "messages": [{"role": "user", "content": request.user}],
            "output_config": {"format": {"type": "json_schema", "schema": request.schema}},
        }

    async def send(self, request: Request) -> Reply:
        try:
            async with asyncio.timeout(self.timeout):  # the SDK's timeout is per read, not total
                raw = await self._client.messages.with_raw_response.create(**self.params(request))
                self._read_ratelimit_headers(raw.headers)
                message = await raw.parse()
        except anthropic.APIStatusError as e:
            self._read_ratelimit_headers(e.response.headers)
            raise self._classify(e) from None
        except (anthropic.APITimeoutError, TimeoutError) as e:
            raise Transient(f"request timed out ({type(e).__name__})") from None
        except anthropic.APIConnectionError as e:
            raise self._connection_error(e) from None
        except (json.JSONDecodeError, anthropic.APIResponseValidationError) as e:
            raise Transient(f"malformed response body ({type(e).__name__})") from None
        return reply_of(message, request.max_tokens)

    def _connection_error(self, e: anthropic.APIConnectionError) -> Transient:
        if isinstance(e.__cause__, httpx2.ConnectError):
            return Transient(
                f"cannot reach the API at {self.base_url} ({e.message})", unreachable=True
            )
        return Transient("request connection failed (APIConnectionError)")

    def _system_block(self, system: str) -> dict[str, object]:
        """The instructions, marked for caching only where the mark can pay: when they reach
        the model's minimum cacheable prefix (an unknown model: marked, since a mark below the
        minimum costs nothing)."""
        block: dict[str, object] = {"type": "text", "text": system}
        minimum = cache_minimum_tokens(self.model)
        if minimum is None or len(system) / CACHE_CHARS_PER_TOKEN >= minimum:
            block["cache_control"] = {"type": "ephemeral"}
        return block

    def _classify(self, e: anthropic.APIStatusError) -> Exception:
        status = e.status_code
        kind, message = _error_parts(e)
        reason = f"HTTP {status} {kind}: {message}"
        code = _error_code(e)
        if code in STOPPING_ERROR_CODES:
            return FatalAPIError(f"{STOPPING_ERROR_CODES[code]} ({reason}, {code})")
        if status == 401:
            return FatalAPIError(
                f"the API at {self.base_url} rejected the key in {API_KEY_ENV} ({reason}); "
                "check the key"
            )
        if status == 403:
            return FatalAPIError(f"the API key may not use this API or model ({reason})")
        if status == 402 or kind == "billing_error" or "credit balance" in message.lower():
            return FatalAPIError(f"spend limit or credit exhausted ({reason})")
        if status == 404:
            return FatalAPIError(
                f"model {self.model!r} not found at {self.base_url} ({reason}); check --model "
                "and --base-url"
            )
        retry_after = retry_after_seconds(e.response.headers)
        if status == 429:
            return Transient(reason, rate_limited=True, retry_after=retry_after, rejected=True)
        if status in (503, 529):
            return Transient(reason, overload=True, retry_after=retry_after, rejected=True)
        if status in (408, 409) or status >= 500:
            return Transient(reason, retry_after=retry_after, rejected=True)
        return RequestFailed(reason)

    def _read_ratelimit_headers(self, headers: httpx2.Headers) -> None:
        for kind in RATELIMIT_KINDS:
            for field, into in (("remaining", self.ratelimit_remaining),
                                ("limit", self.ratelimit_limits)):  # fmt: skip
                value = headers.get(f"anthropic-ratelimit-{kind}-{field}")
                if value is None:
                    continue
                try:
                    into[kind] = int(value)
                except ValueError:
                    continue


def reply_of(message: anthropic.types.Message, max_tokens: int) -> Reply:
    """The text and usage of a message; `Unusable` for a refusal or a cut-off answer."""
    u = message.usage
    used = Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
        cache_read_input_tokens=u.cache_read_input_tokens or 0,
    )
    text = "".join(b.text for b in message.content if b.type == "text")
    if message.stop_reason == "refusal":
        raise Unusable("the model refused", used)
    if message.stop_reason == "max_tokens":
        raise Unusable(f"the answer was cut off at max_tokens ({max_tokens})", used)
    return Reply(text, used)


STOPPING_ERROR_CODES = {
    "enforced_spend_limit_reached": "spend limit reached: the organization's monthly usage limit "
    "for its tier; no request can succeed until it resets or the tier rises",
    "contract_spend_limit_reached": "spend limit reached: the contract's spend limit",
    "linked_organization_spend_limit_reached": "spend limit or credit exhausted in the linked "
    "organization",
    "linked_organization_billing_unavailable": "billing unavailable in the linked organization",
    "organization_on_hold": "the organization is on hold",
}
"""`error.details.error_code`s after which no request can succeed. A spend limit comes as a
429 `rate_limit_error` with no `retry-after`: retried as a rate limit it would fail forever."""


def _error_code(e: anthropic.APIStatusError) -> str | None:
    """`error.details.error_code` from an error body (the SDK's `ErrorDetails`), if any."""
    body = e.body
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    code = details.get("error_code") if isinstance(details, dict) else None
    return code if isinstance(code, str) else None


def _error_parts(e: anthropic.APIStatusError) -> tuple[str, str]:
    """(error type, message) from an API error body, tolerating bodies that are not JSON."""
    body = e.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("type", "error")), str(error.get("message", ""))[:300]
    return "error", str(e.message)[:300]
