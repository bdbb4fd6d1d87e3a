"""Detection: given the label, which held-out windows make the component fire?

Positives are held-out activating windows (disjoint from the examples the labeller saw).
Negatives are windows where the component's CI is at or below the threshold at every token,
verified in the harvest, of two kinds: random ones (`non_activating`), and hard ones
(`hard_non_activating`) centred where one of the component's co-firing partners fires. A label
that describes the whole family of components firing together passes the random negatives and
fails the hard ones. The headline balanced accuracy counts both kinds as negatives;
`random_specificity` and `hard_specificity` (each with its Wilson interval and count) say how
the label fares on each. Held-out files from before hard negatives have none (`hard_negatives`
0, `hard_specificity` None) and are scored as before.
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

    def __init__(self, positives: int = 20, negatives: int = 20, hard_negatives: int = 10) -> None:
        self.positives = positives
        self.negatives = negatives
        self.hard_negatives = hard_negatives

    def plan(self, label: str, heldout: HeldOutData, rng: random.Random) -> Plan | None:
        pos = [(Window.of(e), True, "positive") for e in heldout.activating[: self.positives]]
        neg = [(Window.of(e), False, "random") for e in heldout.non_activating[: self.negatives]]
        hard = heldout.hard_non_activating[: self.hard_negatives]
        neg += [(Window.of(e), False, "hard") for e in hard]
        if not pos or not neg:
            return None
        trials = pos + neg
        rng.shuffle(trials)
        return classify_plan(
            label,
            [(w, truth) for w, truth, _ in trials],
            QUESTION,
            _fires,
            kinds=[kind for _, _, kind in trials],
            report_kinds=("random", "hard"),
        )


def _fires(terms: LabelTerms, window: Window) -> bool:
    return any(terms.matches(t) for t in window.tokens)
