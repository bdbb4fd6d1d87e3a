"""A slow, obvious reference harvest: dense one-hot float64 tables, per-component Python loops,
and a Python bottom-k over a flat list of every firing.

It draws example keys in the engine's documented order (per batch, per balanced block of positions,
the block's firings sorted by component then position, one `randint` call per block on a generator
seeded like the engine's), so that the same keys pick the same examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from autointerp.harvest.examples import EMPTY_KEY
from autointerp.harvest.harvester import block_positions
from autointerp.schemas import (
    PAD_TOKEN,
    ActivationExample,
    ComponentCorrelations,
    ComponentData,
    TokenStats,
    component_key,
)


class ReferenceAccumulator:
    """Dense accumulation: one-hot [P, V] inputs and full mask matmuls, all in float64."""

    def __init__(self, n_components: int, vocab_size: int, ci_threshold: float) -> None:
        c, v = n_components, vocab_size
        self.c, self.v, self.threshold = c, v, ci_threshold
        self.n_tokens = 0
        self.firing = torch.zeros(c, dtype=torch.float64)
        self.ci_sum = torch.zeros(c, dtype=torch.float64)
        self.token_count = torch.zeros(v, dtype=torch.float64)
        self.output_mass = torch.zeros(v, dtype=torch.float64)
        self.input_co = torch.zeros(c, v, dtype=torch.float64)
        self.output_co = torch.zeros(c, v, dtype=torch.float64)
        self.cooc = torch.zeros(c, c, dtype=torch.float64)

    def update(self, tokens: torch.Tensor, ci: torch.Tensor, probs: torch.Tensor) -> None:
        p = tokens.numel()
        mask = (ci.reshape(p, self.c) > self.threshold).to(torch.float64)
        onehot = torch.nn.functional.one_hot(tokens.reshape(p), self.v).to(torch.float64)
        probs64 = probs.reshape(p, self.v).to(torch.float64)
        self.n_tokens += p
        self.firing += mask.sum(0)
        self.ci_sum += ci.reshape(p, self.c).to(torch.float64).sum(0)
        self.token_count += onehot.sum(0)
        self.output_mass += probs64.sum(0)
        self.input_co += mask.T @ onehot
        self.output_co += mask.T @ probs64
        self.cooc += mask.T @ mask


class ReferenceExamples:
    """Every firing with its key and window in one flat list; bottom-k by (key, position)."""

    def __init__(self, n_components: int, k: int, window: int, threshold: float, seed: int) -> None:
        self.c, self.k, self.w, self.threshold = n_components, k, window, threshold
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.block = block_positions(n_components)
        self.n_tokens = 0
        self.firings: list[tuple[int, int, int, list[int], list[float]]] = []

    def update(self, tokens: torch.Tensor, ci: torch.Tensor) -> None:
        b, s = tokens.shape
        flat_tokens = tokens.reshape(-1).tolist()
        flat_ci = ci.reshape(b * s, self.c)
        n_blocks = -(-(b * s) // self.block)
        block = -(-(b * s) // n_blocks)  # the engine's balanced blocks
        for p0 in range(0, b * s, block):
            p1 = min(b * s, p0 + block)
            pairs = []
            for comp in range(self.c):
                for pos in range(p0, p1):
                    if float(flat_ci[pos, comp]) > self.threshold:
                        pairs.append((comp, pos))
            if not pairs:
                continue
            keys = torch.randint(0, EMPTY_KEY, (len(pairs),), generator=self.generator).tolist()
            for (comp, pos), key in zip(pairs, keys, strict=True):
                seq_start = pos - pos % s
                win_tokens, win_ci = [], []
                for off in range(-self.w, self.w + 1):
                    q = pos % s + off
                    if 0 <= q < s:
                        win_tokens.append(flat_tokens[seq_start + q])
                        win_ci.append(float(flat_ci[seq_start + q, comp]))
                    else:
                        win_tokens.append(-1)
                        win_ci.append(0.0)
                self.firings.append((comp, key, self.n_tokens + pos, win_tokens, win_ci))
        self.n_tokens += b * s

    def chosen(self, comp: int) -> list[tuple[int, int, list[int], list[float]]]:
        mine = sorted((f for f in self.firings if f[0] == comp), key=lambda f: (f[1], f[2]))
        picked = mine[: self.k]
        picked.sort(key=lambda f: (-f[4][self.w], f[1]))
        return [(key, gpos, toks, cis) for _, key, gpos, toks, cis in picked]


def ranked(scores: list[tuple[int, float]], k: int, descending: bool = True) -> list[int]:
    """Indices of the k best scores; ties by index ascending."""
    sign = -1.0 if descending else 1.0
    return [i for i, _ in sorted(scores, key=lambda item: (sign * item[1], item[0]))[:k]]


def three_stats(
    co: list[float], f: float, totals: list[float], n: float, k: int, skip: int = -1
) -> tuple[list[tuple[int, float]], ...]:
    present = [(j, x) for j, x in enumerate(co) if x > 0 and j != skip]
    precision = [(j, x / totals[j]) for j, x in present]
    recall = [(j, x / f) for j, x in present]
    ratio = [(j, (x * n) / (f * totals[j])) for j, x in present]
    p = dict(precision)
    r = dict(recall)
    q = dict(ratio)
    return (
        [(j, p[j]) for j in ranked(precision, k)],
        [(j, r[j]) for j in ranked(recall, k)],
        [(j, math.log(q[j])) for j in ranked(ratio, k)],
        [(j, math.log(q[j])) for j in ranked(ratio, k, descending=False)],
    )


def reference_components(
    layout: list[tuple[str, int]],
    acc: ReferenceAccumulator,
    examples: ReferenceExamples | None,
    decode: Callable[[int], str],
    top_k: int,
    only: range | None = None,
) -> list[ComponentData]:
    """One ComponentData per component, each built by its own Python loop."""
    keys = [component_key(m, i) for m, n in layout for i in range(n)]
    where = [(m, i) for m, n in layout for i in range(n)]
    n = float(acc.n_tokens)
    firing = acc.firing.tolist()
    t_in, t_out = acc.token_count.tolist(), acc.output_mass.tolist()

    def tok(i: int) -> str:
        return PAD_TOKEN if i < 0 else decode(i)

    out = []
    for c in only if only is not None else range(acc.c):
        f = firing[c]
        ip, ir, ipmi, _ = three_stats(acc.input_co[c].tolist(), f, t_in, n, top_k)
        op, orc, opmi, _ = three_stats(acc.output_co[c].tolist(), f, t_out, n, top_k)
        cp, cr, cpmi, cbottom = three_stats(acc.cooc[c].tolist(), f, firing, n, top_k, skip=c)
        chosen = examples.chosen(c) if examples is not None else []
        out.append(
            ComponentData(
                component_key=keys[c],
                layer=where[c][0],
                component_idx=where[c][1],
                mean_ci=acc.ci_sum[c].item() / n if n else 0.0,
                activation_examples=[
                    ActivationExample(
                        tokens=[tok(t) for t in toks],
                        ci_values=cis,
                        active_pos=examples.w,
                        active_ci=cis[examples.w],
                        stream_pos=gpos,
                    )
                    for _, gpos, toks, cis in chosen
                ]
                if examples is not None
                else [],
                input_token_stats=TokenStats(
                    [(tok(j), s) for j, s in ip],
                    [(tok(j), s) for j, s in ir],
                    [(tok(j), s) for j, s in ipmi],
                ),
                output_token_stats=TokenStats(
                    [(tok(j), s) for j, s in op],
                    [(tok(j), s) for j, s in orc],
                    [(tok(j), s) for j, s in opmi],
                ),
                correlations=ComponentCorrelations(
                    [(keys[j], s) for j, s in cp],
                    [(keys[j], s) for j, s in cr],
                    [(keys[j], s) for j, s in cpmi],
                    [(keys[j], s) for j, s in cbottom],
                ),
                firing_count=int(f),
                firing_density=f / n if n else 0.0,
            )
        )
    return out


class ReferenceHardNegatives:
    """Hard negatives by the definition, one position and one component at a time.

    Co-firing counts are Python integers, counted pair by pair at each position. After batch b
    (b = 1, 2, 4, ..., 256, then every 256th), before the next batch, each component's partners
    become the 8 others that co-fired with it (count > 0) with the largest Jaccard index
    co / (f_c + f_d - co), compared as floor(co / (f_c + f_d) * 2^32), which ranks the same
    (equal: lower id first). A candidate
    qualifies for c when c's CI is at or below the threshold at every position of its window
    (cut at the sequence's edges) and some partner fires at its centre; it records the partner
    with the largest CI there (the earlier partner on ties). The draws follow the engine's
    documented order, from a generator seeded with seed + `seed_offset`: the batch's candidate
    centres (`randperm`), then one key per qualifying (candidate, component) pair in order of
    component and candidate."""

    def __init__(
        self,
        n_components: int,
        k: int,
        window: int,
        threshold: float,
        seed: int,
        seed_offset: int,
        candidates: int,
        partners: int = 8,
    ) -> None:
        self.c, self.k, self.w, self.threshold = n_components, k, window, threshold
        self.candidates, self.m = candidates, partners
        self.generator = torch.Generator().manual_seed(seed + seed_offset)
        self.cooc = [[0] * n_components for _ in range(n_components)]
        self.partners: list[list[int]] = [[] for _ in range(n_components)]
        self.n_tokens = 0
        self.n_batches = 0
        self.qualifying: list[list[tuple[int, int, int, list[int], list[float]]]] = [
            [] for _ in range(n_components)
        ]
        """Per component: (key, stream position, partner, window tokens, window CI)."""

    def jaccard_key(self, c: int, d: int) -> int:
        co = self.cooc[c][d]
        return math.floor(co * 2**32 / (self.cooc[c][c] + self.cooc[d][d]))

    @staticmethod
    def refresh_due(batches: int) -> bool:
        powers = {2**i for i in range(9)}  # 1 .. 256
        return batches in powers or (batches > 256 and batches % 256 == 0)

    def update(self, tokens: torch.Tensor, ci: torch.Tensor) -> None:
        b, s = tokens.shape
        n_pos = b * s
        if self.refresh_due(self.n_batches):
            for c in range(self.c):
                others = [d for d in range(self.c) if d != c and self.cooc[c][d] > 0]
                others.sort(key=lambda d, c=c: (-self.jaccard_key(c, d), d))
                self.partners[c] = others[: self.m]
        flat_tokens = tokens.reshape(-1).tolist()
        flat_ci = ci.reshape(n_pos, self.c).tolist()
        m = min(self.candidates, n_pos)
        centres = torch.randperm(n_pos, generator=self.generator)[:m].tolist()
        found = []  # (component, entry without its key), by component and then candidate
        for c in range(self.c):
            for centre in centres:
                seq_start = centre - centre % s
                inside = [
                    seq_start + centre % s + off
                    for off in range(-self.w, self.w + 1)
                    if 0 <= centre % s + off < s
                ]
                if any(flat_ci[p][c] > self.threshold for p in inside):
                    continue
                firing = [d for d in self.partners[c] if flat_ci[centre][d] > self.threshold]
                if not firing:
                    continue
                partner = max(firing, key=lambda d: flat_ci[centre][d])  # the first on ties
                win_tokens, win_ci = [], []
                for off in range(-self.w, self.w + 1):
                    q = centre % s + off
                    if 0 <= q < s:
                        win_tokens.append(flat_tokens[seq_start + q])
                        win_ci.append(flat_ci[seq_start + q][c])
                    else:
                        win_tokens.append(-1)
                        win_ci.append(0.0)
                found.append((c, self.n_tokens + centre, partner, win_tokens, win_ci))
        if found:
            keys = torch.randint(0, EMPTY_KEY, (len(found),), generator=self.generator).tolist()
            for key, (c, *entry) in zip(keys, found, strict=True):
                self.qualifying[c].append((key, *entry))  # type: ignore[arg-type]
        for row in flat_ci:
            fired = [c for c in range(self.c) if row[c] > self.threshold]
            for c in fired:
                for d in fired:
                    self.cooc[c][d] += 1
        self.n_tokens += n_pos
        self.n_batches += 1

    def chosen(self, comp: int) -> list[tuple[int, int, int, list[int], list[float]]]:
        """The component's k qualifying windows with the smallest (key, position)."""
        return sorted(self.qualifying[comp], key=lambda e: (e[0], e[1]))[: self.k]
