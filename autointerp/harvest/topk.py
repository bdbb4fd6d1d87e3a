"""Row-wise top-k with deterministic ties (equal scores: lower index first), vectorised.

`torch.topk` picks among equal scores arbitrarily; a full stable sort of every row costs
O(V log V) per component. Instead: find the k-th largest value, keep everything above it, fill
with the lowest-indexed entries equal to it, then order the <= k picks (stable, by score).
"""

from __future__ import annotations

import torch


def topk_rows(score: torch.Tensor, valid: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """Per row, the `k` largest valid scores, ties by column ascending.

    Returns `(columns [R, k'], scores [R, k'], present [R, k'])` with `k' = min(k, n_cols)`,
    best first; `present` is False in the tail of rows with fewer than k valid entries.
    """
    n_rows, n_cols = score.shape
    kk = min(k, n_cols)
    if kk == 0 or n_rows == 0:
        empty = torch.zeros((n_rows, 0), dtype=torch.int64, device=score.device)
        return empty, score.new_zeros((n_rows, 0)), empty.bool()
    s = score.masked_fill(~valid, float("-inf"))
    kth = s.topk(kk, dim=1).values[:, -1:]
    above = s > kth
    tied = (s == kth) & valid
    room = kk - above.sum(1, keepdim=True)
    picked = above | (tied & (tied.cumsum(1) <= room))
    columns = torch.arange(n_cols, device=score.device).expand(n_rows, n_cols)
    cols = torch.where(picked, columns, n_cols).topk(kk, dim=1, largest=False).values
    cols = cols.sort(dim=1).values
    present = cols < n_cols
    cols = cols.clamp(max=n_cols - 1)
    vals = s.gather(1, cols).masked_fill(~present, float("-inf"))
    vals, order = vals.sort(dim=1, descending=True, stable=True)
    return cols.gather(1, order), vals, present.gather(1, order)
