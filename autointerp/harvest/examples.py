"""Exactly uniform activation-example sampling: bottom-k of i.i.d. random keys per component.

Every firing (component, position) of the whole stream draws a uniform 63-bit key from the
harvester's own generator; each component keeps the k firings with the smallest
`(key, global position)`. The k smallest of i.i.d. keys are a uniform sample without replacement,
whatever the batch boundaries, and the bottom-k of two disjoint streams' samples is the bottom-k
of their union, so samples merge. Only the windows of new winners are gathered.
"""

from __future__ import annotations

import torch

EMPTY_KEY = torch.iinfo(torch.int64).max
"""Key of an unused slot; drawn keys are always smaller."""

PAD_ID = -1
"""Token id stored for window positions beyond a sequence edge."""


def _rank_in_runs(ids: torch.Tensor) -> torch.Tensor:
    """For sorted `ids`, each entry's 0-based position within its run of equal ids."""
    return torch.arange(ids.numel(), device=ids.device) - torch.searchsorted(ids, ids)


class KeyedWindows:
    """Per-component bottom-k state: keys, global positions, token windows and CI windows.

    The storage and the merge shared by the examples (firings) and the silent windows
    (`negatives.py`); each decides what it offers."""

    def __init__(self, n_components: int, k: int, window: int, device: torch.device) -> None:
        self.k = k
        self.window = window
        width = 2 * window + 1
        self.keys = torch.full((n_components, k), EMPTY_KEY, dtype=torch.int64, device=device)
        self.gpos = torch.zeros((n_components, k), dtype=torch.int64, device=device)
        self.tokens = torch.full((n_components, k, width), PAD_ID, dtype=torch.int32, device=device)
        self.ci = torch.zeros((n_components, k, width), dtype=torch.float32, device=device)

    def slot_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors with one entry per slot ([C, k, ...]): a merge reorders them together."""
        return {"keys": self.keys, "gpos": self.gpos, "tokens": self.tokens, "ci": self.ci}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the state, by name (checkpointed)."""
        return self.slot_tensors()

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, value in tensors.items():
            getattr(self, name).copy_(value)

    def merge(self, other: KeyedWindows) -> None:
        """Keep the bottom-k of both samples (they came from disjoint streams)."""
        dev = self.keys.device
        keys = torch.cat([self.keys, other.keys.to(dev)], dim=1)
        gpos = torch.cat([self.gpos, other.gpos.to(dev)], dim=1)
        order = torch.argsort(gpos, dim=1, stable=True)
        order = order.gather(1, torch.argsort(keys.gather(1, order), dim=1, stable=True))
        order = order[:, : self.k]
        theirs = other.slot_tensors()
        for name, mine in self.slot_tensors().items():
            both = torch.cat([mine, theirs[name].to(dev)], dim=1)
            idx = order.view(*order.shape, *[1] * (both.dim() - 2)).expand(-1, -1, *both.shape[2:])
            setattr(self, name, both.gather(1, idx))


class ExampleSample(KeyedWindows):
    """The uniform sample of each component's firings (the activation examples)."""

    def offer(
        self,
        comp: torch.Tensor,
        pos: torch.Tensor,
        keys: torch.Tensor,
        gpos: torch.Tensor,
        tokens: torch.Tensor,
        ci: torch.Tensor,
        seq_len: int,
    ) -> None:
        """Offer the firings `(comp[i], pos[i])` of one block with their keys.

        `comp` is sorted and `pos` ascending within a component; `gpos` are global positions, all
        after those already in the sample. `pos` indexes the flattened batch (`tokens` [P],
        `ci` [P, C]); windows never cross a sequence boundary (`seq_len` positions per sequence).

        Slots are unordered: entries that stay in the sample are never moved, and each new winner
        takes a slot that lost its entry (or was empty), so only the winners' windows are written.
        """
        k = self.k
        if k == 0 or comp.numel() == 0:
            return
        # A firing can only enter if it beats the component's worst kept (key, position); a new
        # firing comes later than every kept one, so an equal key loses.
        worst = self.keys.max(dim=1).values
        cand = torch.nonzero(keys < worst[comp]).squeeze(1)
        if cand.numel() == 0:
            return
        # The k best candidates of each component by (key, position): stable sorts by key and then
        # by component keep the position order among equal keys.
        order = torch.argsort(keys[cand], stable=True)
        cand = cand[order[torch.argsort(comp[cand][order], stable=True)]]
        c_comp = comp[cand]
        rank = _rank_in_runs(c_comp)
        cand, rank, c_comp = cand[rank < k], rank[rank < k], c_comp[rank < k]
        touched, row = torch.unique_consecutive(c_comp, return_inverse=True)

        # Per touched component: its k slots, then its (up to k) candidates in rank order.
        width = 2 * k
        key_m = torch.full(
            (touched.numel(), width), EMPTY_KEY, dtype=torch.int64, device=comp.device
        )
        gpos_m = torch.full_like(key_m, torch.iinfo(torch.int64).max)
        key_m[:, :k] = self.keys[touched]
        gpos_m[:, :k] = self.gpos[touched]
        key_m[row, k + rank] = keys[cand]
        gpos_m[row, k + rank] = gpos[cand]
        best = torch.argsort(gpos_m, dim=1, stable=True)
        best = best.gather(1, torch.argsort(key_m.gather(1, best), dim=1, stable=True))[:, :k]
        won = torch.zeros_like(key_m, dtype=torch.bool).scatter_(1, best, True)

        # The i-th winning candidate of a component takes its i-th slot that lost (or was empty).
        arrive_row, arrive_rank = torch.nonzero(won[:, k:] & (key_m[:, k:] != EMPTY_KEY)).unbind(1)
        free_row, free_slot = torch.nonzero(~won[:, :k]).unbind(1)
        n_arrive = torch.bincount(arrive_row, minlength=touched.numel())
        use = _rank_in_runs(free_row) < n_arrive[free_row]
        dest_comp, dest_slot = touched[free_row[use]], free_slot[use]
        by_rank = torch.full((touched.numel(), k), -1, dtype=torch.int64, device=comp.device)
        by_rank[row, rank] = cand
        src = by_rank[arrive_row, arrive_rank]

        new_tokens, new_ci = self._windows(pos[src], comp[src], tokens, ci, seq_len)
        self.keys[dest_comp, dest_slot] = keys[src]
        self.gpos[dest_comp, dest_slot] = gpos[src]
        self.tokens[dest_comp, dest_slot] = new_tokens
        self.ci[dest_comp, dest_slot] = new_ci

    def _windows(
        self,
        pos: torch.Tensor,
        comp: torch.Tensor,
        tokens: torch.Tensor,
        ci: torch.Tensor,
        seq: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.arange(-self.window, self.window + 1, device=pos.device)
        within = (pos % seq)[:, None] + offsets
        valid = (within >= 0) & (within < seq)
        flat = (pos - pos % seq)[:, None] + within.clamp(0, seq - 1)
        win_tokens = torch.where(valid, tokens[flat].to(torch.int32), PAD_ID)
        win_ci = ci[flat, comp[:, None]].to(torch.float32)
        return win_tokens, torch.where(valid, win_ci, 0.0)
