"""Exact counting primitives on the harvest device.

Co-firing counts are matmuls of 0/1 masks. We run them as int8 x int8 -> int32 (`torch._int_mm`):
every product and partial sum is an integer, so the result is exact by construction whatever the
device's float settings (TF32, reduced-precision reductions, autocast) are. Probability mass is
summed in float64 by a sparse (CSR) matmul over the firing positions, or by a dense GEMM for the
components that fire at a large fraction of the positions (where dense is faster).
"""

from __future__ import annotations

import logging
import warnings

import torch

log = logging.getLogger(__name__)


def _canonical(x: torch.Tensor) -> torch.Tensor:
    """A row-major copy with textbook strides.

    `torch._int_mm` reads strides literally, and `.contiguous()` keeps any stride on a size-1
    dimension (a transposed [1, R] view stays (1, 1)): with it, torch 2.13's CPU kernel returns
    garbage. Found by tests/harvest/test_kernels.py.
    """
    if x.stride() == (x.shape[1], 1):
        return x
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    out.copy_(x)
    return out


def _pad_to(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    if x.shape == (rows, cols):
        return _canonical(x)
    out = x.new_zeros(rows, cols)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


_INT_MM_FAILED: set[str] = set()
"""Device types whose int8 GEMM raised once: they use the float32 path from then on."""


def mask_product_float(a_t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a_t @ b` of 0/1 masks through float32: exact while the inner size R < 2^24.

    Every product is 0 or 1 and every partial sum an integer <= R, which float32 (and TF32, whose
    inputs 0 and 1 are exact) represents exactly.
    """
    if a_t.shape[1] >= 2**24:
        raise ValueError("float32 mask products are exact only for fewer than 2^24 positions")
    return (a_t.to(torch.float32) @ b.to(torch.float32)).to(torch.int32)


def mask_product(a_t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a_t @ b` for int8 0/1 masks `a_t` [Q, R] and `b` [R, N]: exact int32 counts [Q, N].

    CUDA's int8 GEMM wants more than 16 rows and inner/outer sizes that are multiples of 8: pad with
    zeros (which add nothing) and crop. Where the int8 GEMM is unavailable, use float32.
    """
    kind = a_t.device.type
    if kind in _INT_MM_FAILED:
        return mask_product_float(a_t, b)
    try:
        if kind != "cuda":
            return torch._int_mm(_canonical(a_t), _canonical(b))
        q, r = a_t.shape
        n = b.shape[1]
        qp, rp, np_ = max(17, q), max(16, _round_up(r, 8)), max(8, _round_up(n, 8))
        return torch._int_mm(_pad_to(a_t, qp, rp), _pad_to(b, rp, np_))[:q, :n]
    except RuntimeError as e:
        log.warning("int8 GEMM unavailable on %s (%s): counting with float32 matmuls", kind, e)
        _INT_MM_FAILED.add(kind)
        return mask_product_float(a_t, b)


def csr_rows(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """CSR row pointer for entries whose (sorted) row ids are `rows`."""
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    return crow


def sparse_row_sums(
    crow: torch.Tensor,
    cols: torch.Tensor,
    n_cols: int,
    dense: torch.Tensor,
    dense_fraction: float = 1.0,
) -> torch.Tensor:
    """`S @ dense` where S is the 0/1 CSR matrix (`crow`, `cols`) of shape [len(crow)-1, n_cols].

    Row i of the result is the sum, in `dense`'s dtype, of the rows of `dense` listed in row i of
    S. Rows of S with more than `dense_fraction · n_cols` entries go through a dense GEMM.
    """
    n_rows = crow.numel() - 1
    if cols.numel() == 0:
        return dense.new_zeros(n_rows, dense.shape[1])
    counts = crow[1:] - crow[:-1]
    heavy = counts > dense_fraction * n_cols
    if not bool(heavy.any()):
        return _csr_mm(crow, cols, n_cols, dense)
    row_of = torch.repeat_interleave(torch.arange(n_rows, device=crow.device), counts)
    heavy_rows = torch.nonzero(heavy).squeeze(1)
    on_heavy = heavy[row_of]
    rank = torch.full((n_rows,), -1, dtype=torch.int64, device=crow.device)
    rank[heavy_rows] = torch.arange(heavy_rows.numel(), device=crow.device)
    s_dense = torch.zeros(heavy_rows.numel(), n_cols, dtype=dense.dtype, device=dense.device)
    s_dense[rank[row_of[on_heavy]], cols[on_heavy]] = 1.0
    light_crow = torch.zeros_like(crow)
    light_crow[1:] = torch.where(heavy, 0, counts).cumsum(0)
    out = _csr_mm(light_crow, cols[~on_heavy], n_cols, dense)  # heavy rows of it are zero
    out[heavy_rows] = s_dense @ dense
    return out


def _csr_mm(
    crow: torch.Tensor, cols: torch.Tensor, n_cols: int, dense: torch.Tensor
) -> torch.Tensor:
    n_rows = crow.numel() - 1
    if cols.numel() == 0:
        return dense.new_zeros(n_rows, dense.shape[1])
    values = torch.ones(cols.numel(), dtype=dense.dtype, device=dense.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        s = torch.sparse_csr_tensor(
            crow, cols, values, size=(n_rows, n_cols), check_invariants=False
        )
    return torch.sparse.mm(s, dense)
