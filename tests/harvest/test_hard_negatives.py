"""Hard negatives: windows where a component's co-firing partners fire and it stays silent.

Checked against a slow reference that follows the definition position by position, against
the source's own CI recomputed (every window silent, the recorded partner firing at the centre
and among the component's partners when the window was drawn), and for exact resume, merge and
old checkpoints and configurations."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import torch

from autointerp.files import read_jsonl
from autointerp.harvest import Harvester, HarvestPass, load_checkpoint, save_checkpoint
from autointerp.harvest.config import HarvestOptions, harvest_config, reconcile_config
from autointerp.harvest.examples import EMPTY_KEY
from autointerp.harvest.hard_negatives import (
    CANDIDATES_PER_BATCH,
    NO_PARTNER,
    PARTNERS,
    SEED_OFFSET,
    refresh_due,
    top_partners,
)
from autointerp.harvest.memory import state_shapes
from autointerp.harvest.payload import state_sections
from autointerp.schemas import ComponentData, HarvestConfig, HeldOutData
from autointerp.store import RunDir, RunLock, StateFile
from tests.daemon.tiny_source import WIDE_LAYOUT, TinySource
from tests.harvest.helpers import harvest, make_stream
from tests.harvest.legacy_checkpoint import save_checkpoint_format_1
from tests.harvest.reference import ReferenceHardNegatives
from tests.harvest.same_state import assert_same_state

LAYOUT = [("a", 14), ("b", 10)]
VOCAB = 11
THRESHOLD = 0.25
WINDOW = 2


RARE = 3
"""A component that fires only twice, so it has fewer than 8 partners."""


def _stream(n_batches: int = 10, seed: int = 4) -> list[tuple[torch.Tensor, ...]]:
    """24 components firing on ~12% of positions (some exactly at the threshold: silent), four
    of them dead (2, 4, 5, 19) and one rare."""
    stream = make_stream(seed, 24, VOCAB, n_batches, 3, 16, THRESHOLD, fire_rate=0.15)
    left = 2
    for _, ci, _ in stream:
        column = ci[..., RARE].reshape(-1)
        fired = torch.nonzero(column > THRESHOLD).squeeze(1)
        column[fired[left:]] = 0.0
        left = max(0, left - fired.numel())
    return stream


def _new(hard: int = 4, seed: int = 7, negatives: int = 3) -> Harvester:
    return Harvester(
        LAYOUT,
        VOCAB,
        THRESHOLD,
        3,
        WINDOW,
        "cpu",
        seed,
        negatives_per_component=negatives,
        hard_negatives_per_component=hard,
    )


def _kept(h: Harvester, c: int) -> list[tuple[int, int, int, list[int], list[float]]]:
    """Component c's kept hard negatives as (key, position, partner, tokens, CI), by key."""
    hn = h.hard_negatives
    rows = [
        (
            int(hn.keys[c, s]),
            int(hn.gpos[c, s]),
            int(hn.partner[c, s]),
            hn.tokens[c, s].tolist(),
            hn.ci[c, s].tolist(),
        )
        for s in range(hn.k)
        if int(hn.keys[c, s]) != EMPTY_KEY
    ]
    return sorted(rows, key=lambda e: (e[0], e[1]))


def test_refresh_schedule() -> None:
    due = [b for b in range(1, 1100) if refresh_due(b)]
    assert due == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024]
    assert not refresh_due(0)


def test_partners_rank_by_jaccard_index_with_ties_to_the_lower_id() -> None:
    fired = torch.tensor([9, 4, 1000, 4, 6, 1])
    rows = torch.tensor(
        [
            # Component 0 (9 firings): itself excluded; 2 co-fires most (9 times) but fires on
            # 1000 positions (Jaccard 9/1000); 4: 5/10; 1 and 3 tie at 3/10 -> 1 first; 5: 1/9.
            [9, 3, 9, 3, 5, 1],
            [3, 4, 4, 0, 0, 0],  # component 1: 0 (3/10) before 2 (4/1000)
        ],
        dtype=torch.int32,
    )
    got = top_partners(rows, fired, 0, 4)
    assert got.tolist() == [[4, 1, 3, 5], [0, 2, NO_PARTNER, NO_PARTNER]]
    # Fewer co-firing components than partners: the rest is NO_PARTNER; row i is `first + i`.
    assert top_partners(rows[1:], fired, 1, 8).tolist() == [[0, 2] + [NO_PARTNER] * 6]


def test_the_engine_keeps_what_the_slow_reference_keeps() -> None:
    """Same qualifying windows, same keys, same partner, same window tokens and CI."""
    stream = _stream()
    h = harvest(stream, _new())
    ref = ReferenceHardNegatives(
        24, 4, WINDOW, THRESHOLD, 7, SEED_OFFSET, CANDIDATES_PER_BATCH, PARTNERS
    )
    for tokens, ci, _ in stream:
        ref.update(tokens, ci)
    assert sum(len(q) for q in ref.qualifying) > 100  # the test means something
    for c in range(24):
        want = ref.chosen(c)
        got = _kept(h, c)
        assert [e[:3] for e in got] == [e[:3] for e in want], c
        assert [e[3] for e in got] == [e[3] for e in want], c
        assert [e[4] for e in got] == [e[4] for e in want], c  # float32 values, exactly
    partners = [p + [NO_PARTNER] * (PARTNERS - len(p)) for p in ref.partners]
    assert h.hard_negatives.partners.tolist() == partners
    assert 0 < len(ref.partners[RARE]) < PARTNERS and ref.chosen(RARE)
    assert ref.partners[2] == [] and not ref.chosen(2)  # dead: no partners, no hard negatives


def test_hard_negatives_do_not_change_the_examples_or_the_silent_windows() -> None:
    stream = _stream(6)
    with_hard, without = harvest(stream, _new(hard=4)), harvest(stream, _new(hard=0))
    for name, t in with_hard.examples.tensors().items():
        assert torch.equal(t, without.examples.tensors()[name]), name
    for name, t in with_hard.negatives.tensors().items():
        assert torch.equal(t, without.negatives.tensors()[name]), name
    assert torch.equal(with_hard.cooc, without.cooc)


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path: Path) -> None:
    """Stopped after batch 5, the partner refresh after batch 8 happens after the resume."""
    stream = _stream(10)
    whole = harvest(stream, _new())
    first = harvest(stream[:5], _new())
    save_checkpoint(tmp_path, first, {"batches_done": 5})
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None
    assert_same_state(loaded[0], first)
    assert_same_state(harvest(stream[5:], loaded[0]), whole)
    assert int((whole.hard_negatives.keys != EMPTY_KEY).sum()) > 0


def test_merge_keeps_the_bottom_k_of_both_and_this_ones_partners() -> None:
    stream = _stream(8)
    a, b = harvest(stream[:4], _new(seed=1)), harvest(stream[4:], _new(seed=2))
    union = {c: _kept(a, c) + [(k, p + a.n_tokens, *rest) for k, p, *rest in _kept(b, c)]
             for c in range(24)}  # fmt: skip
    # b counted its positions from 0: its windows' stream positions move by a's tokens.
    b.hard_negatives.gpos += a.n_tokens
    partners = a.hard_negatives.partners.clone()
    a.merge(b)
    assert torch.equal(a.hard_negatives.partners, partners)
    for c in range(24):
        want = sorted(union[c], key=lambda e: (e[0], e[1]))[:4]
        assert _kept(a, c) == want, c


def test_checkpoints_and_states_from_before_hard_negatives_still_load(tmp_path: Path) -> None:
    stream = _stream(4)
    old = harvest(stream[:2], _new(hard=0))
    state = old.state_dict()
    for name in ("hard_negatives", "hard_negatives_per_component", "hard_negative_generator_state"):
        del state[name]
    save_checkpoint_format_1(tmp_path / "v1", old, {"batches_done": 2}, state=state)
    save_checkpoint(tmp_path / "v2", old, {"batches_done": 2})
    for directory in ("v1", "v2"):
        loaded = load_checkpoint(tmp_path / directory, "cpu")
        assert loaded is not None
        h = loaded[0]
        assert h.hard_negatives_per_component == 0
        assert h.hard_negatives.keys.shape == (24, 0)
        assert_same_state(harvest(stream[2:], h), harvest(stream, _new(hard=0)))


def test_state_shapes_include_the_hard_negatives() -> None:
    h = _new(hard=4)
    want = {k: (t.dtype, list(t.shape)) for k, t in state_sections(h).items()}
    got = state_shapes(LAYOUT, VOCAB, 3, WINDOW, None, "cpu", 3, 4)
    assert got == want and "hard_negatives/partners" in got


def test_old_configurations_and_held_out_lines_read_as_without_hard_negatives() -> None:
    source = TinySource()
    config = harvest_config(source, HarvestOptions())
    assert config.hard_negatives_per_component == 10  # a new run's default
    raw = msgspec.json.decode(msgspec.json.encode(config))
    del raw["hard_negatives_per_component"]
    old = msgspec.json.decode(msgspec.json.encode(raw), type=HarvestConfig)
    assert old.hard_negatives_per_component == 0
    assert harvest_config(source, HarvestOptions(), previous=old).hard_negatives_per_component == 0
    line = b'{"component_key":"m:0","activating":[],"non_activating":[]}'
    held = msgspec.json.decode(line, type=HeldOutData)
    assert held.hard_non_activating == [] and held.hard_partners == []


# ---------------------------------------------------------------- through a harvest pass

N_BATCHES = 6
OPTIONS = HarvestOptions(
    n_batches=N_BATCHES,
    examples_per_component=4,
    heldout_per_component=6,
    negatives_per_component=5,
    hard_negatives_per_component=5,
    context_tokens=3,
)


def _pass(run: RunDir, source: TinySource, stop_at: int | None = None) -> HarvestConfig:
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
    return config


def _lines(run: RunDir) -> tuple[list[ComponentData], list[HeldOutData]]:
    comps, r1 = read_jsonl(run.components_path, ComponentData)
    held, r2 = read_jsonl(run.heldout_path, HeldOutData)
    assert not (r1.bad_lines or r1.torn_tail or r2.bad_lines or r2.torn_tail)
    return comps, held


def test_every_hard_negative_is_silent_with_a_partner_firing_at_its_centre(
    tmp_path: Path,
) -> None:
    """From heldout.jsonl, against the source's CI recomputed: the component is silent over the
    window, the recorded partner fires at the centre and was among its 8 partners (the largest
    Jaccard indices of firings) as counted on the batches up to the last refresh before the
    window's batch."""
    source = TinySource(layout=WIDE_LAYOUT)
    run = RunDir(tmp_path / "run")
    cfg = _pass(run, source)
    comps, held = _lines(run)
    index = {c.component_key: i for i, c in enumerate(comps)}
    per_batch = cfg.batch_size * cfg.context_length
    batches = list(source.batches(cfg.batch_size, cfg.context_length))[:N_BATCHES]
    ci = torch.cat([source.step(t)[0].reshape(per_batch, -1) for t in batches])
    fires = (ci > cfg.ci_threshold).to(torch.int64)
    w, length = cfg.context_tokens_per_side, cfg.context_length
    n_hard = 0
    for h in held:
        c = index[h.component_key]
        comp = comps[c]
        assert len(h.hard_partners) == len(h.hard_non_activating) <= 5
        firing_positions = {e.stream_pos for e in comp.activation_examples + h.activating}
        positions = [e.stream_pos for e in h.hard_non_activating]
        assert len(set(positions)) == len(positions)
        assert not set(positions) & firing_positions
        for e, partner_key in zip(h.hard_non_activating, h.hard_partners, strict=True):
            n_hard += 1
            assert all(v <= cfg.ci_threshold for v in e.ci_values)  # as stored ...
            assert e.active_pos == w and e.active_ci == e.ci_values[w]
            seq = e.stream_pos // length
            lo = max(seq * length, e.stream_pos - w)
            hi = min((seq + 1) * length, e.stream_pos + w + 1)
            assert bool((ci[lo:hi, c] <= cfg.ci_threshold).all())  # ... and in the source
            d = index[partner_key]
            assert d != c and float(ci[e.stream_pos, d]) > cfg.ci_threshold
            batch = e.stream_pos // per_batch + 1  # the first batch has no partners yet
            refreshed = max(b for b in range(1, batch) if refresh_due(b))
            seen = fires[: refreshed * per_batch]
            co = (seen.T @ seen).tolist()

            def jaccard(x: int, c: int = c, co: list[list[int]] = co) -> float:
                return co[c][x] / (co[c][c] + co[x][x] - co[c][x]) if x != c else -1.0

            top = sorted(range(len(comps)), key=lambda x: (-jaccard(x), x))[:PARTNERS]
            assert d in top and co[c][d] > 0
    assert n_hard >= 3 * len(held)  # most alive components got several


def test_a_resumed_pass_writes_the_same_hard_negatives(tmp_path: Path) -> None:
    whole, resumed = RunDir(tmp_path / "whole"), RunDir(tmp_path / "resumed")
    _pass(whole, TinySource(layout=WIDE_LAYOUT))
    _pass(resumed, TinySource(layout=WIDE_LAYOUT), stop_at=3)
    _pass(resumed, TinySource(layout=WIDE_LAYOUT))
    a, b = _lines(whole)[1], _lines(resumed)[1]
    assert [msgspec.json.encode(h) for h in a] == [msgspec.json.encode(h) for h in b]
    assert sum(len(h.hard_non_activating) for h in a) > 0
