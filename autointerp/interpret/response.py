"""The JSON a labeller must answer with, its schema for structured output, and strict parsing."""

from __future__ import annotations

from typing import Any

import msgspec

from autointerp.interpret.llm.errors import InvalidAnswer
from autointerp.schemas import Confidence


class LabelResponse(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    confidence: Confidence
    reasoning: str


def response_schema() -> dict[str, Any]:
    """`msgspec.json.schema(LabelResponse)` with the top-level `$ref` inlined.

    Structured output wants an object schema at the top with `additionalProperties: false`.
    """
    schema = msgspec.json.schema(LabelResponse)
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return dict(schema["$defs"][ref.removeprefix("#/$defs/")])
    return schema


_decoder = msgspec.json.Decoder(LabelResponse)


def parse_response(text: str) -> LabelResponse:
    """Decode and check the model's answer; raises `InvalidAnswer` with a short reason."""
    try:
        parsed = _decoder.decode(text.strip())
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InvalidAnswer(f"response is not the label JSON: {e}") from None
    label = " ".join(parsed.label.split())
    if not label:
        raise InvalidAnswer("response has an empty label")
    return LabelResponse(label=label, confidence=parsed.confidence, reasoning=parsed.reasoning)
