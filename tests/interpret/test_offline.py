"""The offline labeller: deterministic, never empty, confidence from precision and recall."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.interpret.offline import (
    OfflineLabeller,
    confidence_from,
    offline_answer,
    word_class,
)
from autointerp.schemas import ActivationExample
from tests.interpret.samples import ARCH, component


async def test_determiner_component_gets_a_specific_label() -> None:
    result = await OfflineLabeller().label(component(), ARCH)
    assert result.label == 'fires on " the", " a", " an" (determiners?), predicts " cat", " dog"'
    assert result.input_label == 'fires on " the", " a", " an" (determiners?)'
    assert result.output_label == 'predicts " cat", " dog"'
    assert result.confidence == "high"  # precision 0.61, the tokens cover 90% of firings
    assert (result.labeller, result.model, result.cost_usd) == ("offline", "offline", 0.0)
    assert "not written by a model" in result.reasoning


def test_word_classes() -> None:
    assert word_class([".", ",", "!"]) == "punctuation"
    assert word_class([" 3", "12"]) == "numbers"
    assert word_class([" he", " she"]) == "pronouns"
    assert word_class([" Tom", " Lily"]) == "capitalised words"
    assert word_class([" cat", " the"]) is None


def test_confidence_thresholds() -> None:
    assert confidence_from(0.6, 0.6) == "high"
    assert confidence_from(0.6, 0.1) == "medium"
    assert confidence_from(0.05, 0.35) == "medium"
    assert confidence_from(0.05, 0.05) == "low"


def test_without_token_statistics_the_examples_are_used() -> None:
    comp = component(input_precision=[("x", 0.0)])
    comp.input_token_stats.top_precision = []
    comp.output_token_stats.top_precision = []
    comp.activation_examples = [
        ActivationExample([" so", " happy"], [0.0, 1.0], active_pos=1, active_ci=1.0)
    ] * 3
    answer = offline_answer(comp)
    assert answer.label == 'fires on " happy"'
    assert answer.confidence == "medium"
    assert answer.input_label == answer.label
    assert answer.output_label == "no clear output pattern"


token_lists = st.lists(st.tuples(st.text(), st.floats(0, 1)), max_size=6)


@settings(max_examples=60, deadline=None)
@given(token_lists, token_lists, st.lists(st.text(), max_size=6))
def test_any_component_gets_a_non_empty_deterministic_label(
    inputs: list[tuple[str, float]], outputs: list[tuple[str, float]], tokens: list[str]
) -> None:
    comp = component(
        input_precision=inputs or [("a", 0.1)],
        output_precision=outputs or [("b", 0.1)],
        example_tokens=[*tokens, *["t"] * 8],
    )
    comp.input_token_stats.top_precision = inputs
    comp.output_token_stats.top_precision = outputs
    first = offline_answer(comp)
    assert first.label.strip() and first.input_label.strip() and first.output_label.strip()
    assert first == offline_answer(comp)
    assert first.confidence in ("low", "medium", "high")
