"""Which providers there are and what each needs: the one place that knows them.

`--provider anthropic` (Claude, the Messages API) or `--provider openai` (any server that speaks
OpenAI's chat-completions API: OpenAI, vLLM, OpenRouter, Ollama). The CLI, the labeller choice,
the budget check and `build_client` ask here which environment variable holds a provider's key,
whether a key is needed at all (a server on this machine needs none), which base URL applies,
whether `--model` must be given and what a model costs. Nothing here imports an SDK, so that
`--help` stays fast.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from autointerp.errors import UserError
from autointerp.interpret.llm.defaults import API_KEY_ENV, DEFAULT_MODEL
from autointerp.interpret.llm.pricing import Price, price_of

if TYPE_CHECKING:
    from autointerp.interpret.llm.options import ClientOptions
    from autointerp.interpret.llm.provider import Provider

ProviderName = Literal["anthropic", "openai"]
PROVIDERS: tuple[ProviderName, ...] = ("anthropic", "openai")
DEFAULT_PROVIDER: ProviderName = "anthropic"

NO_KEY_PLACEHOLDER = "none"
"""Sent as the key to a local server when no key is set: the SDK wants one, such servers ignore
it (vLLM without `--api-key`, Ollama). Too short to be mistaken for a key when messages are
scrubbed."""


@dataclass(frozen=True)
class ProviderSpec:
    name: ProviderName
    key_env: str
    """The environment variable the key is read from (and only from)."""
    base_url_env: str
    """The environment variable the SDK reads the base URL from when `--base-url` is not given."""
    public_base_url: str
    default_model: str | None
    """None: `--model` must be given (the Claude default means nothing to this API)."""
    labeller: str
    """The `labeller` written into results and the answerer into score records."""
    key_optional_locally: bool
    """A server on this machine (localhost, 127.0.0.1, ::1) may be used without a key."""


SPECS: dict[ProviderName, ProviderSpec] = {
    "anthropic": ProviderSpec(
        name="anthropic",
        key_env=API_KEY_ENV,
        base_url_env="ANTHROPIC_BASE_URL",
        public_base_url="https://api.anthropic.com",
        default_model=DEFAULT_MODEL,
        labeller="claude",
        key_optional_locally=False,
    ),
    "openai": ProviderSpec(
        name="openai",
        key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
        public_base_url="https://api.openai.com/v1",
        default_model=None,
        labeller="openai",
        key_optional_locally=True,
    ),
}


def spec(provider: str) -> ProviderSpec:
    try:
        return SPECS[provider]  # type: ignore[index]
    except KeyError:
        raise UserError(
            f"unknown provider {provider!r}: choose from {', '.join(PROVIDERS)}"
        ) from None


def base_url_of(provider: str, base_url: str | None) -> str:
    """Where requests go: `--base-url`, else the provider's variable, else its public API."""
    s = spec(provider)
    chosen = base_url or os.environ.get(s.base_url_env, "").strip() or s.public_base_url
    return chosen.rstrip("/")


def is_local_url(url: str) -> bool:
    """True for a server on this machine: localhost (or *.localhost), 127.0.0.0/8, ::1."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_from_env(provider: str, base_url: str | None, *, instead: str) -> str:
    """The provider's key from its variable. A missing key is a UserError naming the variable
    and `instead` (the offline alternative), except for a local server of a provider that allows
    it: then a placeholder is sent."""
    s = spec(provider)
    key = os.environ.get(s.key_env, "").strip()
    if key:
        return key
    url = base_url_of(provider, base_url)
    if s.key_optional_locally and is_local_url(url):
        return NO_KEY_PLACEHOLDER
    local = " (a server on this machine, e.g. --base-url http://localhost:8000/v1, needs none)"
    raise UserError(
        f"{s.key_env} is not set: export the API key for {url} in {s.key_env}"
        f"{local if s.key_optional_locally else ''}, or use {instead}"
    )


def key_available(provider: str, base_url: str | None) -> tuple[bool, str]:
    """(whether a model can be asked without a UserError about the key, why) for the default
    choice of labeller or answerer."""
    s = spec(provider)
    if os.environ.get(s.key_env, "").strip():
        return True, f"{s.key_env} is set"
    if s.key_optional_locally and is_local_url(base_url_of(provider, base_url)):
        return True, "the base URL is a local server (no key needed)"
    return False, f"no {s.key_env}"


def check_model(options: ClientOptions) -> None:
    """`--model` must be given where the provider has no default (the Claude default would only
    be rejected by the server)."""
    s = spec(options.provider)
    if s.default_model is None and options.model == DEFAULT_MODEL:
        raise UserError(
            f"--provider {s.name} needs --model: the model's name on that server (e.g. "
            "gpt-4.1-mini on OpenAI, or the name vLLM or Ollama serves it under)"
        )


# ---- prices of OpenAI models
_OPENAI_PRICES: dict[str, Price] = {
    # US dollars per million tokens (input, output, cached input), OpenAI's standard-tier list
    # prices. Models whose price changed between snapshots under one name (gpt-4o) are left out.
    "gpt-4o-mini": Price(0.15, 0.60, cache_read_per_mtok=0.075),
    "gpt-4.1": Price(2.00, 8.00, cache_read_per_mtok=0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, cache_read_per_mtok=0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, cache_read_per_mtok=0.025),
}
_DATED = re.compile(r"^(.+?)(?:-\d{4}-\d{2}-\d{2})?$")


def openai_price_of(model: str) -> Price | None:
    """The list price of an OpenAI model (also a dated snapshot of it), or None."""
    match = _DATED.match(model.strip())
    return _OPENAI_PRICES.get(match.group(1)) if match else None


def price_for(options: ClientOptions) -> Price | None:
    """What the client charges per token: `--price-*-per-mtok` when given, else the provider's
    table; None when unknown (cost then unknown, never $0)."""
    if options.price is not None:
        return options.price
    if options.provider == "openai":
        return openai_price_of(options.model)
    return price_of(options.model)


def price_from_options(
    provider: str, input_per_mtok: float | None, output_per_mtok: float | None
) -> Price | None:
    """The price `--price-input-per-mtok` and `--price-output-per-mtok` give (both or neither).

    Anthropic's cache factors apply to Claude; for other providers, whose discount for cached
    input differs by server, cached input is charged at the full input price (an upper bound)."""
    if input_per_mtok is None and output_per_mtok is None:
        return None
    if input_per_mtok is None or output_per_mtok is None:
        raise UserError("--price-input-per-mtok and --price-output-per-mtok go together: give both")
    if spec(provider).name == "anthropic":
        return Price(input_per_mtok, output_per_mtok)
    return Price(input_per_mtok, output_per_mtok, cache_read_per_mtok=input_per_mtok)


def check_budget(options: ClientOptions, budget_usd: float | None) -> None:
    """Refuse `--budget-usd` where the cost cannot be known (and a missing `--model` first)."""
    check_model(options)
    if budget_usd is not None and price_for(options) is None:
        where = (
            "autointerp/interpret/llm/providers.py"
            if options.provider == "openai"
            else "autointerp/interpret/llm/pricing.py"
        )
        raise UserError(
            f"--budget-usd cannot be kept for model {options.model!r}: its price is not in the "
            f"table ({where}); give --price-input-per-mtok and --price-output-per-mtok, drop "
            "--budget-usd, or use a listed model"
        )


def make_provider(options: ClientOptions, *, instead: str = "--labeller offline") -> Provider:
    """The provider `options` name, its SDK imported only now."""
    check_model(options)
    if options.provider == "openai":
        from autointerp.interpret.llm.openai import OpenAIProvider

        return OpenAIProvider(
            options.model, base_url=options.base_url, timeout=options.timeout_s, instead=instead
        )
    from autointerp.interpret.llm.anthropic import AnthropicProvider

    return AnthropicProvider(options.model, base_url=options.base_url, timeout=options.timeout_s)
