"""Any OpenAI-compatible chat-completions server (OpenAI, vLLM, OpenRouter, Ollama) through the
official `openai` SDK, with JSON-schema structured output.

One request is `POST {base_url}/chat/completions` with a system and a user message and
`response_format={"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`.
The SDK's own retries are off (`max_retries=0`): the client retries, pauses everyone on a
`retry-after` and bounds unusable answers. The key is read from `OPENAI_API_KEY` only; a server on
this machine may be used without one (see `providers.key_from_env`).

The answer's length is bounded with `max_tokens`: vLLM, Ollama, OpenRouter and OpenAI's chat
models all accept it, while `max_completion_tokens` is unknown to older Ollama and llama.cpp
servers (which ignore it: no bound at all). OpenAI's reasoning models reject `max_tokens` with a
400 that names `max_completion_tokens`; the provider then switches to that field for good and the
request is retried at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx2
import openai

from autointerp.interpret.llm.errors import FatalAPIError, RequestFailed, Transient, Unusable
from autointerp.interpret.llm.pricing import Price, Usage
from autointerp.interpret.llm.provider import Provider, Reply, Request, wire_send_hooks
from autointerp.interpret.llm.providers import (
    NO_KEY_PLACEHOLDER,
    SPECS,
    base_url_of,
    key_from_env,
    openai_price_of,
)
from autointerp.interpret.llm.retry import retry_after_seconds

log = logging.getLogger(__name__)

KEY_ENV = SPECS["openai"].key_env
RATELIMIT_KINDS = ("requests", "tokens")
"""`x-ratelimit-{remaining,limit}-{requests,tokens}` (OpenAI; other servers may send none)."""
_SCHEMA_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_KEYLIKE = re.compile(r"\b(?:sk|key|rk)-[A-Za-z0-9_*.\-]{3,}")
"""Servers echo (partly masked) keys in their 401 messages: those never reach our messages."""
QUOTA_CODES = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        instead: str = "--labeller offline",
        _strict_response_validation: bool = False,
    ) -> None:
        self.model = model
        self.base_url = base_url_of("openai", base_url)
        self.secret = key_from_env("openai", self.base_url, instead=instead)
        self.timeout = timeout
        self.ratelimit_remaining = {}
        self.ratelimit_limits = {}
        self._max_tokens_field = "max_tokens"
        self._warned_no_usage = False
        self._client = openai.AsyncOpenAI(
            api_key=self.secret,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks=wire_send_hooks()),
            _strict_response_validation=_strict_response_validation,
        )

    def price(self) -> Price | None:
        return openai_price_of(self.model)

    async def aclose(self) -> None:
        await self._client.close()

    async def send(self, request: Request) -> Reply:
        field = self._max_tokens_field
        try:
            async with asyncio.timeout(self.timeout):  # the SDK's timeout is per read, not total
                raw = await self._client.chat.completions.with_raw_response.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": request.system},
                        {"role": "user", "content": request.user},
                    ],
                    response_format={
                        "type": "json_schema",
                        "json_schema": {
                            "name": schema_name(request.schema),
                            "schema": request.schema,
                            "strict": True,
                        },
                    },
                    **{field: request.max_tokens},  # type: ignore[arg-type]
                )
                self._read_ratelimit_headers(raw.headers)
                completion = raw.parse()  # `with_raw_response` parses synchronously
        except openai.APIStatusError as e:
            self._read_ratelimit_headers(e.response.headers)
            raise self._classify(e, field) from None
        except (openai.APITimeoutError, TimeoutError) as e:
            raise Transient(f"request timed out ({type(e).__name__})") from None
        except openai.APIConnectionError as e:
            if isinstance(e.__cause__, httpx2.ConnectError):
                raise Transient(
                    f"cannot reach the API at {self.base_url} ({e.message})", unreachable=True
                ) from None
            raise Transient("request connection failed (APIConnectionError)") from None
        except (json.JSONDecodeError, openai.APIResponseValidationError) as e:
            raise Transient(f"malformed response body ({type(e).__name__})") from None

        used = self._usage(completion.usage)
        if not completion.choices:
            raise Unusable("the answer has no choices", used)
        choice = completion.choices[0]
        message = choice.message
        if message.refusal:
            raise Unusable(f"the model refused: {_clip(message.refusal)}", used)
        if choice.finish_reason == "length":
            raise Unusable(f"the answer was cut off at {field} ({request.max_tokens})", used)
        if choice.finish_reason == "content_filter":
            raise Unusable("the answer was stopped by the server's content filter", used)
        text = message.content or ""
        if not text.strip():
            raise Unusable("the answer was empty", used)
        return Reply(text, used)

    def _usage(self, usage: Any) -> Usage:
        """Tokens from `usage`; cached prompt tokens (part of `prompt_tokens`) count as cache
        reads. A server that reports no usage is warned about once (its cost is undercounted)."""
        if usage is None:
            if not self._warned_no_usage:
                self._warned_no_usage = True
                log.warning(
                    "the server at %s reports no token usage: tokens and cost are undercounted",
                    self.base_url,
                )
            return Usage()
        details = usage.prompt_tokens_details
        cached = (details.cached_tokens or 0) if details is not None else 0
        cached = min(max(cached, 0), usage.prompt_tokens)
        return Usage(
            input_tokens=usage.prompt_tokens - cached,
            output_tokens=usage.completion_tokens,
            cache_read_input_tokens=cached,
        )

    def _classify(self, e: openai.APIStatusError, field: str) -> Exception:
        status = e.status_code
        kind, code, message = _error_parts(e)
        reason = f"HTTP {status} {kind}: {message}"
        if status == 401:
            unset = (
                f" ({KEY_ENV} is not set: a local server was assumed to need no key)"
                if self.secret == NO_KEY_PLACEHOLDER
                else ""
            )
            return FatalAPIError(
                f"the server at {self.base_url} rejected the key in {KEY_ENV}{unset} "
                f"({reason}); check the key"
            )
        if status == 402 or code in QUOTA_CODES:
            return FatalAPIError(f"spend limit or credit exhausted ({reason})")
        if status == 403:
            return FatalAPIError(f"the API key may not use this API or model ({reason})")
        if status == 404:
            return FatalAPIError(
                f"model {self.model!r} not found at {self.base_url} ({reason}); check --model "
                "and --base-url (an OpenAI-compatible base URL usually ends in /v1)"
            )
        retry_after = retry_after_seconds(e.response.headers)
        if status == 429:
            return Transient(reason, rate_limited=True, retry_after=retry_after, rejected=True)
        if status == 503:
            return Transient(reason, overload=True, retry_after=retry_after, rejected=True)
        if status in (408, 409) or status >= 500:
            return Transient(reason, retry_after=retry_after, rejected=True)
        if status == 400 and field == "max_tokens" and _wants_max_completion_tokens(e, message):
            self._max_tokens_field = "max_completion_tokens"
            log.info("%s wants max_completion_tokens for %s: using it", self.base_url, self.model)
            return Transient(f"{reason} (retrying with max_completion_tokens)", retry_after=0.0)
        return RequestFailed(reason)

    def _read_ratelimit_headers(self, headers: httpx2.Headers) -> None:
        for kind in RATELIMIT_KINDS:
            for part, into in (
                ("remaining", self.ratelimit_remaining),
                ("limit", self.ratelimit_limits),
            ):
                value = headers.get(f"x-ratelimit-{part}-{kind}")
                if value is None:
                    continue
                try:
                    into[kind] = int(value)
                except ValueError:
                    continue


def schema_name(schema: dict[str, Any]) -> str:
    """`json_schema.name` (`^[a-zA-Z0-9_-]{1,64}$`) from the schema's title, else `answer`."""
    title = schema.get("title")
    name = _SCHEMA_NAME.sub("_", title)[:64] if isinstance(title, str) else ""
    return name or "answer"


def _wants_max_completion_tokens(e: openai.APIStatusError, message: str) -> bool:
    return e.param == "max_tokens" or (
        "max_completion_tokens" in message
        and "max_tokens" in message.replace("max_completion_tokens", "")
    )


def _clip(text: str, limit: int = 300) -> str:
    return _KEYLIKE.sub("[redacted]", " ".join(text.split()))[:limit]


def _error_parts(e: openai.APIStatusError) -> tuple[str, str, str]:
    """(error type, code, message) from an error body (OpenAI's `{"error": {...}}`, vLLM's flat
    `{"object": "error", ...}`), tolerating bodies that are not JSON. Key-like strings are cut."""
    body = e.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            kind = str(error.get("type") or "error")
            code = str(error.get("code") or "")
            return kind, code, _clip(str(error.get("message", "")))
        if isinstance(error, str):
            return "error", "", _clip(error)
    return "error", "", _clip(str(e.message))
