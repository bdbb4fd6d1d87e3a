"""The memory formula matches real allocations; check_fits refuses early; summary counts."""

from __future__ import annotations

import pytest
import torch

from autointerp.errors import UserError
from autointerp.harvest import Harvester, accumulator_bytes, check_fits, summarize
from tests.harvest.helpers import harvest, make_stream

LAYOUT = [("a", 6), ("b", 4)]


def test_accumulator_bytes_match_allocated_tensors() -> None:
    h = Harvester(LAYOUT, 13, 0.0, 5, 3, "cpu", 0)
    tensors = [
        h.firing_count, h.ci_sum, h.token_count, h.output_mass, h.input_co, h.output_tiles, h.cooc,
        *h.examples.tensors().values(),
    ]  # fmt: skip
    allocated = sum(t.numel() * t.element_size() for t in tensors)
    assert sum(accumulator_bytes(LAYOUT, 13, 5, 3).values()) == allocated
    assert accumulator_bytes(LAYOUT, 13, 5, 3)["cooccurrence"] == 10 * 10 * 4
    assert accumulator_bytes(LAYOUT, 13, 5, 3, total_tokens=2**32)["cooccurrence"] == 10 * 10 * 8


def test_check_fits_refuses_with_breakdown() -> None:
    big = [(f"layers.{i}.mlp", 4096) for i in range(24)]
    with pytest.raises(UserError, match="cooccurrence") as err:
        check_fits("cpu", big, 50277, 20, 15, 32, 512, available=40 * 2**30)
    assert "GiB" in str(err.value) and "batch-size" in str(err.value)
    breakdown = check_fits("cpu", LAYOUT, 13, 5, 3, 2, 8, available=2**40)
    assert breakdown["cooccurrence"] == 400
    assert check_fits("cpu", LAYOUT, 13, 5, 3, 2, 8)  # this machine has a few MiB to spare


def test_summary_counts_alive_per_module() -> None:
    h = Harvester(LAYOUT, 5, 0.0, 2, 1, "cpu", 0)
    tokens = torch.zeros(1, 4, dtype=torch.int64)
    ci = torch.zeros(1, 4, 10)
    ci[0, :, 0] = 1.0
    ci[0, :2, 7] = 0.1
    probs = torch.full((1, 4, 5), 0.2)
    h.update(tokens, ci, probs)
    s = summarize(h)
    assert (s.n_tokens, s.n_batches, s.n_alive, s.n_dead) == (4, 1, 2, 8)
    assert s.alive_per_module == {"a": 1, "b": 1}
    assert s.components_per_module == {"a": 6, "b": 4}
    assert s.firing_count_quantiles["1.0"] == 4.0 and s.firing_count_quantiles["0.5"] == 0.0
    assert s.firing_count_histogram_edges == [1.0, 2.0, 4.0, 8.0]
    assert s.firing_count_histogram == [0, 1, 1]
    assert s.mean_firings_per_token == 1.5
    assert s.n_components_with_full_examples == 2


def test_summary_of_a_stream_is_consistent() -> None:
    stream = make_stream(3, 10, 6, 2, 2, 5, 0.0)
    s = summarize(harvest(stream, Harvester(LAYOUT, 6, 0.0, 2, 1, "cpu", 0)))
    assert s.n_alive + s.n_dead == 10 and sum(s.firing_count_histogram) == s.n_alive
