"""Exact counting primitives on the harvest device.

Co-firing counts are matmuls of 0/1 masks. We run them as int8 x int8 -> int32 (`torch._int_mm`):
every product and partial sum is an integer, so the result is exact by construction whatever the
device's float settings (TF32, reduced-precision reductions, autocast) are. Probability mass is
summed in float64 by a sparse (CSR) matmul over the firing positions, tiled over the vocabulary.
"""

from __future__ import annotations

import logging
import warnings

import torch

log = logging.getLogger(__name__)


def _canonical(x: torch.Tensor) -> torch.Tensor:
    """`x` if it is row-major with a leading dimension >= its width (a column slice of a row-major
    matrix is), else a row-major copy.

    `torch._int_mm` reads strides literally, and `.contiguous()` keeps any stride on a size-1
    dimension (a transposed [1, R] view stays (1, 1)): with it, torch 2.13's CPU kernel returns
    garbage. Found by tests/harvest/test_kernels.py.
    """
    if x.stride(1) == 1 and x.stride(0) >= max(1, x.shape[1]):
        return x
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    out.copy_(x)
    return out


def _pad_to(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A zero-padded [rows, cols] copy of `x`, or `x` itself if it already is a textbook
    row-major [rows, cols] (cuBLASLt's int8 GEMM is only ever given those)."""
    if x.shape == (rows, cols) and x.stride() == (cols, 1):
        return x
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


def padded_int_mm(a_t: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`torch._int_mm(a_t, b)` in the shapes cuBLASLt's int8 GEMM takes: more than 16 rows and
    inner and outer sizes that are multiples of 8, zero-padded (zeros add nothing) and cropped.
    Used on CUDA; the CPU's kernel takes any shape, so the tests run this on the CPU too."""
    q, r = a_t.shape
    n = b.shape[1]
    qp, rp, np_ = max(17, q), max(16, _round_up(r, 8)), max(8, _round_up(n, 8))
    return torch._int_mm(_pad_to(a_t, qp, rp), _pad_to(b, rp, np_))[:q, :n]


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
        return padded_int_mm(a_t, b)
    except RuntimeError as e:
        log.warning("int8 GEMM unavailable on %s (%s): counting with float32 matmuls", kind, e)
        _INT_MM_FAILED.add(kind)
        return mask_product_float(a_t, b)


def csr_rows(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """CSR row pointer for entries whose (sorted) row ids are `rows`: entry r is how many ids
    are below r. A binary search per row, so no host round trip (a CUDA `bincount` reads the
    largest id back to size its output)."""
    bounds = torch.arange(n_rows + 1, dtype=rows.dtype, device=rows.device)
    return torch.searchsorted(rows, bounds)


def column_tiles(dense: torch.Tensor, width: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """`dense` split into contiguous column tiles of `width` (the last may be narrower), each
    converted to `dtype` in the same copy."""
    return [t.to(dtype, memory_format=torch.contiguous_format) for t in dense.split(width, dim=1)]


def add_sparse_row_sums(
    out: list[torch.Tensor],
    crow: torch.Tensor,
    cols: torch.Tensor,
    n_cols: int,
    tiles: list[torch.Tensor],
) -> None:
    """`out[i] += S @ tiles[i]` for each column tile of a dense matrix, where S is the 0/1 CSR
    matrix (`crow`, `cols`) of shape [len(crow)-1, n_cols] and `out[i]` is [len(crow)-1, width].

    Row r of a product is the sum, in the tile's dtype, of the tile's rows listed in row r of S.
    Tiles keep the rows that S gathers in cache: a whole float64 row of a 4019-token vocabulary is
    32 KB, and gathering those from memory made the untiled product 3.5x slower on a CPU. The
    in-place `addmm_` hands `out` to the sparse BLAS as its accumulator: no temporary, no scatter.
    """
    if cols.numel() == 0:
        return
    values = torch.ones(cols.numel(), dtype=tiles[0].dtype, device=tiles[0].device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        s = torch.sparse_csr_tensor(
            crow, cols, values, size=(crow.numel() - 1, n_cols), check_invariants=False
        )
    for target, tile in zip(out, tiles, strict=True):
        target.addmm_(s, tile)


def sum_rows_float64(x: torch.Tensor, max_entries: int) -> torch.Tensor:
    """`x.sum(0)` in float64, converting at most `max_entries` entries at a time (a whole-tensor
    float64 copy of a [positions, components] batch is hundreds of MB of fresh memory)."""
    rows = max(1, max_entries // max(1, x.shape[1]))
    out = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for part in x.split(rows):
        out += part.sum(0, dtype=torch.float64)
    return out
