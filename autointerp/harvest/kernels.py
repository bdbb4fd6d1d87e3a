"""Exact counting primitives on the harvest device.

Co-firing counts are matmuls of 0/1 masks. We run them as int8 x int8 -> int32 (`torch._int_mm`):
every product and partial sum is an integer, so the result is exact by construction whatever the
device's float settings (TF32, reduced-precision reductions, autocast) are. Probability mass is
summed by a sparse (CSR) matmul in float64, touching only the firing positions.
"""

from __future__ import annotations

import warnings

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def _pad_to(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    if x.shape == (rows, cols):
        return x.contiguous()
    out = x.new_zeros(rows, cols)
    out[: x.shape[0], : x.shape[1]] = x
    return out


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def mask_product(a_t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a_t @ b` for int8 0/1 masks `a_t` [Q, R] and `b` [R, N]: exact int32 counts [Q, N].

    CUDA's int8 GEMM wants more than 16 rows and inner/outer sizes that are multiples of 8: pad with
    zeros (which add nothing) and crop.
    """
    if a_t.device.type != "cuda":
        return torch._int_mm(a_t, b)
    q, r = a_t.shape
    n = b.shape[1]
    qp, rp, np_ = max(17, q), max(16, _round_up(r, 8)), max(8, _round_up(n, 8))
    out = torch._int_mm(_pad_to(a_t, qp, rp), _pad_to(b, rp, np_))
    return out[:q, :n]


def csr_rows(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """CSR row pointer for entries whose (sorted) row ids are `rows`."""
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    return crow


def sparse_row_sums(
    crow: torch.Tensor, cols: torch.Tensor, n_cols: int, dense: torch.Tensor
) -> torch.Tensor:
    """`S @ dense` where S is the 0/1 CSR matrix (`crow`, `cols`) of shape [len(crow)-1, n_cols].

    Row i of the result is the float64 sum of the rows of `dense` listed in row i of S.
    """
    n_rows = crow.numel() - 1
    if cols.numel() == 0:
        return dense.new_zeros(n_rows, dense.shape[1])
    values = torch.ones(cols.numel(), dtype=dense.dtype, device=dense.device)
    s = torch.sparse_csr_tensor(crow, cols, values, size=(n_rows, n_cols), check_invariants=False)
    return torch.sparse.mm(s, dense)
