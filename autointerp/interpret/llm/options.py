"""The client's settings as the CLI gives them, and the client they build."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autointerp.interpret.llm.defaults import DEFAULT_MODEL
from autointerp.interpret.llm.pricing import Price
from autointerp.interpret.llm.ratelimit import RateLimits

if TYPE_CHECKING:
    from autointerp.interpret.llm.client import LLMClient

DEFAULT_MAX_CONCURRENT = 8
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ClientOptions:
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    """None: the provider's environment variable (ANTHROPIC_BASE_URL, OPENAI_BASE_URL), else its
    public API."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    """Most requests in flight at once (the one concurrency setting)."""
    limits: RateLimits = field(default_factory=RateLimits)
    provider: str = "anthropic"
    """`anthropic` or `openai` (any chat-completions server): see `providers.py`."""
    price: Price | None = None
    """`--price-input-per-mtok`/`--price-output-per-mtok`; None: the provider's price table."""


def build_client(options: ClientOptions) -> LLMClient:
    """An `LLMClient` for the provider `options` name. A missing API key is a UserError naming
    the variable.

    The SDK is imported here, not at module import, so that `--help` stays fast.
    """
    from autointerp.interpret.llm.client import LLMClient
    from autointerp.interpret.llm.providers import make_provider, price_for

    provider = make_provider(options)
    return LLMClient(
        provider,
        max_concurrent=options.max_concurrent,
        limits=options.limits,
        price=price_for(options),
    )
