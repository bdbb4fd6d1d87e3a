"""Cost: hand-computed usage x price, cache tokens included; unknown models are not free."""

from __future__ import annotations

import logging

import pytest

from autointerp.interpret.llm.pricing import Usage, cost_of, price_of


@pytest.mark.parametrize(
    ("model", "prices"),
    [
        ("claude-haiku-4-5-20251001", (1.0, 5.0)),
        ("claude-haiku-4-5", (1.0, 5.0)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("claude-sonnet-4-6", (3.0, 15.0)),
        ("claude-opus-4-5-20251101", (5.0, 25.0)),
        ("claude-opus-4-7", (5.0, 25.0)),
        ("claude-opus-5-0", (5.0, 25.0)),
        ("claude-haiku-5-5", (0.10, 0.50)),
    ],
)
def test_price_table(model: str, prices: tuple[float, float]) -> None:
    price = price_of(model)
    assert price is not None
    assert (price.input_per_mtok, price.output_per_mtok) == prices


def test_cost_matches_hand_computation_with_cache_tokens() -> None:
    usage = Usage(
        input_tokens=1200,
        output_tokens=150,
        cache_creation_input_tokens=4000,
        cache_read_input_tokens=8000,
    )
    # Haiku 4.5: $1/M in, $5/M out; cache write 1.25x, cache read 0.1x the input price.
    expected = (1200 * 1.0 + 4000 * 1.25 + 8000 * 0.1 + 150 * 5.0) / 1e6
    assert cost_of("claude-haiku-4-5-20251001", usage) == pytest.approx(expected, rel=1e-12)
    # Sonnet 4.5: $3/M in, $15/M out.
    expected = (1200 * 3.0 + 4000 * 3.75 + 8000 * 0.3 + 150 * 15.0) / 1e6
    assert cost_of("claude-sonnet-4-5", usage) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("model", ["claude-opus-4-1", "claude-3-haiku-20240307", "gpt-4", ""])
def test_unknown_model_has_unknown_cost_and_a_warning(
    model: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert cost_of(model, Usage(input_tokens=10)) is None
    assert f"no price known for model {model!r}" in caplog.text
    assert price_of(model) is None
