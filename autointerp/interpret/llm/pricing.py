"""List prices of Claude models and the cost of one response's token usage.

Prices are US dollars per million tokens. Cache writes cost 1.25x and cache reads 0.1x the input
price. A model not in the table has an unknown cost (`None`), never a silent zero.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    """Cached input, where the provider prices it its own way; None: 0.1x the input price."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


HAIKU_4_5 = Price(1.0, 5.0)
SONNET_4_5 = Price(3.0, 15.0)
OPUS_4_5 = Price(5.0, 25.0)
HAIKU_5_5 = Price(0.10, 0.50)

# (family, major, minor) of a model id such as claude-haiku-4-5-20251001 or claude-opus-4-6.
_MODEL_ID = re.compile(r"^claude-(haiku|sonnet|opus)-(\d+)-(\d+)(?:-\d{8})?$")


def price_of(model: str) -> Price | None:
    """The list price of `model`, or None when this table does not know it."""
    match = _MODEL_ID.match(model.strip())
    if match is None:
        return None
    family, version = match.group(1), (int(match.group(2)), int(match.group(3)))
    if family == "haiku" and version == (4, 5):
        return HAIKU_4_5
    if family == "haiku" and version == (5, 5):
        return HAIKU_5_5
    if family == "sonnet" and version in ((4, 5), (4, 6)):
        return SONNET_4_5
    if family == "opus" and version >= (4, 5):
        return OPUS_4_5
    return None


CACHE_MINIMUM_TOKENS = {"haiku": 4096, "sonnet": 1024, "opus": 4096}
"""The shortest prefix each Claude family caches; below it a cache mark is silently ignored."""


def cache_minimum_tokens(model: str) -> int | None:
    """The model's minimum cacheable prefix in tokens, or None when this table does not know."""
    match = _MODEL_ID.match(model.strip())
    return None if match is None else CACHE_MINIMUM_TOKENS[match.group(1)]


BATCH_DISCOUNT = 0.5
"""The Message Batches API charges half the price of every token (cache reads and writes too)."""


def batch_price(price: Price) -> Price:
    """What a token costs through the Message Batches API."""
    cache_read = price.cache_read_per_mtok
    return Price(
        price.input_per_mtok * BATCH_DISCOUNT,
        price.output_per_mtok * BATCH_DISCOUNT,
        cache_read_per_mtok=None if cache_read is None else cache_read * BATCH_DISCOUNT,
    )


def cost_usd(price: Price, usage: Usage) -> float:
    per_token_in = price.input_per_mtok / 1e6
    per_token_cache_read = (
        per_token_in * CACHE_READ_FACTOR
        if price.cache_read_per_mtok is None
        else price.cache_read_per_mtok / 1e6
    )
    return (
        usage.input_tokens * per_token_in
        + usage.cache_creation_input_tokens * per_token_in * CACHE_WRITE_FACTOR
        + usage.cache_read_input_tokens * per_token_cache_read
        + usage.output_tokens * price.output_per_mtok / 1e6
    )


_warned: set[str] = set()


def warn_unknown_price(model: str) -> None:
    """Say once per model that its cost is unknown (reported as such, never as $0)."""
    if model not in _warned:
        _warned.add(model)
        log.warning("no price known for model %r: its cost is reported as unknown", model)


def cost_of(model: str, usage: Usage) -> float | None:
    """Cost of `usage` on `model`; None (with one warning per model) when the price is unknown."""
    price = price_of(model)
    if price is None:
        warn_unknown_price(model)
        return None
    return cost_usd(price, usage)
