"""Activation examples are an exactly uniform sample of all firings, also after a merge."""

from __future__ import annotations

import pytest
import torch

from autointerp.errors import UserError
from autointerp.harvest import Harvester, finalize
from autointerp.harvest.examples import EMPTY_KEY
from tests.harvest.helpers import assert_components_equal, decode, harvest, make_stream
from tests.harvest.uniformity import first_k, is_uniform, per_batch_capped, pick_counts

K = 3
RUNS = 300
# Firing positions of component 0, per batch: one busy batch, then quiet ones.
BATCHES = [list(range(0, 24)), [24, 25], [26, 27], [28, 29], [30, 31], [32, 33]]
SEQ = 34


def _stream(batches: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Each batch holds one sequence; the token at a firing encodes its firing number."""
    out = []
    for firing_ids in batches:
        tokens = torch.zeros(1, SEQ, dtype=torch.int64)
        ci = torch.zeros(1, SEQ, 2)
        for slot, fid in enumerate(firing_ids):
            tokens[0, slot] = fid
            ci[0, slot, 0] = 1.0 if fid % 5 else 0.3
        ci[0, :, 1] = 0.5
        out.append((tokens, ci, torch.full((1, SEQ, SEQ), 1.0 / SEQ)))
    return out


def _picked(h: Harvester) -> list[int]:
    used = h.examples.keys[0] != EMPTY_KEY
    return h.examples.tokens[0, used, 0].tolist()


def _engine(batches: list[list[int]], k: int, seed: int) -> list[int]:
    h = Harvester([("m", 2)], SEQ, 0.0, k, 0, "cpu", seed)
    return _picked(harvest(_stream(batches), h))


def _merged(batches: list[list[int]], k: int, seed: int) -> list[int]:
    stream = _stream(batches)
    first = harvest(stream[:3], Harvester([("m", 2)], SEQ, 0.0, k, 0, "cpu", 2 * seed))
    second = harvest(stream[3:], Harvester([("m", 2)], SEQ, 0.0, k, 0, "cpu", 2 * seed + 1))
    first.merge(second)
    return _picked(first)


def test_engine_sample_is_uniform() -> None:
    assert is_uniform(pick_counts(_engine, BATCHES, K, RUNS))


def test_merged_sample_is_uniform() -> None:
    assert is_uniform(pick_counts(_merged, BATCHES, K, RUNS))


@pytest.mark.parametrize("biased", [first_k, per_batch_capped])
def test_statistic_rejects_biased_samplers(biased) -> None:
    assert not is_uniform(pick_counts(biased, BATCHES, K, RUNS))


def test_merge_of_halves_equals_whole_counts() -> None:
    layout = [("a", 4), ("b", 2)]
    stream = make_stream(8, 6, 5, 4, 2, 7, 0.0, fire_rate=0.5)
    whole = harvest(stream, Harvester(layout, 5, 0.0, 0, 1, "cpu", 0))
    first = harvest(stream[:2], Harvester(layout, 5, 0.0, 0, 1, "cpu", 1))
    first.merge(harvest(stream[2:], Harvester(layout, 5, 0.0, 0, 1, "cpu", 2)))
    for name in ("firing_count", "token_count", "input_co", "cooc"):
        assert torch.equal(getattr(first, name), getattr(whole, name)), name
    assert (first.n_tokens, first.n_batches) == (whole.n_tokens, whole.n_batches)
    assert_components_equal(list(finalize(first, decode)), list(finalize(whole, decode)))


def test_merge_refuses_same_seed_and_other_layouts() -> None:
    stream = make_stream(1, 2, 3, 2, 1, 4, 0.0)
    a = harvest(stream[:1], Harvester([("m", 2)], 3, 0.0, 2, 1, "cpu", 5))
    b = harvest(stream[1:], Harvester([("m", 2)], 3, 0.0, 2, 1, "cpu", 5))
    with pytest.raises(UserError, match="same seed"):
        a.merge(b)
    with pytest.raises(UserError, match="different layouts"):
        a.merge(Harvester([("m", 3)], 3, 0.0, 2, 1, "cpu", 6))
