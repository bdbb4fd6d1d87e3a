"""Output: does the label's output side tell which tokens come right after the component fires?

A label's input side is scored by detection, fuzzing and simulation; this scores the other side,
what the component does when it fires. Each trial is a held-out window cut just after one
position with the token that followed it marked: for the positives the position is a held-out
firing of the component, for the negatives the centre of a window where it fires nowhere. Given
what the label says the component makes the model predict, the answerer picks the windows whose
marked token follows a firing. It is a weak signal by construction (the text that followed is
one draw from the model's prediction, not the prediction), so scores sit nearer 0.5 than
detection's; what matters is the comparison between labels on the same windows.
"""

from __future__ import annotations

import random

from autointerp.interpret.scoring.asking import LabelTerms
from autointerp.interpret.scoring.base import Plan, Scorer
from autointerp.interpret.scoring.classify import classify_plan
from autointerp.interpret.scoring.windows import Window
from autointerp.schemas import PAD_TOKEN, ActivationExample, HeldOutData

QUESTION = (
    "Below are numbered windows of text, each ending with one token marked ⟦like this⟧. In some "
    "of them the component fired on the token just before the marked one; in the others it was "
    "silent there. The interpretation says what the component makes the model predict when it "
    "fires. In which windows did it fire just before the marked token?"
)


def next_token_window(example: ActivationExample) -> Window | None:
    """The window up to the token after `active_pos`, that token marked; None at a sequence's
    end (no token followed)."""
    following = example.active_pos + 1
    if following >= len(example.tokens) or example.tokens[following] == PAD_TOKEN:
        return None
    full = Window.of(example, mark=following)
    if full.mark is None:
        return None
    cut = full.mark + 1
    return Window(full.tokens[:cut], full.ci[:cut], full.mark)


class OutputScorer(Scorer):
    name = "output"
    side = "output"

    def __init__(self, positives: int = 20, negatives: int = 20) -> None:
        self.positives = positives
        self.negatives = negatives

    def plan(self, label: str, heldout: HeldOutData, rng: random.Random) -> Plan | None:
        pos = _windows(heldout.activating, self.positives)
        neg = _windows(heldout.non_activating, self.negatives)
        if not pos or not neg:
            return None
        trials = [(w, True) for w in pos] + [(w, False) for w in neg]
        rng.shuffle(trials)
        return classify_plan(label, trials, QUESTION, _marked_fits)


def _windows(examples: list[ActivationExample], limit: int) -> list[Window]:
    windows = (next_token_window(e) for e in examples)
    return [w for w in windows if w is not None][:limit]


def _marked_fits(terms: LabelTerms, window: Window) -> bool:
    return window.mark is not None and terms.matches(window.tokens[window.mark])
