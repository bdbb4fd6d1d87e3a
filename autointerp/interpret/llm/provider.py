"""The provider contract: turn one `Request` into one HTTP call and classify what comes back.

A provider knows its SDK, its endpoint and its error codes, nothing else: retries, pacing,
concurrency and accounting are the client's (`client.py`), so a new provider adds only this.
"""

from __future__ import annotations

import contextvars
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from autointerp.interpret.llm.pricing import Price, Usage

DEFAULT_MAX_TOKENS = 1024


@dataclass(frozen=True)
class Request:
    """One question to a model: instructions (cacheable), the item, the answer's JSON schema."""

    system: str
    user: str
    schema: dict[str, Any]
    max_tokens: int = DEFAULT_MAX_TOKENS
    tag: str = ""
    """What the request is for ("label <key>", "<scorer> <key>"): shown in batch entry ids so
    that a batch can be read by eye; never part of what is sent."""


@dataclass(frozen=True)
class Reply:
    text: str
    usage: Usage


class Provider(ABC):
    """One model behind one API. `send` raises the classes of `errors.py`:

    - `Transient` for what another attempt may fix (429, 529, 5xx, timeouts, connections);
    - `Unusable` for an answer that came back but cannot be used (refusal, cut off);
    - `FatalAPIError` for what stops the run (key, permission, credit, unknown model);
    - `RequestFailed` for a request the API rejects for good (e.g. 400).
    """

    name: str
    """`anthropic`, …: shown on the dashboard."""
    model: str
    base_url: str
    """Where requests go, for messages (never holds the key)."""
    secret: str
    """The API key, so that the client can scrub it from every message it makes."""
    ratelimit_remaining: dict[str, int]
    """The server's latest `*-remaining` rate-limit headers by kind (requests, tokens, …)."""
    ratelimit_limits: dict[str, int]
    """The server's latest `*-limit` rate-limit headers by kind, per minute: the client's
    budgets follow them where they are lower than its own."""

    @abstractmethod
    async def send(self, request: Request) -> Reply: ...

    @abstractmethod
    def price(self) -> Price | None:
        """The model's price per token, or None when unknown (its cost is then unknown)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


_ON_SENT: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "on_sent", default=None
)
"""Called when the current task's request has gone on the wire (after connection set-up)."""


@contextmanager
def notify_when_sent(callback: Callable[[], None]) -> Iterator[None]:
    """Within this block, the request this task sends calls `callback` once it has left."""
    token = _ON_SENT.set(callback)
    try:
        yield
    finally:
        _ON_SENT.reset(token)


def wire_send_hooks() -> dict[str, list[Callable[..., Any]]]:
    """`event_hooks` for an httpx/httpx2 client that report the moment a request is sent.

    Pacing counts a request from when the server has it all: connection set-up (DNS, TLS) before
    that must not count against the budget window, and a request whose headers went out but
    whose body waited (the event loop busy elsewhere, a garbage collection) reaches the server
    only with its body, so counting it from its first byte could place the next one too close.
    """

    async def trace(event: str, info: dict[str, object]) -> None:
        if event.endswith(("send_request_body.complete", "send_request_body.failed")):
            callback = _ON_SENT.get()
            if callback is not None:
                callback()

    async def on_request(request: Any) -> None:
        request.extensions["trace"] = trace

    return {"request": [on_request]}
