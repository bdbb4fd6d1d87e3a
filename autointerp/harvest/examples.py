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


def lexsort(*keys: torch.Tensor) -> torch.Tensor:
    """Permutation sorting by `keys[0]`, then `keys[1]`, ...: stable sorts from the last key."""
    order = torch.argsort(keys[-1], stable=True)
    for key in reversed(keys[:-1]):
        order = order[torch.argsort(key[order], stable=True)]
    return order


class ExampleSample:
    """Per-component bottom-k state: keys, global positions, token windows and CI windows."""

    def __init__(self, n_components: int, k: int, window: int, device: torch.device) -> None:
        self.k = k
        self.window = window
        width = 2 * window + 1
        self.keys = torch.full((n_components, k), EMPTY_KEY, dtype=torch.int64, device=device)
        self.gpos = torch.zeros((n_components, k), dtype=torch.int64, device=device)
        self.tokens = torch.full((n_components, k, width), PAD_ID, dtype=torch.int32, device=device)
        self.ci = torch.zeros((n_components, k, width), dtype=torch.float32, device=device)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"keys": self.keys, "gpos": self.gpos, "tokens": self.tokens, "ci": self.ci}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, value in tensors.items():
            getattr(self, name).copy_(value)

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
        """Offer the firings `(comp[i], pos[i])` of one batch with their keys.

        `pos` indexes the flattened batch (`tokens` [P], `ci` [P, C]); windows never cross a
        sequence boundary (`seq_len` positions per sequence).
        """
        if self.k == 0 or comp.numel() == 0:
            return
        worst = self.keys.max(dim=1).values
        cand = torch.nonzero(keys <= worst[comp]).squeeze(1)
        if cand.numel() == 0:
            return
        c_comp = comp[cand]
        touched = torch.unique(c_comp)
        old_keys = self.keys[touched]
        used = old_keys != EMPTY_KEY
        slot = torch.arange(self.k, device=comp.device).expand_as(old_keys)
        o_comp = touched[:, None].expand_as(old_keys)[used]
        all_comp = torch.cat([o_comp, c_comp])
        all_key = torch.cat([old_keys[used], keys[cand]])
        all_gpos = torch.cat([self.gpos[touched][used], gpos[cand]])
        # source: >= 0 is a new candidate's index into `cand`, < 0 is an old slot (-1 - slot).
        all_src = torch.cat([-1 - slot[used], torch.arange(cand.numel(), device=comp.device)])
        order = lexsort(all_comp, all_key, all_gpos)
        s_comp = all_comp[order]
        rank = torch.arange(order.numel(), device=comp.device) - torch.searchsorted(s_comp, s_comp)
        keep = order[rank < self.k]
        rank = rank[rank < self.k]
        k_comp, k_src = all_comp[keep], all_src[keep]

        old = k_src < 0
        oc, os, orank = k_comp[old], -1 - k_src[old], rank[old]
        moved_tokens, moved_ci = self.tokens[oc, os], self.ci[oc, os]
        new = ~old
        nc, nrank, ni = k_comp[new], rank[new], cand[k_src[new]]
        new_tokens, new_ci = self._windows(pos[ni], nc, tokens, ci, seq_len)

        self.keys[oc, orank] = all_key[keep][old]
        self.gpos[oc, orank] = all_gpos[keep][old]
        self.tokens[oc, orank] = moved_tokens
        self.ci[oc, orank] = moved_ci
        self.keys[nc, nrank] = keys[ni]
        self.gpos[nc, nrank] = gpos[ni]
        self.tokens[nc, nrank] = new_tokens
        self.ci[nc, nrank] = new_ci

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

    def merge(self, other: ExampleSample) -> None:
        """Keep the bottom-k of both samples (they came from disjoint streams)."""
        keys = torch.cat([self.keys, other.keys], dim=1)
        gpos = torch.cat([self.gpos, other.gpos], dim=1)
        order = torch.argsort(gpos, dim=1, stable=True)
        order = order.gather(1, torch.argsort(keys.gather(1, order), dim=1, stable=True))
        order = order[:, : self.k]
        self.keys = keys.gather(1, order)
        self.gpos = gpos.gather(1, order)
        idx = order[:, :, None].expand(-1, -1, self.tokens.shape[2])
        self.tokens = torch.cat([self.tokens, other.tokens], dim=1).gather(1, idx)
        self.ci = torch.cat([self.ci, other.ci], dim=1).gather(1, idx)
