"""Row-wise top-k with deterministic ties (equal scores: lower index first), vectorised.

`torch.topk` picks among equal scores arbitrarily; a full stable sort of every row costs
O(V log V) per component. Instead: take `topk`, and only in rows where more entries equal the
k-th value than fit (a tie straddles the cut) re-pick from the list of entries >= the k-th value,
keeping the lowest-indexed tied ones. Then order the <= k picks by score, ties by index.
"""

from __future__ import annotations

import torch


def _repick(s: torch.Tensor, kth: torch.Tensor, kk: int) -> torch.Tensor:
    """Columns [R, kk] of the top `kk` of rows `s`, ties at `kth` resolved by lowest index."""
    row, col = torch.nonzero(s >= kth).unbind(1)  # sorted by row, then column
    tied = (s[row, col] == kth[row, 0]).to(torch.int64)
    start = torch.searchsorted(row, row)
    tie_csum = tied.cumsum(0)
    tie_rank = tie_csum - (tie_csum[start] - tied[start])  # 1-based rank among the row's ties
    n_above = torch.bincount(row[tied == 0], minlength=s.shape[0])
    keep = (tied == 0) | (tie_rank <= kk - n_above[row])
    row, col = row[keep], col[keep]
    slot = torch.arange(row.numel(), device=s.device) - torch.searchsorted(row, row)
    out = torch.empty((s.shape[0], kk), dtype=torch.int64, device=s.device)
    out[row, slot] = col
    return out


def topk_rows(
    key: torch.Tensor, k: int, floor: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the `k` largest keys above `floor`, ties by column ascending.

    Entries with `key <= floor` are not candidates. Returns `(columns [R, k'], keys [R, k'],
    n_present [R])` with `k' = min(k, n_cols)`, best first; only the first `n_present[r]` entries
    of row r are real (rows with fewer than k candidates).
    """
    n_rows, n_cols = key.shape
    kk = min(k, n_cols)
    if kk == 0 or n_rows == 0:
        empty = torch.zeros((n_rows, 0), dtype=torch.int64, device=key.device)
        return empty, key.new_zeros((n_rows, 0)), empty.new_zeros(n_rows)
    # One extra value tells where a tie straddles the cut: the (k+1)-th largest equals the k-th.
    vals, cols = key.topk(min(kk + 1, n_cols), dim=1)
    kth = vals[:, kk - 1 : kk]
    if kk < n_cols:
        straddle = (vals[:, kk] == kth[:, 0]) & (kth[:, 0] > floor)
        rows = torch.nonzero(straddle).squeeze(1)
        cols = cols[:, :kk]
        if rows.numel():
            cols[rows] = _repick(key[rows], kth[rows], kk)
    cols = cols.sort(dim=1).values
    vals, order = key.gather(1, cols).sort(dim=1, descending=True, stable=True)
    return cols.gather(1, order), vals, (vals > floor).sum(1)
