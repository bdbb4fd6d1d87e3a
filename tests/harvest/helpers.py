"""Streams of synthetic SPD-like batches, and comparison of engine output with the reference."""

from __future__ import annotations

import math

import torch

from autointerp.harvest import Harvester, finalize
from autointerp.harvest.harvester import OUTPUT_TILE
from autointerp.schemas import ComponentData
from tests.harvest.reference import ReferenceAccumulator, ReferenceExamples, reference_components

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def decode(token_id: int) -> str:
    return f"t{token_id}"


def make_stream(
    seed: int,
    n_components: int,
    vocab: int,
    n_batches: int,
    batch: int,
    seq: int,
    threshold: float,
    fire_rate: float = 0.3,
    dead_fraction: float = 0.2,
) -> list[Batch]:
    """Batches with CI mostly exactly 0, some exactly 1.0, some exactly at the threshold, tiny ones
    (3e-8), and a fraction of components that never exceed the threshold."""
    g = torch.Generator().manual_seed(seed)
    dead = torch.rand(n_components, generator=g) < dead_fraction
    out = []
    for _ in range(n_batches):
        tokens = torch.randint(0, vocab, (batch, seq), generator=g)
        u = torch.rand(batch, seq, n_components, generator=g)
        value = torch.rand(batch, seq, n_components, generator=g)
        pick = torch.rand(batch, seq, n_components, generator=g)
        firing = torch.where(pick < 0.2, 1.0, torch.where(pick < 0.3, 3e-8, value))
        ci = torch.where(u < fire_rate, firing, 0.0)
        ci = torch.where((u > 0.9) & (u < 0.95), threshold, ci)
        ci[..., dead] = torch.where(ci[..., dead] > threshold, threshold, ci[..., dead])
        logits = torch.randn(batch, seq, vocab, generator=g) * 3
        probs = torch.softmax(logits, dim=-1)
        out.append((tokens, ci.float(), probs.float()))
    return out


def harvest(stream: list[Batch], h: Harvester) -> Harvester:
    for tokens, ci, probs in stream:
        h.update(tokens, ci, probs)
    return h


def reference(
    stream: list[Batch],
    layout: list[tuple[str, int]],
    vocab: int,
    threshold: float,
    k: int,
    window: int,
    seed: int,
    top_k: int,
    block: int | None = None,
) -> list[ComponentData]:
    c = sum(n for _, n in layout)
    acc = ReferenceAccumulator(c, vocab, threshold)
    ex = ReferenceExamples(c, k, window, threshold, seed)
    if block is not None:
        ex.block = block
    for tokens, ci, probs in stream:
        acc.update(tokens, ci, probs)
        ex.update(tokens, ci)
    return reference_components(layout, acc, ex, decode, top_k)


def fast(
    stream: list[Batch],
    layout: list[tuple[str, int]],
    vocab: int,
    threshold: float,
    k: int,
    window: int,
    seed: int,
    top_k: int,
    block: int | None = None,
    device: str = "cpu",
) -> list[ComponentData]:
    # With small blocks, also the narrowest vocabulary tiles: most blocks and chunks, many tiles.
    tile = OUTPUT_TILE if block is None else 2
    h = Harvester(layout, vocab, threshold, k, window, device, seed, output_tile=tile)
    if block is not None:
        h.block_positions = block
        h.chunk_entries = block * 7
    return list(finalize(harvest(stream, h), decode, top_k=top_k))


def _close(a: float, b: float, tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def assert_ranked_equal(
    got: list[tuple[str, float]], want: list[tuple[str, float]], where: str, exact: bool
) -> None:
    """Same length, same scores; same names, except among near-equal float scores if not exact."""
    assert len(got) == len(want), f"{where}: {got} != {want}"
    for (_, gs), (_, ws) in zip(got, want, strict=True):
        assert _close(gs, ws, 1e-7), f"{where}: {got} != {want}"
    if exact:
        assert [n for n, _ in got] == [n for n, _ in want], f"{where}: {got} != {want}"
        return
    scores = [s for _, s in want]
    for i, ((gn, _), (wn, ws)) in enumerate(zip(got, want, strict=True)):
        tied = any(_close(ws, s, 1e-7) for j, s in enumerate(scores) if j != i)
        if not tied and i != len(want) - 1:
            assert gn == wn, f"{where}: {got} != {want}"


def assert_components_equal(got: list[ComponentData], want: list[ComponentData]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        key = w.component_key
        assert (g.component_key, g.layer, g.component_idx) == (key, w.layer, w.component_idx)
        assert g.firing_count == w.firing_count, key
        assert _close(g.firing_density, w.firing_density), key
        assert _close(g.mean_ci, w.mean_ci, 1e-7), key
        for name in ("top_precision", "top_recall", "top_pmi"):
            assert_ranked_equal(
                getattr(g.input_token_stats, name),
                getattr(w.input_token_stats, name),
                f"{key} input {name}",
                exact=True,
            )
            assert_ranked_equal(
                getattr(g.output_token_stats, name),
                getattr(w.output_token_stats, name),
                f"{key} output {name}",
                exact=False,
            )
        for name in ("precision", "recall", "pmi", "bottom_pmi"):
            assert_ranked_equal(
                getattr(g.correlations, name),
                getattr(w.correlations, name),
                f"{key} correlations {name}",
                exact=True,
            )
        assert g.activation_examples == w.activation_examples, key
