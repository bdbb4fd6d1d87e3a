"""Hard negatives: windows where a component's co-firing partners fire but it stays silent.

A label that says "fires on numbers" may describe a whole family of components that fire
together; the random silent windows (`negatives.py`) rarely contain that family's tokens, so they
cannot tell the label of one member from another's. A hard negative of component c is a window
centred on a position where one of c's partners fires (CI > threshold) while c's CI is at or
below the threshold at every position of the window (same width and cut as the examples: the
window stops at its sequence's edges, padding beyond).

Partners. c's partners are the `PARTNERS` components with the most co-firings with c (count > 0,
c itself excluded; equal counts: the lower component id first), read from the harvester's
running co-occurrence table. They are refreshed at fixed batch counts (`refresh_due`: after
batches 1, 2, 4, ..., 256 and then every 256th), a chunk of rows at a time so that the working
memory stays at a few chunk-sized tables. The partners tensor is part of the checkpointed state
and the schedule depends only on the batch count, so a resumed pass is bit-identical to an
uninterrupted one. Early windows are judged against partners from few tokens; that only changes
which components count as partners, never whether a kept window is silent for c and has a
firing partner at its centre.

Sampling. Every batch draws `CANDIDATES_PER_BATCH` candidate centres uniformly without
replacement and one random key per (candidate, component). A candidate counts for c when c is
silent over its window and some partner of c fires at its centre; each component keeps the k
counting candidates with the smallest keys: a uniform sample of its hard candidates, mergeable
and resumable like the other bottom-k samples. Each kept window records the partner that fired
at the centre (the one with the largest CI there; equal CI: the partner with more co-firings).
The draws come from a generator of the sampler's own, so the examples and the silent windows
are the same with or without hard negatives.

Work per batch: two [candidates, C] boolean tables plus one gather of them per partner and per
window offset (nothing of size [candidates, C, partners] or [candidates, width, C]), and a
bottom-k over the components that gained a candidate. Slots are unordered, as in the examples'
sample: kept entries never move; only the winners' windows are written.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from autointerp.harvest.examples import EMPTY_KEY, PAD_ID, KeyedWindows, _rank_in_runs

PARTNERS = 8
"""Co-firing partners per component whose firing makes a window a hard-negative candidate."""
CANDIDATES_PER_BATCH = 64
"""Candidate centres per batch (a partner fires at only some of them)."""
SEED_OFFSET = 0x68617264  # "hard"
"""The sampler's generator is seeded with the harvest seed plus this."""
REFRESH_EVERY = 256
"""After the powers of two up to this, partners are refreshed every this many batches."""
NO_PARTNER = -1


def refresh_due(batches: int) -> bool:
    """Whether the partners are refreshed once `batches` batches are in the co-occurrence table:
    after batches 1, 2, 4, ..., 256, then every 256th."""
    if batches <= 0:
        return False
    if batches <= REFRESH_EVERY:
        return batches & (batches - 1) == 0
    return batches % REFRESH_EVERY == 0


def top_partners(rows: torch.Tensor, first: int, m: int) -> torch.Tensor:
    """Partners of the components `first, first + 1, ...` from their full co-occurrence `rows`
    [R, C]: the `m` columns with the largest counts > 0, the component itself excluded, equal
    counts by lower id; [R, m] int64, `NO_PARTNER` where there are fewer."""
    n_rows, n_comp = rows.shape
    dev = rows.device
    counts = rows.to(torch.int64)
    counts[torch.arange(n_rows, device=dev), torch.arange(first, first + n_rows, device=dev)] = 0
    # One unique key per column: counts first, then the lower id (ties never reach topk).
    order_key = counts * n_comp + (n_comp - 1 - torch.arange(n_comp, device=dev))
    take = min(m, n_comp)
    best = torch.topk(order_key, take, dim=1, largest=True, sorted=True).indices
    found = counts.gather(1, best) > 0
    out = torch.full((n_rows, m), NO_PARTNER, dtype=torch.int64, device=dev)
    out[:, :take] = torch.where(found, best, NO_PARTNER)
    return out


class HardNegativeSample(KeyedWindows):
    """Per-component bottom-k of keyed hard-negative windows, with its own generator, the
    partners they are judged against, and the partner that fired in each kept window."""

    def __init__(
        self,
        n_components: int,
        k: int,
        window: int,
        device: torch.device,
        seed: int,
        partners: int = PARTNERS,
    ) -> None:
        super().__init__(n_components, k, window, device)
        self.m = partners
        self.partner = torch.full((n_components, k), NO_PARTNER, dtype=torch.int64, device=device)
        """Which component fired at the centre of each slot's window."""
        self.partners = torch.full(
            (n_components, partners if k else 0), NO_PARTNER, dtype=torch.int64, device=device
        )
        """Each component's partners as last refreshed, most co-firings first."""
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed + SEED_OFFSET)

    def slot_tensors(self) -> dict[str, torch.Tensor]:
        return super().slot_tensors() | {"partner": self.partner}

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.slot_tensors() | {"partners": self.partners}

    def merge(self, other: KeyedWindows) -> None:
        """The bottom-k of both samples; the partners stay this sample's (the next refresh reads
        the merged co-occurrence table). Each kept window's partner stays the one that fired
        there, a partner of its component when it was drawn."""
        super().merge(other)

    def refresh_partners(
        self, cooc_rows: Callable[[int, int], torch.Tensor], chunk_entries: int
    ) -> None:
        """Recompute the partners from the co-occurrence table (`cooc_rows(c0, c1)`: full rows),
        `chunk_entries // C` rows at a time."""
        if self.k == 0:
            return
        n_comp = self.partners.shape[0]
        step = max(1, chunk_entries // max(1, n_comp))
        for c0 in range(0, n_comp, step):
            c1 = min(n_comp, c0 + step)
            self.partners[c0:c1] = top_partners(cooc_rows(c0, c1), c0, self.m)

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
        # Some partner of c fires at the centre: one [m, C] gather per partner rank.
        fires = ci[centres] > threshold  # [m, C]
        hit = torch.zeros_like(fires)
        for p in range(self.m):
            partner = self.partners[:, p]
            hit |= fires[:, partner.clamp(min=0)] & (partner >= 0)
        if not bool(hit.any()):
            return
        # c is silent over the whole window: its largest CI, one offset at a time.
        offsets = torch.arange(-self.window, self.window + 1, device=dev)
        where = centres[:, None] + offsets[None, :]  # [m, width]
        same_sequence = where // seq_len == (centres // seq_len)[:, None]
        inside = (where >= 0) & (where < n_pos) & same_sequence
        where = where.clamp(0, n_pos - 1)
        silent = hit  # refined in place: only hit entries can count
        for o in range(where.shape[1]):
            loud = ci[where[:, o]] > threshold
            silent &= ~(loud & inside[:, o, None])
        rows = torch.nonzero(silent.any(0)).squeeze(1)  # components with a counting candidate
        if rows.numel() == 0:
            return
        k = self.k
        new = torch.where(silent[:, rows], keys[:, rows], EMPTY_KEY).T  # [R, m]
        merged = torch.cat([self.keys[rows], new], dim=1)
        best = torch.topk(merged, k, dim=1, largest=False, sorted=False).indices
        won = torch.zeros_like(merged, dtype=torch.bool).scatter_(1, best, True)
        # The i-th arriving candidate of a component takes its i-th slot that lost (or was
        # empty): the slots that lost are at least as many as the candidates that won.
        arrive_row, cand = torch.nonzero(won[:, k:] & (new != EMPTY_KEY)).unbind(1)
        if cand.numel() == 0:
            return
        free_row, free_slot = torch.nonzero(~won[:, :k]).unbind(1)
        n_arrive = torch.bincount(arrive_row, minlength=rows.numel())
        use = _rank_in_runs(free_row) < n_arrive[free_row]
        comp, slot = rows[free_row[use]], free_slot[use]
        self.keys[comp, slot] = new[arrive_row, cand]
        self.gpos[comp, slot] = first_gpos + centres[cand]
        win = where[cand]
        self.tokens[comp, slot] = torch.where(inside[cand], tokens[win], PAD_ID).to(torch.int32)
        self.ci[comp, slot] = torch.where(inside[cand], ci[win, comp[:, None]], 0.0).float()
        # The partner with the largest CI at the centre (the first, most co-firing, on ties).
        partners = self.partners[comp]  # [n, PARTNERS]
        at_centre = ci[centres[cand][:, None], partners.clamp(min=0)].float()
        at_centre = torch.where(partners >= 0, at_centre, float("-inf"))
        self.partner[comp, slot] = partners.gather(1, at_centre.argmax(1, keepdim=True))[:, 0]
