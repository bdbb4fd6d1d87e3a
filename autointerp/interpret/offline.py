"""A labeller that needs no network: labels built from the token statistics and examples.

It lets the daemon run end to end without an API key and is the baseline any model-written label
should beat. Results say `labeller="offline"`, `model="offline"` and cost nothing.
"""

from __future__ import annotations

import time
from collections import Counter

from autointerp.interpret import untrusted
from autointerp.interpret.base import Labeller
from autointerp.interpret.llm.stats import ClientStats
from autointerp.interpret.response import LabelAnswer
from autointerp.schemas import (
    PAD_TOKEN,
    ArchitectureInfo,
    ComponentData,
    Confidence,
    InterpretationResult,
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD_CLASSES: dict[str, frozenset[str]] = {
    "determiners": _words("the a an this that these those my your his its our their some any no"),
    "pronouns": _words("i you he she it we they me him her us them myself itself"),
    "prepositions": _words("in on at of to from with by for about into over under after before"),
    "conjunctions": _words("and or but so because if when while then than"),
    "auxiliary verbs": _words("is are was were be been am do does did have has had will would"),
}
SHOWN_TOKENS = 3
RELATIVE_CUTOFF = 0.25
"""Tokens whose precision is below this share of the best token's are left out of the label."""


def _bare(token: str) -> str:
    return token.strip().lstrip("Ġ▁").lower()


def word_class(tokens: list[str]) -> str | None:
    """A shared grammatical class of all `tokens`, if there is an obvious one."""
    bare = [_bare(t) for t in tokens]
    if not bare:
        return None
    if all(not b for b in bare):
        return "whitespace"
    if all(b and not any(ch.isalnum() for ch in b) for b in bare):
        return "punctuation"
    if all(b.isdigit() for b in bare):
        return "numbers"
    for name, words in _WORD_CLASSES.items():
        if all(b in words for b in bare):
            return name
    if all(t.strip()[:1].isupper() for t in tokens):
        return "capitalised words"
    return None


def _leading(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The best rows, dropping those far below the first."""
    if not rows:
        return []
    best = rows[0][1]
    return [(t, s) for t, s in rows[:SHOWN_TOKENS] if s >= best * RELATIVE_CUTOFF]


def _show(tokens: list[str]) -> str:
    return ", ".join(untrusted.quoted_token(t, 16) for t in tokens)


def _firing_tokens(component: ComponentData) -> list[tuple[str, float]]:
    """Most common firing tokens in the examples, as (token, share of examples)."""
    counts = Counter(
        ex.tokens[ex.active_pos]
        for ex in component.activation_examples
        if 0 <= ex.active_pos < len(ex.tokens) and ex.tokens[ex.active_pos] != PAD_TOKEN
    )
    total = sum(counts.values())
    return [(t, n / total) for t, n in counts.most_common(SHOWN_TOKENS)] if total else []


def confidence_from(precision: float, recall: float) -> Confidence:
    """High when the shown tokens are both specific to it and cover most of its firings."""
    if precision >= 0.5 and recall >= 0.5:
        return "high"
    if precision >= 0.2 or recall >= 0.3:
        return "medium"
    return "low"


def offline_answer(component: ComponentData) -> LabelAnswer:
    """The label, both sides, a confidence from the shown tokens' precision and recall."""
    inputs = _leading(component.input_token_stats.top_precision)
    outputs = _leading(component.output_token_stats.top_precision)
    recall_of = dict(component.input_token_stats.top_recall)
    sentences: list[str] = []
    if inputs:
        tokens = [t for t, _ in inputs]
        precision = inputs[0][1]
        recall = sum(recall_of.get(t, 0.0) for t in tokens)
        input_label = f"fires on {_show(tokens)}"
        sentences.append(
            f"Highest input precision: {_show(tokens[:1])} at {precision:.2f}; "
            f"the tokens shown account for {recall:.0%} of its firings."
        )
    else:
        seen = _firing_tokens(component)
        tokens = [t for t, _ in seen]
        precision, recall = 0.0, seen[0][1] if seen else 0.0
        input_label = f"fires on {_show(tokens)}" if tokens else "rarely fires; no clear pattern"
        sentences.append("No input-token statistics; the label comes from the examples.")
    kind = word_class(tokens)
    if kind:
        input_label += f" ({kind}?)"
    label = input_label
    output_label = "no clear output pattern"
    if outputs:
        shown = [t for t, _ in outputs][:2]
        output_label = f"predicts {_show(shown)}"
        label += f", {output_label}"
        sentences.append(f"Most specific predicted outputs: {_show(shown)}.")
    sentences.append(
        f"Fires on {component.firing_density:.2%} of tokens with mean CI "
        f"{component.mean_ci:.3g}. Heuristic label, not written by a model."
    )
    confidence = confidence_from(precision, recall)
    return LabelAnswer(label, confidence, " ".join(sentences), input_label, output_label)


class OfflineLabeller(Labeller):
    name = "offline"
    model = "offline"
    max_concurrent = 1
    """Labels are computed, not awaited: one worker is enough."""

    def __init__(self) -> None:
        self._done = 0

    async def label(
        self, component: ComponentData, architecture: ArchitectureInfo
    ) -> InterpretationResult:
        answer = offline_answer(component)
        self._done += 1
        return InterpretationResult(
            component_key=component.component_key,
            label=answer.label,
            confidence=answer.confidence,
            reasoning=answer.reasoning,
            raw_response="",
            input_label=answer.input_label,
            output_label=answer.output_label,
            labeller=self.name,
            model=self.model,
            timestamp=time.time(),
        )

    def stats(self) -> ClientStats:
        return ClientStats(requests=self._done)
