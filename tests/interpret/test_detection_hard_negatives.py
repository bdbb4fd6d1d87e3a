"""Detection with hard negatives: windows where a co-firing partner fires and the component does
not. The headline stays balanced accuracy over all negatives; `hard_specificity` and
`random_specificity` say whether a label tells the component from its partners."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from autointerp.interpret.labeller import ModelLabeller
from autointerp.interpret.llm.retry import RetryPolicy
from autointerp.interpret.scoring.asking import Answerer, ModelAnswerer, OfflineAnswerer
from autointerp.interpret.scoring.base import score_component
from autointerp.interpret.scoring.detection import DetectionScorer
from autointerp.schemas import ActivationExample, HeldOutData, ScoreRecord
from tests.interpret.fake_api import FakeMessagesServer, Fault
from tests.interpret.labellers import claude_labeller

MARK = "dragon"
PARTNER = "wyvern"
"""The token the partner component fires on: at the centre of every hard negative."""
FILLER = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "far", "away", "home"]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-hard-negatives-test-7c2")


def held(
    key: str, seed: int, activating: int = 24, silent: int = 24, hard: int = 12
) -> HeldOutData:
    rng = random.Random(seed)
    w = 5

    def window(centre: str | None, ci_centre: float = 0.0) -> ActivationExample:
        tokens = [" " + rng.choice(FILLER) for _ in range(2 * w + 1)]
        ci = [0.0] * (2 * w + 1)
        if centre is not None:
            tokens[w], ci[w] = " " + centre, ci_centre
        return ActivationExample(tokens, ci, w, ci[w], stream_pos=rng.randrange(10**6))

    return HeldOutData(
        key,
        [window(MARK, 1.0) for _ in range(activating)],
        [window(None) for _ in range(silent)],
        hard_non_activating=[window(PARTNER) for _ in range(hard)],
        hard_partners=["layers.0.mlp:99"] * hard,
    )


def oracle(body: dict[str, Any]) -> str:
    """Says yes exactly to the windows that hold the firing token."""
    text = body["messages"][0]["content"]
    lines = [line for line in text.splitlines() if re.match(r"^\d+\. ", line)]
    return json.dumps({"chosen": [i for i, line in enumerate(lines, 1) if MARK in line]})


def answerer(srv: FakeMessagesServer, **kwargs: Any) -> ModelAnswerer:
    labeller: ModelLabeller = claude_labeller(srv.base_url, seed=0, **kwargs)
    return ModelAnswerer(labeller.client)


async def detect(ans: Answerer, label: str, h: HeldOutData) -> ScoreRecord:
    return await score_component(DetectionScorer(), ans, label, h)


async def test_an_oracle_rejects_every_hard_negative() -> None:
    with FakeMessagesServer(answer=oracle) as srv:
        ans = answerer(srv)
        records = [await detect(ans, f'fires on " {MARK}"', held(f"m:{i}", i)) for i in range(2)]
        await ans.aclose()
        requests = len(srv.requests)
    for r in records:
        m = r.metrics
        assert r.score == 1.0 and r.n == 50 and r.n_errors == 0  # 20 + 20 random + 10 hard
        assert m["hard_negatives"] == 10 and m["random_negatives"] == 20 and m["negatives"] == 30
        assert m["hard_specificity"] == 1.0 and m["random_specificity"] == 1.0
        assert m["hard_specificity_low"] is not None and 0.6 < m["hard_specificity_low"] < 1.0
        assert m["hard_specificity_high"] == 1.0
    # The hard windows are shown among the others: 50 windows, 10 per request.
    assert requests == 2 * 5
    texts = [r.body["messages"][0]["content"] for r in srv.requests]
    assert sum(t.count(PARTNER) for t in texts) == 2 * 10


async def test_a_label_of_the_whole_family_fails_only_the_hard_negatives() -> None:
    """The offline simulator says yes where a label's word appears: a label naming the
    partner's token too passes every random negative and fails every hard one."""
    h = held("m:0", 1)
    precise = await detect(OfflineAnswerer(), f'fires on " {MARK}"', h)
    family = await detect(OfflineAnswerer(), f'fires on " {MARK}" and " {PARTNER}"', h)
    assert precise.score == 1.0 and precise.metrics["hard_specificity"] == 1.0
    assert family.metrics["random_specificity"] == 1.0
    assert family.metrics["hard_specificity"] == 0.0
    assert family.metrics["hard_specificity_high"] is not None
    assert family.metrics["hard_specificity_high"] < 0.35  # Wilson, 0 of 10
    assert family.score == pytest.approx((1.0 + 20 / 30) / 2)  # over all 30 negatives


async def test_held_out_data_without_hard_negatives_is_scored_as_before() -> None:
    old = held("m:1", 2, hard=0)
    old_line = HeldOutData(old.component_key, old.activating, old.non_activating)
    r = await detect(OfflineAnswerer(), f'fires on " {MARK}"', old_line)
    assert r.score == 1.0 and r.n == 40
    assert r.metrics["hard_negatives"] == 0 and r.metrics["hard_specificity"] is None
    assert r.metrics["random_negatives"] == 20 and r.metrics["random_specificity"] == 1.0


async def test_hard_negatives_alone_are_enough_negatives() -> None:
    only_hard = held("m:2", 3, silent=0)
    r = await detect(OfflineAnswerer(), f'fires on " {MARK}"', only_hard)
    assert r.n == 30 and r.metrics["random_negatives"] == 0
    assert r.metrics["random_specificity"] is None and r.metrics["hard_specificity"] == 1.0
    unscored = await detect(OfflineAnswerer(), MARK, held("m:3", 4, silent=0, hard=0))
    assert unscored.score is None and unscored.n == 0


async def test_a_failed_request_drops_its_trials_from_every_rate() -> None:
    few = RetryPolicy(max_attempts=1, max_content_attempts=1, base_delay_s=0.001)
    with FakeMessagesServer(answer=oracle, faults=[Fault.SERVER_ERROR]) as srv:
        ans = answerer(srv, retry=few, max_concurrent=1)
        r = await detect(ans, f'" {MARK}"', held("m:4", 5))
        await ans.aclose()
    m = r.metrics
    assert r.n_errors == 10 and r.n == 40 and r.score == 1.0
    assert m["hard_negatives"] + m["random_negatives"] == m["negatives"]
    assert m["positives"] + m["negatives"] == 40
