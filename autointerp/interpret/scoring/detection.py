"""Detection: given the label, which held-out windows make the component fire?

Positives are held-out activating windows (disjoint from the examples the labeller saw);
negatives are windows where the component's CI is zero at every token, verified in the harvest.
"""

from __future__ import annotations

import random

from autointerp.interpret.scoring.asking import LabelTerms
from autointerp.interpret.scoring.base import Plan, Scorer
from autointerp.interpret.scoring.classify import classify_plan
from autointerp.interpret.scoring.windows import Window
from autointerp.schemas import HeldOutData

QUESTION = (
    "Below are numbered windows of text. The component described by the interpretation fires "
    "on some token of some of them and on no token of the others. Which windows make it fire?"
)


class DetectionScorer(Scorer):
    name = "detection"

    def __init__(self, positives: int = 20, negatives: int = 20) -> None:
        self.positives = positives
        self.negatives = negatives

    def plan(self, label: str, heldout: HeldOutData, rng: random.Random) -> Plan | None:
        pos = [(Window.of(e), True) for e in heldout.activating[: self.positives]]
        neg = [(Window.of(e), False) for e in heldout.non_activating[: self.negatives]]
        if not pos or not neg:
            return None
        trials = pos + neg
        rng.shuffle(trials)
        return classify_plan(label, trials, QUESTION, _fires)


def _fires(terms: LabelTerms, window: Window) -> bool:
    return any(terms.matches(t) for t in window.tokens)
