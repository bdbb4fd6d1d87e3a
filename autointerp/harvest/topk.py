"""Row-wise top-k with deterministic ties (equal scores: lower index first), vectorised.

`torch.topk` picks among equal scores arbitrarily; a full stable sort of every row costs
O(V log V) per component. Instead: take `topk`, and only in rows where more entries equal the
k-th value than fit (a tie straddles the cut) re-pick the lowest-indexed of the tied entries. Then
order the <= k picks by score, ties by index.
"""

from __future__ import annotations

import torch


def _repick(s: torch.Tensor, kth: torch.Tensor, kk: int) -> torch.Tensor:
    """Columns of the top `kk` of rows `s` (ties at `kth` resolved by lowest index), ascending."""
    above = s > kth
    tied = s == kth
    room = kk - above.sum(1, keepdim=True)
    picked = above | (tied & (tied.cumsum(1) <= room))
    n_cols = s.shape[1]
    columns = torch.arange(n_cols, device=s.device).expand_as(s)
    return torch.where(picked, columns, n_cols).topk(kk, dim=1, largest=False).values


def topk_rows(score: torch.Tensor, valid: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """Per row, the `k` largest valid scores, ties by column ascending.

    Returns `(columns [R, k'], scores [R, k'], n_present [R])` with `k' = min(k, n_cols)`, best
    first; only the first `n_present[r]` entries of row r are real (rows with < k valid entries).
    """
    n_rows, n_cols = score.shape
    kk = min(k, n_cols)
    if kk == 0 or n_rows == 0:
        empty = torch.zeros((n_rows, 0), dtype=torch.int64, device=score.device)
        return empty, score.new_zeros((n_rows, 0)), empty.new_zeros(n_rows)
    s = score.masked_fill(~valid, float("-inf"))
    vals, cols = s.topk(kk, dim=1)
    kth = vals[:, -1:]
    straddle = ((s >= kth).sum(1) > kk) & (kth[:, 0] > float("-inf"))
    rows = torch.nonzero(straddle).squeeze(1)
    if rows.numel():
        cols[rows] = _repick(s[rows], kth[rows], kk)
    cols = cols.sort(dim=1).values
    vals = s.gather(1, cols)
    vals, order = vals.sort(dim=1, descending=True, stable=True)
    return cols.gather(1, order), vals, (vals > float("-inf")).sum(1)
