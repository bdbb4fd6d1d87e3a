"""The JSON a labeller must answer with, its schema for structured output, and strict parsing.

Each prompt version has its answer: `v1` a label, a confidence and the reasoning; `v2` adds the
two sides, `output_label` (what the component does when it fires) and `input_label` (what it
responds to). Both parse to one `LabelAnswer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from autointerp.interpret.llm.errors import InvalidAnswer
from autointerp.interpret.prompt_version import PromptVersion
from autointerp.schemas import Confidence


class LabelResponse(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    confidence: Confidence
    reasoning: str


class BothSidesResponse(msgspec.Struct, forbid_unknown_fields=True):
    output_label: str
    input_label: str
    label: str
    confidence: Confidence
    reasoning: str


RESPONSES: dict[str, type[LabelResponse] | type[BothSidesResponse]] = {
    "v1": LabelResponse,
    "v2": BothSidesResponse,
}


@dataclass(frozen=True)
class LabelAnswer:
    label: str
    confidence: Confidence
    reasoning: str
    input_label: str = ""
    output_label: str = ""


def response_schema(version: PromptVersion = "v2") -> dict[str, Any]:
    """The answer's JSON schema with the top-level `$ref` inlined.

    Structured output wants an object schema at the top with `additionalProperties: false`.
    """
    schema = msgspec.json.schema(RESPONSES[version])
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return dict(schema["$defs"][ref.removeprefix("#/$defs/")])
    return schema


def _one_line(text: str) -> str:
    return " ".join(text.split())


def response_parser(version: PromptVersion = "v2") -> Callable[[str], LabelAnswer]:
    """The parser of one version's answer; it raises `InvalidAnswer` with a short reason."""
    decoder = msgspec.json.Decoder(RESPONSES[version])

    def parse(text: str) -> LabelAnswer:
        try:
            parsed = decoder.decode(text.strip())
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise InvalidAnswer(f"response is not the label JSON: {e}") from None
        label = _one_line(parsed.label)
        if not label:
            raise InvalidAnswer("response has an empty label")
        if isinstance(parsed, BothSidesResponse):
            sides = _one_line(parsed.input_label), _one_line(parsed.output_label)
            if not all(sides):
                raise InvalidAnswer("response leaves a side empty")
            return LabelAnswer(label, parsed.confidence, parsed.reasoning, *sides)
        return LabelAnswer(label, parsed.confidence, parsed.reasoning)

    return parse
