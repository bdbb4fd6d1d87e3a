"""Intruder: which of k windows does not belong? Needs no label.

Each question shows k - 1 held-out activating windows of the component and one window where it
fires nowhere, in a random slot; the model names the odd one out. Chance is 1/k. A component
whose firing windows share nothing recognisable scores near chance whatever its label says, so
this measures how interpretable the component is, not how good the label is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from autointerp.interpret.llm.errors import InvalidAnswer
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.scoring.asking import Ask, Asked, LabelTerms
from autointerp.interpret.scoring.base import SCORERS_SYSTEM, Plan, Scorer, Verdict, chunks
from autointerp.interpret.scoring.stats import wilson
from autointerp.interpret.scoring.windows import Window, numbered
from autointerp.schemas import HeldOutData

QUESTIONS_PER_REQUEST = 4

INSTRUCTION = (
    "Each question below shows {k} numbered windows of text. In {k_minus_1} of them one and the "
    "same component of the network fires somewhere; in one window, the intruder, it does not. "
    "For each question, which window is the intruder?"
)


class Intruders(msgspec.Struct, forbid_unknown_fields=True):
    intruders: list[int]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"intruders": {"type": "array", "items": {"type": "integer"}}},
    "required": ["intruders"],
    "additionalProperties": False,
}


class IntruderScorer(Scorer):
    name = "intruder"
    side = None

    def __init__(self, k: int = 5, questions: int = 8) -> None:
        self.k = k
        self.questions = questions

    def plan(self, label: str, heldout: HeldOutData, rng: random.Random) -> Plan | None:
        members = [Window.of(e) for e in heldout.activating]
        outsiders = [Window.of(e) for e in heldout.non_activating]
        n = min(self.questions, len(members) // (self.k - 1), len(outsiders))
        if n == 0:
            return None
        rng.shuffle(members)
        rng.shuffle(outsiders)
        questions: list[tuple[list[Window], int]] = []
        for q in range(n):
            windows = members[q * (self.k - 1) : (q + 1) * (self.k - 1)]
            slot = rng.randrange(self.k)
            windows.insert(slot, outsiders[q])
            questions.append((windows, slot + 1))
        groups = chunks(questions, QUESTIONS_PER_REQUEST)
        asks = [self._ask(group) for group in groups]

        def finish(asked: Sequence[Asked[Any]]) -> Verdict:
            right = total = errors = 0
            for group, answer in zip(groups, asked, strict=True):
                if answer.answer is None:
                    errors += len(group)
                    continue
                for (_, truth), said in zip(group, answer.answer, strict=True):
                    total += 1
                    right += said == truth
            return Verdict(wilson(right, total), errors, {"chance": 1 / self.k})

        return Plan(asks, finish)

    def _ask(self, group: Sequence[tuple[list[Window], int]]) -> Ask[list[int]]:
        text = [INSTRUCTION.format(k=self.k, k_minus_1=self.k - 1)]
        for q, (windows, _) in enumerate(group, start=1):
            text.append(f"Question {q}:\n{numbered(windows)}")
        text.append(
            'Answer with a JSON object {"intruders": [...]} giving, for each question in order, '
            f"the number (1 to {self.k}) of its intruder."
        )
        user = "\n\n".join(text)
        windows_of = [windows for windows, _ in group]

        def offline(terms: LabelTerms) -> list[int]:
            """The window with the fewest tokens that fit the label's terms."""
            return [
                1 + min(range(len(ws)), key=lambda i: sum(terms.matches(t) for t in ws[i].tokens))
                for ws in windows_of
            ]

        return Ask(Request(SCORERS_SYSTEM, user, SCHEMA), _parser(len(group), self.k), offline)


def _parser(questions: int, k: int) -> Callable[[str], list[int]]:
    decoder = msgspec.json.Decoder(Intruders)

    def parse(text: str) -> list[int]:
        try:
            said = decoder.decode(text.strip()).intruders
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise InvalidAnswer(f"answer is not the intruders JSON: {e}") from None
        if len(said) != questions or any(not 1 <= s <= k for s in said):
            raise InvalidAnswer(f"expected {questions} numbers from 1 to {k}, got {said}")
        return said

    return parse
