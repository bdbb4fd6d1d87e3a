"""Held-out data for scoring: firings disjoint from the shown examples, and silent windows that
truly are silent (checked against the source's own CI, recomputed), kept exactly across a resume."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import torch

from autointerp.files import read_jsonl
from autointerp.harvest import HarvestPass
from autointerp.harvest.config import HarvestOptions, harvest_config, reconcile_config
from autointerp.harvest.examples import EMPTY_KEY
from autointerp.harvest.negatives import CANDIDATES_PER_BATCH, SEED_OFFSET
from autointerp.schemas import ComponentData, HeldOutData
from autointerp.store import RunDir, RunLock, StateFile
from tests.daemon.tiny_source import TinySource

N_BATCHES = 6
OPTIONS = HarvestOptions(
    n_batches=N_BATCHES,
    examples_per_component=4,
    heldout_per_component=6,
    negatives_per_component=5,
    context_tokens=3,
)


def _harvest(run: RunDir, stop_at: int | None = None) -> None:
    source = TinySource()
    config = harvest_config(source, OPTIONS)
    stop = threading.Event()

    def on_progress(progress: object) -> None:
        if stop_at is not None and getattr(progress, "batches_done", 0) == stop_at:
            stop.set()

    with RunLock(run):
        reconcile_config(run, config, force_new=False)
        HarvestPass(
            source, config, run, StateFile(run), checkpoint_every_s=0.0, stop=stop,
            on_progress=on_progress,
        ).run()  # fmt: skip


def _records(run: RunDir) -> tuple[list[ComponentData], list[HeldOutData]]:
    comps, r1 = read_jsonl(run.components_path, ComponentData)
    held, r2 = read_jsonl(run.heldout_path, HeldOutData)
    assert not (r1.bad_lines or r1.torn_tail or r2.bad_lines or r2.torn_tail)
    return comps, held


def _stream_ci(source: TinySource, batch: int, context: int) -> torch.Tensor:
    """The CI of the whole harvested stream, recomputed from the source: [positions, C]."""
    rows = []
    for tokens in list(source.batches(batch, context))[:N_BATCHES]:
        ci, _ = source.step(tokens)
        rows.append(ci.reshape(-1, ci.shape[-1]))
    return torch.cat(rows)


def test_held_out_firings_are_disjoint_from_the_shown_ones_and_silent_windows_are_silent(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path / "run")
    _harvest(run)
    comps, held = _records(run)
    by_key = {h.component_key: h for h in held}
    alive = [c for c in comps if c.firing_count > 0]
    assert set(by_key) == {c.component_key for c in alive}  # one line per alive component
    source = TinySource()
    cfg = harvest_config(source, OPTIONS)
    ci = _stream_ci(source, cfg.batch_size, cfg.context_length)
    index = {c.component_key: i for i, c in enumerate(comps)}
    w = cfg.context_tokens_per_side
    # The tiny model's alive components fire on 31-64% of tokens, so a 7-token window is rarely
    # silent for the busiest; most still get their five.
    full = sum(len(by_key[c.component_key].non_activating) == 5 for c in alive)
    assert full >= len(alive) // 2, full
    for comp in alive:
        h = by_key[comp.component_key]
        shown = {e.stream_pos for e in comp.activation_examples}
        withheld = {e.stream_pos for e in h.activating}
        assert len(comp.activation_examples) == min(4, comp.firing_count)
        assert len(h.activating) == min(6, comp.firing_count - len(shown))
        assert not shown & withheld and len(withheld) == len(h.activating)
        c = index[comp.component_key]
        for e in h.activating:
            assert ci[e.stream_pos, c] > 0 and e.active_ci == e.ci_values[w] > 0
        for e in h.non_activating:
            assert all(v <= 0 for v in e.ci_values)  # as stored ...
            seq = e.stream_pos // cfg.context_length
            lo = max(seq * cfg.context_length, e.stream_pos - w)
            hi = min((seq + 1) * cfg.context_length, e.stream_pos + w + 1)
            assert bool((ci[lo:hi, c] <= 0).all())  # ... and in the source's own CI


def test_silent_windows_are_the_bottom_k_of_the_silent_candidates(tmp_path: Path) -> None:
    """A slow reference replays the sampler's draws and keeps each component's k smallest keys
    among the candidate windows where it is silent."""
    run = RunDir(tmp_path / "run")
    _harvest(run)
    comps, held = _records(run)
    source = TinySource()
    cfg = harvest_config(source, OPTIONS)
    ci = _stream_ci(source, cfg.batch_size, cfg.context_length)
    per_batch = cfg.batch_size * cfg.context_length
    g = torch.Generator().manual_seed(cfg.seed + SEED_OFFSET)
    w, length = cfg.context_tokens_per_side, cfg.context_length
    candidates: dict[int, list[tuple[int, int]]] = {c: [] for c in range(len(comps))}
    for b in range(N_BATCHES):
        m = min(CANDIDATES_PER_BATCH, per_batch)
        centres = torch.randperm(per_batch, generator=g)[:m].tolist()
        keys = torch.randint(0, EMPTY_KEY, (m, len(comps)), generator=g).tolist()
        for j, p in enumerate(centres):
            seq = p // length
            lo, hi = max(seq * length, p - w), min((seq + 1) * length, p + w + 1)
            window = ci[b * per_batch + lo : b * per_batch + hi]
            for c in range(len(comps)):
                if bool((window[:, c] <= 0).all()):
                    candidates[c].append((keys[j][c], b * per_batch + p))
    by_key = {h.component_key: h for h in held}
    for c, comp in enumerate(comps):
        if comp.component_key not in by_key:
            continue
        want = sorted(candidates[c])[: cfg.negatives_per_component]
        got = by_key[comp.component_key].non_activating
        assert [e.stream_pos for e in got] == [p for _, p in want], comp.component_key


def test_a_resumed_pass_writes_the_same_held_out_lines(tmp_path: Path) -> None:
    whole, resumed = RunDir(tmp_path / "whole"), RunDir(tmp_path / "resumed")
    _harvest(whole)
    _harvest(resumed, stop_at=3)
    assert not resumed.heldout_path.exists()
    _harvest(resumed)

    def lines(run: RunDir) -> list[bytes]:
        return [msgspec.json.encode(h) for h in _records(run)[1]]

    assert lines(resumed) == lines(whole)
    assert [msgspec.json.encode(c) for c in _records(resumed)[0]] == [
        msgspec.json.encode(c) for c in _records(whole)[0]
    ]
