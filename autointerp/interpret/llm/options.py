"""The client's settings as the CLI gives them, and the client they build."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autointerp.interpret.llm.defaults import DEFAULT_MODEL
from autointerp.interpret.llm.ratelimit import RateLimits

if TYPE_CHECKING:
    from autointerp.interpret.llm.client import LLMClient

DEFAULT_MAX_CONCURRENT = 8
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ClientOptions:
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    """None: the provider's environment variable (ANTHROPIC_BASE_URL), else its public API."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    """Most requests in flight at once (the one concurrency setting)."""
    limits: RateLimits = field(default_factory=RateLimits)


def build_client(options: ClientOptions) -> LLMClient:
    """An `LLMClient` for Claude. A missing API key is a UserError naming the variable.

    The SDK is imported here, not at module import, so that `--help` stays fast.
    """
    from autointerp.interpret.llm.anthropic import AnthropicProvider
    from autointerp.interpret.llm.client import LLMClient

    provider = AnthropicProvider(
        options.model, base_url=options.base_url, timeout=options.timeout_s
    )
    return LLMClient(provider, max_concurrent=options.max_concurrent, limits=options.limits)
