"""Yes/no trials in groups: the shape detection and fuzzing share.

Windows go to the model ten at a time, numbered; it answers with the numbers it says yes to.
Each window is one trial. Balanced accuracy is the headline (positives and negatives come in
different numbers), with precision, recall and F1 beside it, and, where the negatives are of
several kinds (detection's random and hard ones), each kind's true-negative rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from autointerp.interpret import untrusted
from autointerp.interpret.llm.errors import InvalidAnswer
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.scoring.asking import Ask, Asked, LabelTerms
from autointerp.interpret.scoring.base import SCORERS_SYSTEM, Plan, Verdict, chunks
from autointerp.interpret.scoring.stats import balanced_accuracy, f1_score, wilson
from autointerp.interpret.scoring.windows import Window, numbered

WINDOWS_PER_REQUEST = 10


class Numbers(msgspec.Struct, forbid_unknown_fields=True):
    chosen: list[int]


NUMBERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"chosen": {"type": "array", "items": {"type": "integer"}}},
    "required": ["chosen"],
    "additionalProperties": False,
}


def parse_numbers(count: int) -> Callable[[str], set[int]]:
    """The parser of an answer about `count` numbered windows: the set of numbers chosen."""
    decoder = msgspec.json.Decoder(Numbers)

    def parse(text: str) -> set[int]:
        try:
            chosen = decoder.decode(text.strip()).chosen
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise InvalidAnswer(f"answer is not the numbers JSON: {e}") from None
        if any(not 1 <= n <= count for n in chosen):
            raise InvalidAnswer(f"answer names windows outside 1..{count}: {chosen}")
        return set(chosen)

    return parse


def classify_plan(
    label: str,
    trials: Sequence[tuple[Window, bool]],
    question: str,
    says_yes: Callable[[LabelTerms, Window], bool],
    *,
    kinds: Sequence[str] = (),
    report_kinds: Sequence[str] = (),
) -> Plan:
    """Ask `question` about each window (truth beside it); `says_yes` is the offline answer.

    `kinds`: each trial's kind (parallel to `trials`, or empty). For each kind in
    `report_kinds` the metrics hold `<kind>_specificity` (the share of its answered negatives
    said "no", with a Wilson interval: `_low`, `_high`; None without any) and `<kind>_negatives`
    (how many were answered)."""
    if kinds and len(kinds) != len(trials):
        raise ValueError("kinds must name the kind of every trial")
    groups = chunks(list(trials), WINDOWS_PER_REQUEST)
    kind_groups = chunks(list(kinds) or [""] * len(trials), WINDOWS_PER_REQUEST)
    asks = []
    for group in groups:
        windows = [w for w, _ in group]
        user = (
            f"The interpretation to test:\n<data>\n{untrusted.clean(label)}\n</data>\n\n"
            f"{question}\n\n{numbered(windows)}\n\n"
            'Answer with a JSON object {"chosen": [...]} listing the numbers of those windows '
            "(an empty list if none)."
        )

        def offline(terms: LabelTerms, windows: list[Window] = windows) -> set[int]:
            return {i for i, w in enumerate(windows, start=1) if says_yes(terms, w)}

        asks.append(
            Ask(Request(SCORERS_SYSTEM, user, NUMBERS_SCHEMA), parse_numbers(len(group)), offline)
        )

    def finish(asked: Sequence[Asked[Any]]) -> Verdict:
        truth: list[bool] = []
        said: list[bool] = []
        kind_of: list[str] = []
        errors = 0
        for group, group_kinds, answer in zip(groups, kind_groups, asked, strict=True):
            if answer.answer is None:
                errors += len(group)
                continue
            for i, ((_, is_true), kind) in enumerate(zip(group, group_kinds, strict=True), 1):
                truth.append(is_true)
                said.append(i in answer.answer)
                kind_of.append(kind)
        tp = sum(t and s for t, s in zip(truth, said, strict=True))
        tn = sum(not t and not s for t, s in zip(truth, said, strict=True))
        positives = sum(truth)
        negatives = len(truth) - positives
        claimed = sum(said)
        precision, recall, f1 = wilson(tp, claimed), wilson(tp, positives), f1_score(truth, said)
        by_kind: dict[str, float | None] = {}
        for kind in report_kinds:
            answers = [
                s for t, s, k in zip(truth, said, kind_of, strict=True) if k == kind and not t
            ]
            specificity = wilson(answers.count(False), len(answers))
            by_kind |= {
                f"{kind}_specificity": specificity.value,
                f"{kind}_specificity_low": specificity.low,
                f"{kind}_specificity_high": specificity.high,
                f"{kind}_negatives": float(len(answers)),
            }
        return Verdict(
            balanced_accuracy(tp, positives, tn, negatives),
            errors,
            {
                "precision": precision.value,
                "recall": recall.value,
                "recall_low": recall.low,
                "recall_high": recall.high,
                "f1": f1.value,
                "f1_low": f1.low,
                "f1_high": f1.high,
                "positives": float(positives),
                "negatives": float(negatives),
                **by_kind,
            },
        )

    return Plan(asks, finish)
