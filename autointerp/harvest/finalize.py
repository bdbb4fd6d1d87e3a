"""Turn accumulators into `ComponentData` records, streaming, in vectorised chunks on the device.

Scores are computed for a chunk of components at once; only the final top-k lists go to Python.
PMI is ranked by its argument `co·N / (f·T)` (log is monotone) and logged afterwards, and recall
by `co` (f is constant in a row), so ties are decided on exactly computed values. The log is
Python's `math.log` of the picked arguments, not `torch.log`: torch's CPU log (ATen's vector-math
path) gave, in one of three demo runs on a loaded machine, values up to 45 ulps from the correctly
rounded ones, so the same counts gave different PMI bits from run to run. Lists contain only
pairs with co > 0, where every score is finite by construction.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Iterator

import torch

from autointerp.harvest.examples import EMPTY_KEY, PAD_ID
from autointerp.harvest.harvester import Harvester
from autointerp.harvest.topk import topk_rows
from autointerp.schemas import (
    PAD_TOKEN,
    ActivationExample,
    ComponentCorrelations,
    ComponentData,
    HeldOutData,
    TokenStats,
    component_key,
    finite,
)


class _Decoder:
    """`decode` with a cache: each distinct token id is decoded once."""

    def __init__(self, decode: Callable[[int], str]) -> None:
        self._decode = decode
        self.names: dict[int, str] = {PAD_ID: PAD_TOKEN}

    def learn(self, ids: torch.Tensor) -> dict[int, str]:
        """Decode the ids not seen yet; returns the cache for plain lookups."""
        present = torch.bincount(ids.flatten() + 1)  # ids >= PAD_ID = -1; no sort, unlike unique
        for token_id in (torch.nonzero(present).squeeze(1) - 1).tolist():
            if token_id not in self.names:
                self.names[token_id] = self._decode(token_id)
        return self.names


Picked = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(columns [R, k], scores [R, k], n_present [R]) of one ranked list for a chunk of rows."""
PMI = 2
"""Position of the PMI list among `_stats`' lists (bottom PMI, for correlations, follows it)."""


def _rows(
    picked: Picked, names: dict[int, str] | list[str], log: bool = False
) -> list[list[tuple[str, float]]]:
    """The named `(name, score)` lists of a chunk, built in one pass per row; `log`: the scores
    are PMI arguments, logged here (deterministic, correctly rounded)."""
    cols, scores, n_present = picked
    rows = zip(cols.tolist(), scores.tolist(), n_present.tolist(), strict=True)
    if log:
        return [
            list(zip(map(names.__getitem__, c_row[:m]), map(math.log, v_row[:m])))  # noqa: B905
            for c_row, v_row, m in rows
        ]
    return [
        list(zip(map(names.__getitem__, c_row[:m]), v_row[:m]))  # noqa: B905 - equal lengths
        for c_row, v_row, m in rows
    ]


def _stats(
    co: torch.Tensor, f: torch.Tensor, t: torch.Tensor, n: float, k: int, bottom: bool = False
) -> tuple[list[Picked], torch.Tensor]:
    """(precision, recall, pmi[, bottom pmi]) of a chunk: `co` [R, M] (0 = never together),
    `f` [R, 1], `t` [1, M]; and the columns that were picked (to decode their names). The PMI
    lists hold the arguments of the log (`_rows(..., log=True)` takes it).

    Within a row f is constant, so PMI ranks exactly like precision (`co/t`) and recall like
    `co`: two rankings serve three lists, and scores are computed only for the picked entries.
    """
    precision_key = (co / t).nan_to_num_(nan=0.0)  # 0/0 where t (and so co) is 0
    cols, precision, n_p = topk_rows(precision_key, k)
    co_p = co.gather(1, cols).to(torch.float64)
    pmi_arg = (co_p * n) / (f * t[0, cols])
    cols_r, co_r, n_r = topk_rows(co, k)
    lists = [(cols, precision, n_p), (cols_r, co_r / f, n_r), (cols, pmi_arg, n_p)]
    if bottom:
        low_key = precision_key.masked_fill_(co == 0, float("inf"))  # precision is not used again
        cols_b, _, n_b = topk_rows(low_key, k, floor=float("inf"), largest=False)
        co_b = co.gather(1, cols_b).to(torch.float64)
        lists.append((cols_b, (co_b * n) / (f * t[0, cols_b]), n_b))
    return lists, torch.cat([cols, cols_r], dim=1)


def _key_order(keys: torch.Tensor, gpos: torch.Tensor) -> torch.Tensor:
    """Slot indices of each row by (key, stream position) ascending; empty slots last. The order
    of a bottom-k sample's keys is itself uniformly random."""
    order = torch.argsort(gpos, dim=1, stable=True)
    return order.gather(1, torch.argsort(keys.gather(1, order), dim=1, stable=True))


def _windows(
    keys: torch.Tensor,
    gpos: torch.Tensor,
    tokens: torch.Tensor,
    ci: torch.Tensor,
    order: torch.Tensor,
    w: int,
    decoder: _Decoder,
) -> list[list[ActivationExample]]:
    """The windows of the slots `order` names ([R, n] slot indices), empty slots left out."""
    used = keys.gather(1, order) != EMPTY_KEY
    width = tokens.shape[2]
    tokens = tokens.gather(1, order[:, :, None].expand(-1, -1, width))
    ci = ci.gather(1, order[:, :, None].expand(-1, -1, width))
    ci = torch.nan_to_num(ci, nan=0.0, posinf=0.0, neginf=0.0)
    gpos = gpos.gather(1, order)
    names = decoder.learn(tokens[used])
    out = []
    for n_ex, tok_rows, ci_rows, pos_row in zip(
        # 64-bit tensors convert to Python lists about 3x faster than 32-bit ones.
        used.sum(1).tolist(),
        tokens.to(torch.int64).tolist(),
        ci.to(torch.float64).tolist(),
        gpos.tolist(),
        strict=True,
    ):
        out.append(
            [
                ActivationExample(
                    tokens=[names[t] for t in tok_row],
                    ci_values=ci_row,
                    active_pos=w,
                    active_ci=ci_row[w],
                    stream_pos=p,
                )
                for tok_row, ci_row, p in zip(
                    tok_rows[:n_ex], ci_rows[:n_ex], pos_row[:n_ex], strict=True
                )
            ]
        )
    return out


def _examples(
    h: Harvester, c0: int, c1: int, decoder: _Decoder, shown: int | None
) -> list[list[ActivationExample]]:
    """The examples shown to the labeller: the `shown` smallest keys of each component's sample
    (all of it when None), best first: CI descending, then key, then position."""
    ex = h.examples
    keys, gpos = ex.keys[c0:c1], ex.gpos[c0:c1]
    w = h.context_tokens_per_side
    order = _key_order(keys, gpos)[:, : ex.k if shown is None else min(shown, ex.k)]
    used = keys.gather(1, order) != EMPTY_KEY
    centre = ex.ci[c0:c1, :, w].gather(1, order).to(torch.float64)
    rank_ci = torch.where(used, -centre, float("inf"))
    order = order.gather(1, torch.argsort(rank_ci, dim=1, stable=True))  # stable: keeps key order
    return _windows(keys, gpos, ex.tokens[c0:c1], ex.ci[c0:c1], order, w, decoder)


HeldOutWindows = tuple[
    list[ActivationExample], list[ActivationExample], list[ActivationExample], list[str]
]
"""One component's activating, non-activating and hard non-activating windows, and the key of
the partner that fired in each hard one."""


def _heldout(
    h: Harvester, c0: int, c1: int, decoder: _Decoder, shown: int, keys_of: list[str]
) -> list[HeldOutWindows]:
    """Per component: (activating, non-activating, hard non-activating, hard partners) held-out
    windows: the sample's keys after the `shown` smallest (a uniform sample of the firings not
    shown), the silent windows, and the silent windows where a partner fired (with the partner's
    key, `keys_of` by component id)."""
    ex, neg, hard = h.examples, h.negatives, h.hard_negatives
    w = h.context_tokens_per_side
    keys, gpos = ex.keys[c0:c1], ex.gpos[c0:c1]
    order = _key_order(keys, gpos)[:, min(shown, ex.k) :]
    activating = _windows(keys, gpos, ex.tokens[c0:c1], ex.ci[c0:c1], order, w, decoder)
    nkeys, ngpos = neg.keys[c0:c1], neg.gpos[c0:c1]
    norder = _key_order(nkeys, ngpos)
    silent = _windows(nkeys, ngpos, neg.tokens[c0:c1], neg.ci[c0:c1], norder, w, decoder)
    hkeys, hgpos = hard.keys[c0:c1], hard.gpos[c0:c1]
    horder = _key_order(hkeys, hgpos)
    loud = _windows(hkeys, hgpos, hard.tokens[c0:c1], hard.ci[c0:c1], horder, w, decoder)
    partner_ids = hard.partner[c0:c1].gather(1, horder).tolist()
    partners = [
        [keys_of[p] if p >= 0 else "" for p in row[: len(ws)]]
        for row, ws in zip(partner_ids, loud, strict=True)
    ]
    return list(zip(activating, silent, loud, partners, strict=True))


def _chunk_size(h: Harvester) -> int:
    """Components per chunk: `sizing.finalize_entries` scores per table (on a CPU 2^21, at most
    16 MiB in float64, below glibc's 32 MiB limit for reusing freed memory, so that chunks do not
    page-fault fresh memory for every temporary: that was a third of finalize's time)."""
    return max(1, h.sizing.finalize_entries // max(h.vocab_size, h.n_components))


class _Context:
    """What every chunk needs: names, totals, the decode cache."""

    def __init__(
        self, h: Harvester, decode: Callable[[int], str], top_k: int, shown: int | None = None
    ) -> None:
        self.h = h
        self.top_k = top_k
        self.shown = shown
        self.decoder = _Decoder(decode)
        self.keys = [component_key(m, i) for m, n in h.layout for i in range(n)]
        self.where = [(m, i) for m, n in h.layout for i in range(n)]
        self.n = float(h.n_tokens)
        self.f_all = h.firing_count.to(torch.float64)
        self.t_in = h.token_count.to(torch.float64)[None]
        self.t_out = h.output_mass[None]


@torch.no_grad()
def _chunk(ctx: _Context, c0: int, c1: int) -> list[ComponentData]:
    h, n, k, keys = ctx.h, ctx.n, ctx.top_k, ctx.keys
    f = ctx.f_all[c0:c1, None]
    input_stats, in_cols = _stats(h.input_co[c0:c1], f, ctx.t_in, n, k)
    output_stats, out_cols = _stats(h.output_rows(c0, c1), f, ctx.t_out, n, k)
    co = h.cooc_rows(c0, c1)
    co[torch.arange(c1 - c0), torch.arange(c0, c1)] = 0  # a component is not its own pair
    corr, _ = _stats(co, f, ctx.f_all[None], n, k, bottom=True)
    names = ctx.decoder.learn(torch.cat([in_cols.flatten(), out_cols.flatten()]))
    inputs = [_rows(p, names, log=i == PMI) for i, p in enumerate(input_stats)]
    outputs = [_rows(p, names, log=i == PMI) for i, p in enumerate(output_stats)]
    pairs = [_rows(p, keys, log=i >= PMI) for i, p in enumerate(corr)]
    examples = _examples(h, c0, c1, ctx.decoder, ctx.shown)
    counts = h.firing_count[c0:c1].tolist()
    ci_sums = h.ci_sum[c0:c1].tolist()
    out = []
    for j in range(c1 - c0):
        module, idx = ctx.where[c0 + j]
        out.append(
            ComponentData(
                component_key=keys[c0 + j],
                layer=module,
                component_idx=idx,
                mean_ci=finite(ci_sums[j] / n) if n else 0.0,
                activation_examples=examples[j],
                input_token_stats=TokenStats(*(rows[j] for rows in inputs)),
                output_token_stats=TokenStats(*(rows[j] for rows in outputs)),
                correlations=ComponentCorrelations(*(rows[j] for rows in pairs)),
                firing_count=counts[j],
                firing_density=finite(counts[j] / n) if n else 0.0,
            )
        )
    return out


def finalize(
    harvester: Harvester,
    decode: Callable[[int], str],
    top_k: int = 20,
    start: int = 0,
    chunk_size: int | None = None,
    shown: int | None = None,
) -> Iterator[ComponentData]:
    """Yield one `ComponentData` per component in layout order, from component `start` on.

    Dead components are included (firing_count 0, empty lists), so the number of records written
    equals the position in layout order and `start` is simply the count already written. Records
    are computed a chunk of components at a time; components before `start` are never built.
    `shown`: how many of each component's sampled examples the record carries (None: all); the
    rest are held out (`finalize_heldout`).
    """
    ctx = _Context(harvester, decode, top_k, shown)
    step = chunk_size or _chunk_size(harvester)
    for c0 in range(start, harvester.n_components, step):
        with _gc_paused():
            records = _chunk(ctx, c0, min(harvester.n_components, c0 + step))
        yield from records


def finalize_heldout(
    harvester: Harvester,
    decode: Callable[[int], str],
    shown: int,
    start: int = 0,
    chunk_size: int | None = None,
) -> Iterator[HeldOutData]:
    """Yield one `HeldOutData` per component in layout order (as `finalize`, dead ones too):
    its sampled firings beyond the `shown` ones, its verified silent windows, and its hard
    negatives (silent windows where a co-firing partner fires) with their partners."""
    decoder = _Decoder(decode)
    keys = [component_key(m, i) for m, n in harvester.layout for i in range(n)]
    step = chunk_size or _chunk_size(harvester)
    with torch.no_grad():
        for c0 in range(start, harvester.n_components, step):
            c1 = min(harvester.n_components, c0 + step)
            with _gc_paused():
                held = _heldout(harvester, c0, c1, decoder, shown, keys)
                records = [
                    HeldOutData(keys[c], a, n, hard_non_activating=hn, hard_partners=hp)
                    for c, (a, n, hn, hp) in zip(range(c0, c1), held, strict=True)
                ]
            yield from records


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a chunk's records are built.

    A chunk creates millions of small lists and tuples, none of them in a reference cycle. Each one
    counts towards the next collection, and full collections rescan every live object, so with the
    collector running, building records took a quarter of finalize. Reference counting still frees
    everything; the consumer of the records runs with the collector as it was.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
