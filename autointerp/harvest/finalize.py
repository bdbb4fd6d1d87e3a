"""Turn accumulators into `ComponentData` records, streaming, in vectorised chunks on the device.

Scores are computed for a chunk of components at once; only the final top-k lists go to Python.
PMI is ranked by its argument `co·N / (f·T)` (log is monotone) and logged afterwards, and recall
by `co` (f is constant in a row), so ties are decided on exactly computed values. Lists contain
only pairs with co > 0, where every score is finite by construction.
"""

from __future__ import annotations

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
    TokenStats,
    component_key,
    finite,
)

CHUNK_ENTRIES = 2**24
"""Entries of one [components, vocab or components] score table per chunk."""

Ranked = list[list[tuple[int, float]]]


class _Decoder:
    """`decode` with a cache: each distinct token id is decoded once."""

    def __init__(self, decode: Callable[[int], str]) -> None:
        self._decode = decode
        self.names: dict[int, str] = {PAD_ID: PAD_TOKEN}

    def learn(self, ids: torch.Tensor) -> dict[int, str]:
        """Decode the ids not seen yet; returns the cache for plain lookups."""
        for token_id in torch.unique(ids).tolist():
            if token_id not in self.names:
                self.names[token_id] = self._decode(token_id)
        return self.names


def _ranked(
    score: torch.Tensor, valid: torch.Tensor, k: int, after: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[Ranked, torch.Tensor]:
    """Top-k (column, after(score)) per row, and the columns tensor (to decode names)."""
    cols, vals, n_present = topk_rows(score, valid, k)
    shown = after(vals)
    rows = [
        list(zip(c_row[:m], v_row[:m], strict=True))
        for c_row, v_row, m in zip(cols.tolist(), shown.tolist(), n_present.tolist(), strict=True)
    ]
    return rows, cols


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _stats(
    co: torch.Tensor, f: torch.Tensor, t: torch.Tensor, n: float, k: int, valid: torch.Tensor
) -> tuple[list[Ranked], list[torch.Tensor]]:
    """(precision, recall, pmi) of a chunk: `co` [R, M], `f` [R, 1], `t` [1, M]."""
    precision = _ranked(co / t, valid, k, _same)
    recall = _ranked(co, valid, k, lambda v: v / f)
    pmi = _ranked((co * n) / (f * t), valid, k, torch.log)
    return [precision[0], recall[0], pmi[0]], [precision[1], recall[1], pmi[1]]


def _examples(h: Harvester, c0: int, c1: int, decoder: _Decoder) -> list[list[ActivationExample]]:
    ex = h.examples
    keys = ex.keys[c0:c1]
    w = h.context_tokens_per_side
    used = keys != EMPTY_KEY
    rank_ci = torch.where(used, -ex.ci[c0:c1, :, w].to(torch.float64), float("inf"))
    # Best first: CI descending, then key ascending; empty slots last.
    order = torch.argsort(keys, dim=1, stable=True)
    order = order.gather(1, torch.argsort(rank_ci.gather(1, order), dim=1, stable=True))
    tokens = ex.tokens[c0:c1].gather(1, order[:, :, None].expand(-1, -1, ex.tokens.shape[2]))
    ci = ex.ci[c0:c1].gather(1, order[:, :, None].expand(-1, -1, ex.ci.shape[2]))
    ci = torch.nan_to_num(ci, nan=0.0, posinf=0.0, neginf=0.0)
    names = decoder.learn(ex.tokens[c0:c1][used])
    out = []
    for n_ex, tok_rows, ci_rows in zip(
        used.sum(1).tolist(), tokens.tolist(), ci.tolist(), strict=True
    ):
        out.append(
            [
                ActivationExample(
                    tokens=[names[t] for t in tok_row],
                    ci_values=ci_row,
                    active_pos=w,
                    active_ci=ci_row[w],
                )
                for tok_row, ci_row in zip(tok_rows[:n_ex], ci_rows[:n_ex], strict=True)
            ]
        )
    return out


def _named(ranked: list[tuple[int, float]], names: dict[int, str] | list[str]) -> list:
    return [(names[i], score) for i, score in ranked]


def _chunk_size(h: Harvester) -> int:
    return max(1, CHUNK_ENTRIES // max(h.vocab_size, h.n_components))


def finalize(
    harvester: Harvester,
    decode: Callable[[int], str],
    top_k: int = 20,
    start: int = 0,
    chunk_size: int | None = None,
) -> Iterator[ComponentData]:
    """Yield one `ComponentData` per component in layout order, from component `start` on.

    Dead components are included (firing_count 0, empty lists), so the number of records written
    equals the position in layout order and `start` is simply the count already written.
    """
    h = harvester
    decoder = _Decoder(decode)
    keys = [component_key(m, i) for m, n in h.layout for i in range(n)]
    where = [(m, i) for m, n in h.layout for i in range(n)]
    n = float(h.n_tokens)
    f_all = h.firing_count.to(torch.float64)
    t_in = h.token_count.to(torch.float64)[None]
    t_out = h.output_mass[None]
    step = chunk_size or _chunk_size(h)
    with torch.no_grad():
        for c0 in range(start, h.n_components, step):
            c1 = min(h.n_components, c0 + step)
            f = f_all[c0:c1, None]
            co = h.input_co[c0:c1].to(torch.float64)
            input_stats, in_cols = _stats(co, f, t_in, n, top_k, co > 0)
            co = h.output_co[c0:c1]
            output_stats, out_cols = _stats(co, f, t_out, n, top_k, co > 0)
            co = h.cooc_rows(c0, c1).to(torch.float64)
            valid = co > 0
            valid[torch.arange(c1 - c0), torch.arange(c0, c1)] = False
            corr, _ = _stats(co, f, f_all[None], n, top_k, valid)
            ratio = (co * n) / (f * f_all[None])
            bottom, _ = _ranked(-ratio, valid, top_k, lambda v: torch.log(-v))
            names = decoder.learn(torch.cat([c.flatten() for c in in_cols + out_cols]))
            examples = _examples(h, c0, c1, decoder)
            counts = h.firing_count[c0:c1].tolist()
            ci_sums = h.ci_sum[c0:c1].tolist()
            for j in range(c1 - c0):
                c = c0 + j
                module, idx = where[c]
                yield ComponentData(
                    component_key=keys[c],
                    layer=module,
                    component_idx=idx,
                    mean_ci=finite(ci_sums[j] / n) if n else 0.0,
                    activation_examples=examples[j],
                    input_token_stats=TokenStats(*(_named(s[j], names) for s in input_stats)),
                    output_token_stats=TokenStats(*(_named(s[j], names) for s in output_stats)),
                    correlations=ComponentCorrelations(
                        *(_named(s[j], keys) for s in corr), bottom_pmi=_named(bottom[j], keys)
                    ),
                    firing_count=counts[j],
                    firing_density=finite(counts[j] / n) if n else 0.0,
                )
