"""Fuzzing: given the label, is the marked token the one the component fires on?

Each held-out activating window is shown once with one token marked ⟦ ⟧: for half of them the
firing token, for the other half a token of the same window where the component's CI is zero.
"""

from __future__ import annotations

import random

from autointerp.interpret.scoring.asking import LabelTerms
from autointerp.interpret.scoring.base import Plan, Scorer
from autointerp.interpret.scoring.classify import classify_plan
from autointerp.interpret.scoring.windows import Window
from autointerp.schemas import PAD_TOKEN, HeldOutData

QUESTION = (
    "Below are numbered windows of text, each with one token marked ⟦like this⟧. In some of "
    "them the marked token is one the component described by the interpretation fires on; in "
    "the others it is a token where the component is silent. In which windows is the marked "
    "token one it fires on?"
)


class FuzzingScorer(Scorer):
    name = "fuzzing"

    def __init__(self, windows: int = 20) -> None:
        self.windows = windows

    def plan(self, label: str, heldout: HeldOutData, rng: random.Random) -> Plan | None:
        examples = list(heldout.activating[: self.windows])
        rng.shuffle(examples)
        trials = []
        for i, example in enumerate(examples):
            if i % 2 == 0:
                trials.append((Window.of(example, mark=example.active_pos), True))
                continue
            silent = [
                j
                for j, (t, c) in enumerate(zip(example.tokens, example.ci_values, strict=True))
                if c <= 0 and t != PAD_TOKEN
            ]
            if silent:
                trials.append((Window.of(example, mark=rng.choice(silent)), False))
        if not any(t for _, t in trials) or all(t for _, t in trials):
            return None
        rng.shuffle(trials)
        return classify_plan(label, trials, QUESTION, _marked_fits)


def _marked_fits(terms: LabelTerms, window: Window) -> bool:
    return window.mark is not None and terms.matches(window.tokens[window.mark])
