"""Simulation: from the label alone, predict the component's activation on every token.

The model sees held-out windows token by token and answers a 0-10 activation for each, as JSON
(no log-probabilities needed, so any chat model can do it). The score is Pearson's correlation of
its predictions with the true CI over all tokens of the answered windows. Tokens of one window
are not independent, so the interval is a percentile bootstrap over windows (seeded: the same
answers always give the same interval); n counts windows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from autointerp.interpret import untrusted
from autointerp.interpret.llm.errors import InvalidAnswer
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.scoring.asking import Ask, Asked, LabelTerms
from autointerp.interpret.scoring.base import SCORERS_SYSTEM, Plan, Scorer, Verdict, chunks
from autointerp.interpret.scoring.stats import BOOTSTRAP_SAMPLES, Estimate, correlation
from autointerp.interpret.scoring.windows import Window, numbered
from autointerp.schemas import HeldOutData

WINDOWS_PER_REQUEST = 5
MAX_ACTIVATION = 10

INSTRUCTION = (
    "Simulate the component described by the interpretation. Below are numbered windows of "
    "text, token by token as index:token. For every token, predict the component's activation "
    f"on it, an integer from 0 (silent) to {MAX_ACTIVATION} (strongest)."
)


class Activations(msgspec.Struct, forbid_unknown_fields=True):
    windows: list[list[int]]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "windows": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
    },
    "required": ["windows"],
    "additionalProperties": False,
}


class SimulationScorer(Scorer):
    name = "simulation"

    def __init__(self, activating: int = 10, silent: int = 5) -> None:
        self.activating = activating
        self.silent = silent

    def plan(self, label: str, heldout: HeldOutData, rng: random.Random) -> Plan | None:
        windows = [Window.of(e) for e in heldout.activating[: self.activating]]
        windows += [Window.of(e) for e in heldout.non_activating[: self.silent]]
        windows = [w for w in windows if w.tokens]
        if not any(w.fires for w in windows):
            return None
        rng.shuffle(windows)
        groups = chunks(windows, WINDOWS_PER_REQUEST)
        asks = [_ask(label, list(group)) for group in groups]

        def finish(asked: Sequence[Asked[Any]]) -> Verdict:
            answered: list[tuple[list[float], list[float]]] = []
            errors = 0
            for group, answer in zip(groups, asked, strict=True):
                if answer.answer is None:
                    errors += len(group)
                    continue
                answered += [(w.ci, [float(a) for a in said])
                             for w, said in zip(group, answer.answer, strict=True)]  # fmt: skip
            estimate = window_bootstrap(answered, seed=rng.randrange(2**32))
            tokens = sum(len(ci) for ci, _ in answered)
            return Verdict(estimate, errors, {"tokens": float(tokens)})

        return Plan(asks, finish)


def _ask(label: str, windows: list[Window]) -> Ask[list[list[int]]]:
    user = (
        f"The interpretation:\n<data>\n{untrusted.clean(label)}\n</data>\n\n{INSTRUCTION}\n\n"
        f"{numbered(windows, per_token=True)}\n\n"
        'Answer with a JSON object {"windows": [[...], ...]}: one list per window, in order, '
        "with one integer per token."
    )

    def offline(terms: LabelTerms) -> list[list[int]]:
        return [[MAX_ACTIVATION if terms.matches(t) else 0 for t in w.tokens] for w in windows]

    return Ask(Request(SCORERS_SYSTEM, user, SCHEMA), _parser(windows), offline)


def _parser(windows: list[Window]) -> Callable[[str], list[list[int]]]:
    decoder = msgspec.json.Decoder(Activations)
    lengths = [len(w.tokens) for w in windows]

    def parse(text: str) -> list[list[int]]:
        try:
            said = decoder.decode(text.strip()).windows
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise InvalidAnswer(f"answer is not the activations JSON: {e}") from None
        if [len(s) for s in said] != lengths:
            raise InvalidAnswer(f"expected {lengths} activations per window, got a different shape")
        if any(not 0 <= a <= MAX_ACTIVATION for s in said for a in s):
            raise InvalidAnswer(f"activations must lie in 0..{MAX_ACTIVATION}")
        return said

    return parse


def window_bootstrap(pairs: list[tuple[list[float], list[float]]], seed: int) -> Estimate:
    """Pearson's r over all tokens, with a percentile bootstrap over whole windows.

    Each window is reduced to its sums (n, Σx, Σy, Σx², Σy², Σxy) once, so a resample costs a
    sum over windows, not over tokens."""
    n = len(pairs)
    point = correlation([x for ci, _ in pairs for x in ci], [y for _, ys in pairs for y in ys])
    if point.value is None or n < 2:
        return Estimate(point.value, None, None, n)
    sums = [_sums(xs, ys) for xs, ys in pairs]
    rng = random.Random(seed)
    draws = []
    windows = range(n)
    for _ in range(BOOTSTRAP_SAMPLES):
        drawn = (sums[i] for i in rng.choices(windows, k=n))
        r = _r_from_sums([sum(column) for column in zip(*drawn, strict=True)])
        if r is not None:
            draws.append(r)
    if len(draws) < BOOTSTRAP_SAMPLES // 2:
        return Estimate(point.value, None, None, n)
    draws.sort()
    low = draws[int(0.025 * (len(draws) - 1))]
    high = draws[math.ceil(0.975 * (len(draws) - 1))]
    return Estimate(point.value, min(low, point.value), max(high, point.value), n)


def _sums(xs: list[float], ys: list[float]) -> tuple[float, ...]:
    return (
        float(len(xs)),
        sum(xs),
        sum(ys),
        sum(x * x for x in xs),
        sum(y * y for y in ys),
        sum(x * y for x, y in zip(xs, ys, strict=True)),
    )


def _r_from_sums(s: list[float]) -> float | None:
    n, sx, sy, sxx, syy, sxy = s
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    if vx <= 0 or vy <= 0:
        return None
    return max(-1.0, min(1.0, (n * sxy - sx * sy) / math.sqrt(vx * vy)))
