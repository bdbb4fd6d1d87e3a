"""`topk_rows` equals a plain Python sort: best keys first, ties by column, floor excluded."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.harvest.topk import topk_rows


def python_topk(row: list[float], k: int, floor: float, largest: bool) -> list[tuple[int, float]]:
    sign = -1.0 if largest else 1.0
    present = [(j, x) for j, x in enumerate(row) if (x > floor if largest else x < floor)]
    return sorted(present, key=lambda item: (sign * item[1], item[0]))[:k]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 40),
    k=st.integers(0, 12),
    levels=st.integers(1, 6),
    largest=st.booleans(),
    integer=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_topk_rows_matches_python_sort(rows, cols, k, levels, largest, integer, seed) -> None:
    """Few distinct levels make ties straddle the cut in most rows."""
    g = torch.Generator().manual_seed(seed)
    key = torch.randint(0, levels, (rows, cols), generator=g)
    if not integer:
        key = key.to(torch.float64) / 3.0
        key[torch.rand(rows, cols, generator=g) < 0.1] = math.inf if not largest else -math.inf
    floor = (0.0 if largest else math.inf) if not integer else (0 if largest else levels - 1)
    got_cols, got_vals, n_present = topk_rows(key, k, floor=floor, largest=largest)
    assert got_cols.shape == (rows, min(k, cols))
    for r in range(rows):
        want = python_topk(key[r].tolist(), k, floor, largest)
        m = int(n_present[r])
        assert list(zip(got_cols[r, :m].tolist(), got_vals[r, :m].tolist(), strict=True)) == want


def test_topk_rows_wide_rows_with_many_ties() -> None:
    """Rows as wide as a co-occurrence chunk, where most rows straddle (the all-rows re-pick)."""
    g = torch.Generator().manual_seed(0)
    key = torch.randint(0, 3, (7, 5000), generator=g, dtype=torch.int32)
    key[0] = 0  # a row with no candidates
    for largest, floor in ((True, 0), (False, 2)):
        cols, vals, n_present = topk_rows(key, 20, floor=floor, largest=largest)
        for r in range(7):
            want = python_topk(key[r].tolist(), 20, floor, largest)
            m = int(n_present[r])
            assert list(zip(cols[r, :m].tolist(), vals[r, :m].tolist(), strict=True)) == want
