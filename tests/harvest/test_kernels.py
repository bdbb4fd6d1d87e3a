"""The counting kernels equal plain integer arithmetic, on both the int8 and float32 paths."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.harvest.kernels import (
    column_tiles,
    csr_rows,
    mask_product,
    mask_product_float,
    sparse_row_sums,
)


@settings(max_examples=40, deadline=None)
@given(q=st.integers(1, 20), r=st.integers(1, 700), n=st.integers(1, 20), seed=st.integers(0, 99))
def test_mask_products_are_exact(q: int, r: int, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(r, q, generator=g) < 0.9).to(torch.int8)
    b = (torch.rand(r, n, generator=g) < 0.9).to(torch.int8)
    want = a.t().to(torch.int64) @ b.to(torch.int64)
    assert torch.equal(mask_product(a.t(), b).to(torch.int64), want)
    assert torch.equal(mask_product_float(a.t(), b).to(torch.int64), want)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 8),
    cols=st.integers(1, 50),
    width=st.integers(1, 9),
    density=st.sampled_from([0.0, 0.02, 0.3, 0.95]),
    seed=st.integers(0, 99),
)
def test_sparse_row_sums_match_dense(rows, cols, width, density, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(rows, cols, generator=g) < density
    dense = torch.rand(cols, 11, generator=g, dtype=torch.float64)
    r, c = torch.nonzero(mask).unbind(1)
    got = list(
        sparse_row_sums(csr_rows(r, rows), c, cols, column_tiles(dense, width, torch.float64))
    )
    assert [t.shape[1] for t in got] == [t.shape[1] for t in dense.split(width, dim=1)]
    want = mask.to(torch.float64) @ dense
    torch.testing.assert_close(torch.cat(got, dim=1), want, rtol=1e-13, atol=1e-13)
