"""Row-wise top-k with deterministic ties (equal keys: lower column first), vectorised.

`torch.topk` picks among equal keys arbitrarily; a stable sort of every row costs O(M log M) per
component. Instead take `topk` with one extra entry. Only in rows where that extra entry equals the
k-th (a tie straddles the cut) pick again: keep the picks beyond the k-th key and fill up with the
tied entries of lowest column, found by an integer `topk` over a column priority. Then order the k
picks by key, ties by column. Small integer counts tie in most rows, so the re-pick must be cheap:
one comparison and one integer `topk` over the row, no index lists.
"""

from __future__ import annotations

import torch


def _repick(
    s: torch.Tensor, vals: torch.Tensor, cols: torch.Tensor, kth: torch.Tensor, largest: bool
) -> torch.Tensor:
    """Columns [R, kk] of the best `kk` of rows `s`, given `topk`'s first picks `vals`, `cols`
    [R, kk] whose last key `kth` [R, 1] is tied beyond the cut.

    The picks beyond `kth` are right whatever `topk` did with ties (there are fewer than kk); the
    rest of each row are its lowest-column entries equal to `kth`.
    """
    kk = cols.shape[1]
    beyond = vals > kth if largest else vals < kth
    n_beyond = beyond.sum(1, keepdim=True)
    # Priority n_cols - column among the tied entries, 0 elsewhere: topk takes the lowest columns.
    by_column = torch.arange(s.shape[1], 0, -1, dtype=torch.int32, device=s.device)
    tied = torch.where(s == kth, by_column, 0).topk(kk, dim=1).indices
    slot = torch.arange(kk, device=s.device).expand_as(cols)
    from_ties = tied.gather(1, (slot - n_beyond).clamp_(min=0))
    # topk sorts its picks, so the ones beyond kth come first in each row.
    return torch.where(slot < n_beyond, cols, from_ties)


def topk_rows(
    key: torch.Tensor, k: int, floor: float = 0.0, largest: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the `k` largest keys above `floor` (smallest below it if not `largest`), ties by
    column ascending.

    Entries on the wrong side of `floor` (or equal to it) are not candidates. Returns
    `(columns [R, k'], keys [R, k'], n_present [R])` with `k' = min(k, n_cols)`, best first; only
    the first `n_present[r]` entries of row r are real (rows with fewer than k candidates).
    """
    n_rows, n_cols = key.shape
    kk = min(k, n_cols)
    if kk == 0 or n_rows == 0:
        empty = torch.zeros((n_rows, 0), dtype=torch.int64, device=key.device)
        return empty, key.new_zeros((n_rows, 0)), empty.new_zeros(n_rows)
    vals, cols = key.topk(min(kk + 1, n_cols), dim=1, largest=largest)
    kth = vals[:, kk - 1 : kk]
    if kk < n_cols:
        candidate = kth[:, 0] > floor if largest else kth[:, 0] < floor
        straddle = (vals[:, kk] == kth[:, 0]) & candidate
        rows = torch.nonzero(straddle).squeeze(1)
        vals, cols = vals[:, :kk], cols[:, :kk]
        if 2 * rows.numel() > n_rows:  # cheaper than gathering most of the rows
            cols = _repick(key, vals, cols, kth, largest)
        elif rows.numel():
            cols[rows] = _repick(key[rows], vals[rows], cols[rows], kth[rows], largest)
    cols = cols.sort(dim=1).values
    vals, order = key.gather(1, cols).sort(dim=1, descending=largest, stable=True)
    present = vals > floor if largest else vals < floor
    return cols.gather(1, order), vals, present.sum(1)
