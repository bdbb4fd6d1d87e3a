"""Turn accumulators into `ComponentData` records, streaming, in vectorised chunks on the device.

Scores are computed for a chunk of components at once; only the final top-k lists go to Python.
PMI is ranked by its argument `co·N / (f·T)` (log is monotone) and logged afterwards, so ties are
decided on exactly computed ratios. Lists contain only pairs with co > 0.
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


class _Decoder:
    """`decode` with a cache: each distinct token id is decoded once."""

    def __init__(self, decode: Callable[[int], str]) -> None:
        self._decode = decode
        self._cache: dict[int, str] = {PAD_ID: PAD_TOKEN}

    def __call__(self, token_id: int) -> str:
        text = self._cache.get(token_id)
        if text is None:
            text = self._cache[token_id] = self._decode(token_id)
        return text


Ranked = list[list[tuple[int, float]]]


def _ranked(score: torch.Tensor, valid: torch.Tensor, k: int, log: bool = False) -> Ranked:
    cols, vals, present = topk_rows(score, valid, k)
    if log:
        vals = torch.log(vals.abs())
    rows = []
    for c_row, v_row, p_row in zip(cols.tolist(), vals.tolist(), present.tolist(), strict=True):
        rows.append([(c, v) for c, v, p in zip(c_row, v_row, p_row, strict=True) if p])
    return rows


def _stats(
    co: torch.Tensor, f: torch.Tensor, t: torch.Tensor, n: float, k: int, valid: torch.Tensor
) -> list[Ranked]:
    """(precision, recall, pmi) rankings of a chunk: `co` [R, M], `f` [R, 1], `t` [1, M]."""
    precision = _ranked(co / t, valid, k)
    recall = _ranked(co / f, valid, k)
    pmi = _ranked((co * n) / (f * t), valid, k, log=True)
    return [precision, recall, pmi]


def _examples(h: Harvester, c0: int, c1: int, decode: _Decoder) -> list[list[ActivationExample]]:
    ex = h.examples
    keys = ex.keys[c0:c1]
    w = h.context_tokens_per_side
    active = ex.ci[c0:c1, :, w].to(torch.float64)
    used = keys != EMPTY_KEY
    rank_ci = torch.where(used, -active, float("inf"))
    # Best first: CI descending, then key ascending; empty slots last.
    order = torch.argsort(keys, dim=1, stable=True)
    order = order.gather(1, torch.argsort(rank_ci.gather(1, order), dim=1, stable=True))
    tokens = ex.tokens[c0:c1].gather(1, order[:, :, None].expand(-1, -1, ex.tokens.shape[2]))
    ci = ex.ci[c0:c1].gather(1, order[:, :, None].expand(-1, -1, ex.ci.shape[2]))
    n_used = used.sum(1).tolist()
    out = []
    for n_ex, tok_rows, ci_rows in zip(n_used, tokens.tolist(), ci.tolist(), strict=True):
        out.append(
            [
                ActivationExample(
                    tokens=[decode(t) for t in tok_row],
                    ci_values=[finite(x) for x in ci_row],
                    active_pos=w,
                    active_ci=finite(ci_row[w]),
                )
                for tok_row, ci_row in zip(tok_rows[:n_ex], ci_rows[:n_ex], strict=True)
            ]
        )
    return out


def _named(ranked: list[tuple[int, float]], name: Callable[[int], str]) -> list[tuple[str, float]]:
    return [(name(i), finite(score)) for i, score in ranked]


def _token_stats(stats: list[Ranked], j: int, decode: _Decoder) -> TokenStats:
    precision, recall, pmi = stats
    return TokenStats(
        top_precision=_named(precision[j], decode),
        top_recall=_named(recall[j], decode),
        top_pmi=_named(pmi[j], decode),
    )


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
    cached = _Decoder(decode)
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
            input_stats = _stats(co, f, t_in, n, top_k, co > 0)
            co = h.output_co[c0:c1]
            output_stats = _stats(co, f, t_out, n, top_k, co > 0)
            co = h.cooc_rows(c0, c1).to(torch.float64)
            valid = co > 0
            valid[torch.arange(c1 - c0), torch.arange(c0, c1)] = False
            precision, recall, pmi = _stats(co, f, f_all[None], n, top_k, valid)
            ratio = (co * n) / (f * f_all[None])
            bottom = _ranked(-ratio, valid, top_k, log=True)
            examples = _examples(h, c0, c1, cached)
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
                    input_token_stats=_token_stats(input_stats, j, cached),
                    output_token_stats=_token_stats(output_stats, j, cached),
                    correlations=ComponentCorrelations(
                        precision=_named(precision[j], keys.__getitem__),
                        recall=_named(recall[j], keys.__getitem__),
                        pmi=_named(pmi[j], keys.__getitem__),
                        bottom_pmi=_named(bottom[j], keys.__getitem__),
                    ),
                    firing_count=counts[j],
                    firing_density=finite(counts[j] / n) if n else 0.0,
                )
