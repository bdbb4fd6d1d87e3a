"""The Claude labeller as the CLI builds it, pointed at a loopback server, for tests."""

from __future__ import annotations

from autointerp.interpret.labeller import ModelLabeller
from autointerp.interpret.llm.anthropic import AnthropicProvider
from autointerp.interpret.llm.client import LLMClient
from autointerp.interpret.llm.defaults import DEFAULT_MODEL
from autointerp.interpret.llm.ratelimit import Clock, RateLimits
from autointerp.interpret.llm.retry import RetryPolicy
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PromptVersion


def claude_labeller(
    base_url: str | None,
    *,
    model: str = DEFAULT_MODEL,
    timeout: float = 60.0,
    max_concurrent: int = 8,
    limits: RateLimits | None = None,
    retry: RetryPolicy | None = None,
    clock: Clock | None = None,
    seed: int | None = None,
    overload_cooldown_s: float = 2.0,
    strict: bool = True,
    prompt: PromptVersion = DEFAULT_PROMPT,
) -> ModelLabeller:
    """`strict`: the SDK validates every response strictly, so an unfaithful fake fails."""
    provider = AnthropicProvider(
        model, base_url=base_url, timeout=timeout, _strict_response_validation=strict
    )
    client = LLMClient(
        provider,
        max_concurrent=max_concurrent,
        limits=limits,
        retry=retry,
        clock=clock,
        seed=seed,
        overload_cooldown_s=overload_cooldown_s,
    )
    return ModelLabeller(client, prompt=prompt)
