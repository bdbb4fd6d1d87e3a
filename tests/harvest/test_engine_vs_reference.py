"""The fast engine equals the slow reference: counts exactly, floats closely, same top-k lists."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autointerp.errors import UserError
from autointerp.harvest import Harvester, finalize
from autointerp.harvest.harvester import INT32_LIMIT
from tests.harvest.helpers import (
    assert_components_equal,
    decode,
    fast,
    harvest,
    make_stream,
    reference,
)
from tests.harvest.reference import ReferenceAccumulator

layouts = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(
    lambda sizes: [(f"layers.{i}.mlp", n) for i, n in enumerate(sizes)]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layout=layouts,
    vocab=st.integers(1, 9),
    n_batches=st.integers(1, 3),
    batch=st.integers(1, 3),
    seq=st.integers(1, 7),
    threshold=st.sampled_from([0.0, 0.5]),
    k=st.integers(0, 4),
    window=st.integers(0, 3),
    top_k=st.integers(1, 6),
    block=st.sampled_from([None, 1, 3, 5]),
    seed=st.integers(0, 2**16),
    fire_rate=st.sampled_from([0.05, 0.3, 0.9]),
)
def test_engine_matches_reference(
    layout, vocab, n_batches, batch, seq, threshold, k, window, top_k, block, seed, fire_rate
):
    stream = make_stream(
        seed, sum(n for _, n in layout), vocab, n_batches, batch, seq, threshold, fire_rate
    )
    args = (stream, layout, vocab, threshold, k, window, seed, top_k, block)
    assert_components_equal(fast(*args), reference(*args))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("block", [None, 3])
@pytest.mark.parametrize("seed", range(6))
def test_engine_on_cuda_matches_reference(seed: int, block: int | None) -> None:
    """The same engine on a GPU: cuBLASLt int8 products, cuSPARSE sums, CUDA generator keys (the
    reference draws its keys on the CPU, so examples are compared as uniform samples elsewhere)."""
    layout = [("layers.0.mlp", 5), ("layers.1.mlp", 3)]
    stream = make_stream(seed, 8, 70, 3, 2, 9, 0.0, fire_rate=0.3)
    got = fast(stream, layout, 70, 0.0, 0, 2, seed, 5, block, device="cuda")
    assert_components_equal(got, reference(stream, layout, 70, 0.0, 0, 2, seed, 5, block))


def test_single_token_batch_and_dead_components():
    layout = [("a", 3), ("b", 1)]
    ci = torch.tensor([[[0.7, 0.0, 0.5, 1.0]]])
    probs = torch.tensor([[[0.25, 0.75]]])
    stream = [(torch.tensor([[1]]), ci, probs)]
    got = fast(stream, layout, 2, 0.5, 2, 2, 0, 5)
    assert_components_equal(got, reference(stream, layout, 2, 0.5, 2, 2, 0, 5))
    assert [c.firing_count for c in got] == [1, 0, 0, 1]
    dead = got[1]
    assert dead.activation_examples == [] and dead.input_token_stats.top_pmi == []
    example = got[0].activation_examples[0]
    assert example.tokens == ["<pad>", "<pad>", "t1", "<pad>", "<pad>"]
    assert example.ci_values == [0.0, 0.0, 0.699999988079071, 0.0, 0.0]
    assert example.active_pos == 2
    assert got[0].correlations.precision == [("b:0", 1.0)]


@pytest.mark.parametrize("bad", [-1, 2])
def test_a_token_id_outside_the_vocabulary_is_refused_with_the_range(bad: int) -> None:
    h = Harvester([("a", 2)], 2, 0.5, 1, 1, "cpu", 0)
    ci, probs = torch.ones(1, 2, 2), torch.full((1, 2, 2), 0.5)
    with pytest.raises(
        UserError, match=rf"must lie in \[0, 2\); got \[{min(bad, 0)}, {max(bad, 1)}\]"
    ):
        h.update(torch.tensor([[bad, 0 if bad > 0 else 1]]), ci, probs)
    assert h.n_tokens == 0  # nothing was counted


def _many_cofirings() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    n = 700
    tokens = torch.randint(0, 5, (1, n), generator=g)
    ci = torch.zeros(1, n, 3)
    ci[0, :, 0] = 1.0
    ci[0, :, 1] = 0.25
    ci[0, ::2, 2] = 3e-8
    probs = torch.softmax(torch.randn(1, n, 5, generator=g), -1)
    return tokens, ci, probs


def test_more_than_256_cofirings_in_one_batch_are_exact():
    tokens, ci, probs = _many_cofirings()
    layout = [("m", 3)]
    stream = [(tokens, ci, probs)] * 2
    got = fast(stream, layout, 5, 0.0, 3, 1, 0, 5)
    assert_components_equal(got, reference(stream, layout, 5, 0.0, 3, 1, 0, 5))
    assert got[0].firing_count == 1400
    assert dict(got[0].correlations.recall) == {"m:1": 1.0, "m:2": 0.5}


def test_counts_exact_inside_caller_autocast():
    tokens, ci, probs = _many_cofirings()
    h = Harvester([("m", 3)], 5, 0.0, 2, 1, "cpu", 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        harvest([(tokens, ci, probs)] * 3, h)
    assert h.cooc_rows(0, 3).tolist() == [
        [2100, 2100, 1050],
        [2100, 2100, 1050],
        [1050, 1050, 1050],
    ]
    assert h.input_co.dtype == torch.int32 and h.output_tiles.dtype == torch.float64
    expected_mass = probs[0].to(torch.float64).sum(0) * 3
    torch.testing.assert_close(h.output_rows(0, 1)[0], expected_mass, rtol=1e-12, atol=1e-12)
    assert h.ci_sum[2].item() == 350 * 3 * float(torch.tensor(3e-8))


def test_counts_promote_to_int64_past_2_31_tokens_and_stay_exact():
    layout = [("a", 5), ("b", 4)]
    stream = make_stream(8, 9, 6, 3, 2, 7, 0.0, fire_rate=0.6)
    h = Harvester(layout, 6, 0.0, 2, 1, "cpu", 0)
    h.n_tokens = INT32_LIMIT - 20  # the second batch crosses 2^31 tokens
    h.chunk_entries = 6  # several co-firing chunks, so rows spread over slabs
    ref = ReferenceAccumulator(9, 6, 0.0)
    for i, batch in enumerate(stream):
        h.update(*batch)
        ref.update(*batch)
        assert h.cooc.dtype == (torch.int32 if i == 0 else torch.int64)
    assert h.input_co.dtype == torch.int64
    assert torch.equal(h.input_co.double(), ref.input_co)
    assert torch.equal(h.cooc_rows(0, 9).double(), ref.cooc)
    torch.testing.assert_close(h.output_rows(0, 9), ref.output_co, rtol=1e-12, atol=1e-12)
    loaded = Harvester.from_state_dict(h.state_dict(), "cpu")  # int64 tables into int32 ones
    assert loaded.cooc.dtype == torch.int64 and torch.equal(loaded.cooc, h.cooc)
    assert torch.equal(loaded.input_co, h.input_co)


def test_finalize_start_yields_the_tail():
    layout = [("a", 4), ("b", 3)]
    stream = make_stream(5, 7, 6, 2, 2, 5, 0.0)
    h = harvest(stream, Harvester(layout, 6, 0.0, 2, 1, "cpu", 1))
    whole = list(finalize(h, decode, top_k=3, chunk_size=2))
    for start in range(8):
        assert list(finalize(h, decode, top_k=3, start=start, chunk_size=3)) == whole[start:]


def test_decode_called_once_per_token():
    calls: list[int] = []

    def counting(token_id: int) -> str:
        calls.append(token_id)
        return str(token_id)

    stream = make_stream(2, 4, 5, 2, 2, 6, 0.0, fire_rate=0.6)
    h = harvest(stream, Harvester([("a", 4)], 5, 0.0, 3, 2, "cpu", 0))
    list(finalize(h, counting, top_k=5, chunk_size=1))
    assert len(calls) == len(set(calls)) > 0


def test_inference_mode_inside_or_outside_and_no_grad_leak():
    stream = make_stream(4, 3, 4, 2, 1, 5, 0.0)
    with torch.inference_mode():
        made_inside = Harvester([("m", 3)], 4, 0.0, 2, 1, "cpu", 0)
    made_outside = Harvester([("m", 3)], 4, 0.0, 2, 1, "cpu", 0)
    with torch.inference_mode():
        harvest(stream[:1], made_outside)
    harvest(stream[:1], made_inside)
    harvest(stream[1:], made_outside)
    with torch.inference_mode():
        harvest(stream[1:], made_inside)
    records = finalize(made_inside, decode)
    next(records)
    assert torch.is_grad_enabled(), "finalize must not leave grad mode off between records"
    assert list(records) == list(finalize(made_outside, decode))[1:]


def test_pmi_from_counts_is_the_correctly_rounded_log_bit_for_bit() -> None:
    """PMI over integer counts (input tokens, component pairs) is `log(co·N / (f·T))` with the
    division and the log correctly rounded: the same counts always give the same bits (torch's
    CPU log did not, on a loaded machine). Big enough for torch's vector and parallel paths."""
    layout = [("layers.0.mlp", 48), ("layers.1.mlp", 40)]
    stream = make_stream(7, 88, 400, 2, 4, 64, 0.0, fire_rate=0.3)
    args = (stream, layout, 400, 0.0, 0, 0, 7, 10, None)
    got, want = fast(*args), reference(*args)
    for g, w in zip(got, want, strict=True):
        assert g.input_token_stats.top_pmi == w.input_token_stats.top_pmi, g.component_key
        assert g.correlations.pmi == w.correlations.pmi, g.component_key
        assert g.correlations.bottom_pmi == w.correlations.bottom_pmi, g.component_key
    assert sum(len(g.input_token_stats.top_pmi) for g in got) > 500
