"""Hard negatives: windows where a component's co-firing partners fire but it stays silent.

A label that says "fires on numbers" may describe a whole family of components that fire
together; the random silent windows (`negatives.py`) rarely contain that family's tokens, so they
cannot tell the label of one member from another's. A hard negative of component c is a window
centred on a position where one of c's partners fires (CI > threshold) while c's CI is at or
below the threshold at every position of the window (same width and cut as the examples: the
window stops at its sequence's edges, padding beyond).

Partners. c's partners are the `PARTNERS` components d that fired together with c (count > 0,
c itself excluded) with the largest Jaccard index of their firings, co(c, d) / (f(c) + f(d) -
co(c, d)) (equal indices to 9 digits: the lower component id first), read from the
harvester's running co-occurrence table and firing counts. Not the largest raw counts: those
rank a component that fires almost everywhere first for every component (it co-fires with all
of them), and then the "hard" negatives are the random windows again. On the demo, ranked by
count, 3,327 of its 3,370 hard negatives were centred on one component firing on 99% of tokens;
the Jaccard index counts a partner's firings without c against it. The partners are refreshed at
fixed batch counts (`refresh_due`: after batches 1, 2, 4, ..., 256 and then every 256th, before
the next batch: a batch is judged against partners counted on earlier batches, and the first
batch, with none, offers nothing), a chunk of rows at a time so that the working memory stays
at a few chunk-sized tables. The partners tensor is part of the checkpointed state and the
schedule depends only on the batch count, so a resumed pass is bit-identical to an
uninterrupted one. Early windows are judged against partners from few tokens; that only changes
which components count as partners, never whether a kept window is silent for c and has a
firing partner at its centre.

Sampling. Every batch draws `CANDIDATES_PER_BATCH` candidate centres uniformly without
replacement (before its blocks). A candidate counts for c when c is silent over its window and
some partner of c fires at its centre; each counting (candidate, component) pair, in order of
component and then candidate, draws a random key, and each component keeps the k counting
candidates with the smallest keys: a uniform sample of its hard candidates, mergeable and
resumable like the other bottom-k samples. Each kept window records the partner that fired at
the centre (the one with the largest CI there; equal CI: the higher-ranked partner). The draws
come from a generator of the sampler's own, so the examples and the silent windows are the same
with or without hard negatives.

Work per batch: the candidates' windows cover most of a batch, so silence is read off the
firing lists the update builds anyway (`see`: each firing marks the candidates whose windows
cover it, one [C, candidates] boolean table), not from the CI itself; a partner firing at a
centre is one [C, candidates] row gather per partner rank; keys are drawn only for the counting
pairs, and the bottom-k runs over the components that gained one. Slots are unordered, as in
the examples' sample: kept entries never move; only the winners' windows are written.
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


RANK_STEPS = 2**32
"""Partners are ranked by floor(co / (f(c) + f(d)) * this): equal to 9 digits is a tie (lower id
first), and every key is an integer below 2^53, exact in float64 whatever the device."""


def top_partners(rows: torch.Tensor, fired: torch.Tensor, first: int, m: int) -> torch.Tensor:
    """Partners of the components `first, first + 1, ...` from their full co-occurrence `rows`
    [R, C] and every component's firing count `fired` [C]: the `m` columns with co-firings
    whose Jaccard index is largest, the component itself excluded, ties by lower id; [R, m]
    int64, `NO_PARTNER` where fewer components co-fired with it.

    The Jaccard index co / (f(c) + f(d) - co) is x / (1 - x) for x = co / (f(c) + f(d)), so x
    ranks the same and costs one pass less; it is at most 1/2, so with the lower-id tie break
    a key (floor(x * RANK_STEPS) * C + C - 1 - d) stays exact in float64."""
    n_rows, n_comp = rows.shape
    dev = rows.device
    present = rows > 0
    present[torch.arange(n_rows, device=dev), torch.arange(first, first + n_rows, device=dev)] = (
        False
    )
    f = fired.to(device=dev, dtype=torch.float64)
    key = rows.to(torch.float64)
    # IEEE products, quotients and floors: the same bits on every device.
    key.mul_(RANK_STEPS).div_(f[first : first + n_rows, None] + f[None, :]).floor_()
    key.mul_(n_comp).add_(n_comp - 1 - torch.arange(n_comp, device=dev, dtype=torch.float64))
    key.masked_fill_(~present, -1.0)
    take = min(m, n_comp)
    best = torch.topk(key, take, dim=1, largest=True, sorted=True).indices
    found = present.gather(1, best)
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
        """Each component's partners as last refreshed, the largest Jaccard index first."""
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed + SEED_OFFSET)
        self.candidates = CANDIDATES_PER_BATCH
        # The batch in progress (`begin`, `see`, `offer`): candidate centres, their windows'
        # positions and which lie inside their sequence, which candidates cover each position,
        # and per (component, candidate) whether the component fires in the window.
        empty = torch.empty(0, dtype=torch.int64, device=device)
        self._centres, self._where, self._cover_owner, self._cover_start = (empty,) * 4
        self._inside = self._loud = torch.empty(0, dtype=torch.bool, device=device)

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
        self,
        cooc_rows: Callable[[int, int], torch.Tensor],
        fired: torch.Tensor,
        chunk_entries: int,
    ) -> None:
        """Recompute the partners from the co-occurrence table (`cooc_rows(c0, c1)`: full rows)
        and the firing counts `fired`, `chunk_entries // (2 C)` rows at a time (about 25 bytes
        per entry of a chunk, with `cooc_rows`' own: less than the update's three partial
        co-firing results)."""
        if self.k == 0:
            return
        n_comp = self.partners.shape[0]
        step = max(1, chunk_entries // (2 * max(1, n_comp)))
        for c0 in range(0, n_comp, step):
            c1 = min(n_comp, c0 + step)
            self.partners[c0:c1] = top_partners(cooc_rows(c0, c1), fired, c0, self.m)

    def begin(self, n_pos: int, seq_len: int, device: torch.device) -> None:
        """Draw this batch's candidate centres (before its blocks, which report their firings
        to `see`): `n_pos` flattened positions, sequences of `seq_len`."""
        if self.k == 0:
            return
        m = min(self.candidates, n_pos)
        self._centres = torch.randperm(n_pos, generator=self.generator, device=device)[:m]
        offsets = torch.arange(-self.window, self.window + 1, device=device)
        where = self._centres[:, None] + offsets[None, :]  # [m, width]
        same_sequence = where // seq_len == (self._centres // seq_len)[:, None]
        self._inside = (where >= 0) & (where < n_pos) & same_sequence
        self._where = where.clamp(0, n_pos - 1)
        # Which candidates' windows cover each position: positions sorted, with run offsets.
        covered = where[self._inside]
        owner = torch.arange(m, device=device)[:, None].expand_as(where)[self._inside]
        order = torch.argsort(covered, stable=True)
        self._cover_owner = owner[order]
        self._cover_start = torch.zeros(n_pos + 1, dtype=torch.int64, device=device)
        self._cover_start[1:] = torch.cumsum(torch.bincount(covered, minlength=n_pos), 0)
        self._loud = torch.zeros((self.partners.shape[0], m), dtype=torch.bool, device=device)

    def see(self, comp: torch.Tensor, pos: torch.Tensor) -> None:
        """Note firings `(comp[i], pos[i])` of this batch (`pos` flattened): the candidates
        whose windows cover `pos[i]` are not silent for `comp[i]`."""
        if self.k == 0 or comp.numel() == 0:
            return
        start = self._cover_start[pos]
        count = self._cover_start[pos + 1] - start
        firing = torch.repeat_interleave(count)  # each firing once per covering window
        first = torch.cumsum(count, 0) - count
        slot = start[firing] + torch.arange(firing.numel(), device=pos.device) - first[firing]
        self._loud[comp[firing], self._cover_owner[slot]] = True

    def offer(
        self,
        tokens: torch.Tensor,
        ci: torch.Tensor,
        seq_len: int,
        first_gpos: int,
        threshold: float,
    ) -> None:
        """Offer this batch's candidates (after `begin` and every block's `see`): `tokens` [P]
        (flattened), `ci` [P, C]; the batch's first position is `first_gpos` in the stream."""
        if self.k == 0:
            return
        centres, where, inside = self._centres, self._where, self._inside
        # Some partner of c fires at the centre: one [C, m] row gather per partner rank.
        fires = (ci[centres] > threshold).T.contiguous()  # [C, m]
        hit = torch.zeros_like(fires)
        for rank in range(self.m):
            partner = self.partners[:, rank]
            hit |= fires[partner.clamp(min=0)] & (partner >= 0)[:, None]
        hit &= ~self._loud  # c silent over the whole window (the centre included)
        self._loud = torch.empty(0, dtype=torch.bool, device=ci.device)
        comp, cand = torch.nonzero(hit).unbind(1)  # by component, then candidate
        if comp.numel() == 0:
            return
        keys = torch.randint(
            0, EMPTY_KEY, (comp.numel(),), generator=self.generator, device=ci.device
        )
        k = self.k
        rows, row = torch.unique_consecutive(comp, return_inverse=True)
        new = torch.full((rows.numel(), centres.numel()), EMPTY_KEY, device=ci.device)
        new[row, cand] = keys
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
        # The partner with the largest CI at the centre (the higher-ranked one on ties).
        partners = self.partners[comp]  # [n, PARTNERS]
        at_centre = ci[centres[cand][:, None], partners.clamp(min=0)].float()
        at_centre = torch.where(partners >= 0, at_centre, float("-inf"))
        self.partner[comp, slot] = partners.gather(1, at_centre.argmax(1, keepdim=True))[:, 0]
