"""The counting kernels equal plain integer arithmetic, on both the int8 and float32 paths."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.harvest.kernels import (
    add_sparse_row_sums,
    column_tiles,
    csr_rows,
    mask_product,
    mask_product_float,
    padded_int_mm,
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
    assert torch.equal(padded_int_mm(a.t(), b).to(torch.int64), want)


@settings(max_examples=40, deadline=None)
@given(
    q=st.integers(1, 20),
    r=st.integers(1, 300),
    n=st.integers(1, 20),
    skip=st.integers(0, 9),
    seed=st.integers(0, 99),
)
def test_mask_products_of_row_and_column_slices(q, r, n, skip, seed) -> None:
    """The engine multiplies row slices of one mask by column slices of another (strides with a
    leading dimension wider than the slice), passed to the int8 GEMM without a copy."""
    g = torch.Generator().manual_seed(seed)
    a_t = (torch.rand(q + skip, r, generator=g) < 0.5).to(torch.int8)[skip:]
    b = (torch.rand(r, n + skip, generator=g) < 0.5).to(torch.int8)[:, skip:]
    want = a_t.to(torch.int64) @ b.to(torch.int64)
    assert torch.equal(mask_product(a_t, b).to(torch.int64), want)
    # The CUDA path's padding and cropping, run here on the CPU's kernel.
    assert torch.equal(padded_int_mm(a_t, b).to(torch.int64), want)


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
    start = torch.rand(rows, 11, generator=g, dtype=torch.float64)
    tiles = column_tiles(dense, width, torch.float64)
    assert [t.shape[1] for t in tiles] == [t.shape[1] for t in dense.split(width, dim=1)]
    out = [t.clone() for t in start.split(width, dim=1)]
    r, c = torch.nonzero(mask).unbind(1)
    add_sparse_row_sums(out, csr_rows(r, rows), c, cols, tiles)
    want = start + mask.to(torch.float64) @ dense
    torch.testing.assert_close(torch.cat(out, dim=1), want, rtol=1e-13, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(1, 30), n=st.integers(0, 200), seed=st.integers(0, 99))
def test_csr_rows_count_the_ids_below_each_row(n_rows: int, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, n_rows, (n,), generator=g).sort().values
    want = torch.zeros(n_rows + 1, dtype=torch.int64)
    want[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    assert torch.equal(csr_rows(rows, n_rows), want)
