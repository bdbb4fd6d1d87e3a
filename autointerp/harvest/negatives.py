"""Windows where a component fires nowhere, checked on the CI: the negatives its label is scored on.

Peers take "non-activating" windows from other components' examples and never check that the
target is silent there. Here every batch offers a few candidate windows (centres drawn uniformly
without replacement from its positions, each window cut at its sequence's edges like the
examples); a candidate counts for component c only where c's CI is at or below the threshold at
every position of the window. Each component keeps the k candidates with the smallest random
keys among those: a uniform sample of the sampled windows where it is silent, mergeable and
resumable like the examples' bottom-k. The draws come from a generator of the sampler's own, so
the examples' sample is the same with or without negatives.
"""

from __future__ import annotations

import torch

from autointerp.harvest.examples import EMPTY_KEY, PAD_ID, KeyedWindows

CANDIDATES_PER_BATCH = 32
"""Candidate windows per batch: over a pass of hundreds of batches, thousands of windows."""
SEED_OFFSET = 0x6E6567  # "neg"
"""The sampler's generator is seeded with the harvest seed plus this."""


class NegativeSample(KeyedWindows):
    """Per-component bottom-k of keyed silent windows, with its own generator."""

    def __init__(
        self, n_components: int, k: int, window: int, device: torch.device, seed: int
    ) -> None:
        super().__init__(n_components, k, window, device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed + SEED_OFFSET)

    def offer(
        self,
        tokens: torch.Tensor,
        ci: torch.Tensor,
        seq_len: int,
        first_gpos: int,
        threshold: float,
        candidates: int = CANDIDATES_PER_BATCH,
    ) -> None:
        """Offer candidate windows of one batch: `tokens` [P] (flattened), `ci` [P, C]; the
        batch's first position is `first_gpos` in the stream."""
        if self.k == 0:
            return
        n_pos, n_comp = ci.shape
        dev = ci.device
        m = min(candidates, n_pos)
        centres = torch.randperm(n_pos, generator=self.generator, device=dev)[:m]
        keys = torch.randint(0, EMPTY_KEY, (m, n_comp), generator=self.generator, device=dev)
        offsets = torch.arange(-self.window, self.window + 1, device=dev)
        where = centres[:, None] + offsets[None, :]  # [m, width]
        same_sequence = where // seq_len == (centres // seq_len)[:, None]
        inside = (where >= 0) & (where < n_pos) & same_sequence
        where = where.clamp(0, n_pos - 1)
        window_ci = ci[where] * inside[:, :, None]  # [m, width, C]; 0 beyond the sequence
        silent = window_ci.amax(dim=1) <= threshold  # [m, C]
        keys = torch.where(silent, keys, EMPTY_KEY).T  # [C, m]
        merged = torch.cat([self.keys, keys], dim=1)
        best = torch.topk(merged, self.k, dim=1, largest=False, sorted=True).indices  # [C, k]
        # Slots won by a silent candidate of this batch (an empty key never counts as won).
        new = (best >= self.k) & (merged.gather(1, best) != EMPTY_KEY)
        if not bool(new.any()):
            return
        comp, slot = torch.nonzero(new, as_tuple=True)
        cand = best[comp, slot] - self.k
        # Kept entries move to their new slots; new winners are written after.
        kept = best.clamp(max=self.k - 1)
        for name in ("keys", "gpos", "tokens", "ci"):
            table = getattr(self, name)
            index = kept if table.dim() == 2 else kept[:, :, None].expand_as(table)
            table.copy_(table.gather(1, index))
        self.keys[comp, slot] = keys[comp, cand]
        self.gpos[comp, slot] = first_gpos + centres[cand]
        window_tokens = torch.where(inside, tokens[where], PAD_ID).to(torch.int32)  # [m, width]
        self.tokens[comp, slot] = window_tokens[cand]
        self.ci[comp, slot] = window_ci[cand, :, comp].float()
