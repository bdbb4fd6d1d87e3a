"""The client's settings as the CLI gives them, and the client they build."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from autointerp.errors import UserError
from autointerp.interpret.llm.defaults import DEFAULT_MODEL
from autointerp.interpret.llm.pricing import Price
from autointerp.interpret.llm.ratelimit import RateLimits

if TYPE_CHECKING:
    from autointerp.interpret.llm.completer import Completer

DEFAULT_MAX_CONCURRENT = 8
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BatchOptions:
    size: int = 10_000
    """Most requests in one batch (the API takes 100,000)."""
    max_wait_s: float = 60.0
    """A request waits at most this long for its batch to fill before the batch is sent."""
    idle_s: float = 5.0
    """A batch is sent once no request has arrived for this long (the end of the input)."""
    poll_s: float = 30.0
    """How often open batches are polled."""
    max_pending: int = 20_000
    """Most requests waiting for results at once (the pool's number of workers)."""
    settle_s: float | None = None
    """How long after a submission whose answer was lost before the server's list is trusted
    to show the batch if it was created (None: twice the request timeout)."""


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
    batch: BatchOptions | None = None
    """`--batch`: through the Message Batches API (half price, results within hours)."""


def build_client(options: ClientOptions) -> Completer:
    """The client `options` ask for: an `LLMClient`, or with `--batch` a `BatchClient`. A
    missing API key is a UserError naming the variable.

    The SDK is imported here, not at module import, so that `--help` stays fast.
    """
    from autointerp.interpret.llm.client import LLMClient
    from autointerp.interpret.llm.providers import make_provider, price_for

    if options.batch is not None and options.provider != "anthropic":
        raise UserError(
            f"--batch uses Anthropic's Message Batches API; --provider {options.provider} has "
            "none here: drop --batch"
        )
    provider = make_provider(options)
    if options.batch is not None:
        from autointerp.interpret.llm.anthropic import AnthropicProvider
        from autointerp.interpret.llm.anthropic_batches import AnthropicBatches
        from autointerp.interpret.llm.batch_client import BatchClient

        assert isinstance(provider, AnthropicProvider)
        batch = options.batch
        if batch.settle_s is None:
            batch = replace(batch, settle_s=2.0 * options.timeout_s)
        return BatchClient(AnthropicBatches(provider), batch, price=price_for(options))
    return LLMClient(
        provider,
        max_concurrent=options.max_concurrent,
        limits=options.limits,
        price=price_for(options),
    )
