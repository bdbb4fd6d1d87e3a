"""A compact description of what the harvest saw: alive/dead counts and firing distribution."""

from __future__ import annotations

import math

import torch

from autointerp.harvest.examples import EMPTY_KEY
from autointerp.harvest.harvester import Harvester
from autointerp.schemas import HarvestSummary, finite

QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def _log_histogram(counts: torch.Tensor) -> tuple[list[float], list[int]]:
    """Bins at powers of two from 1 up to the largest count (alive components only)."""
    alive = counts[counts > 0].to(torch.float64)
    if alive.numel() == 0:
        return [], []
    top = max(1, math.ceil(math.log2(float(alive.max()) + 1)))
    edges = [float(2**i) for i in range(top + 1)]
    bins = torch.bucketize(alive, torch.tensor(edges, dtype=torch.float64), right=True) - 1
    hist = torch.bincount(bins.clamp(0, len(edges) - 2), minlength=len(edges) - 1)
    return edges, hist.tolist()


def summarize(harvester: Harvester) -> HarvestSummary:
    h = harvester
    counts = h.firing_count.cpu()
    alive = counts > 0
    per_module_alive: dict[str, int] = {}
    offset = 0
    for module, n in h.layout:
        per_module_alive[module] = int(alive[offset : offset + n].sum())
        offset += n
    as_float = counts.to(torch.float64)
    quantiles = torch.quantile(as_float, torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
    edges, hist = _log_histogram(counts)
    full = (h.examples.keys != EMPTY_KEY).sum(1) == h.examples_per_component
    n_alive = int(alive.sum())
    return HarvestSummary(
        n_tokens=h.n_tokens,
        n_batches=h.n_batches,
        n_components=h.n_components,
        n_alive=n_alive,
        n_dead=h.n_components - n_alive,
        ci_threshold=h.ci_threshold,
        components_per_module={module: n for module, n in h.layout},
        alive_per_module=per_module_alive,
        firing_count_quantiles={
            str(q): finite(v) for q, v in zip(QUANTILES, quantiles, strict=True)
        },
        firing_count_histogram_edges=edges,
        firing_count_histogram=hist,
        mean_firings_per_token=finite(float(counts.sum()) / h.n_tokens) if h.n_tokens else 0.0,
        examples_per_component=h.examples_per_component,
        n_components_with_full_examples=int(full.sum()),
    )
