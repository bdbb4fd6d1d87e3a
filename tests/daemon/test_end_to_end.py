"""The whole daemon on the tiny CPU source with the offline labeller, in-process."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from autointerp.cli import daemon_main
from tests.daemon.runner import components, daemon_args, results, run_inprocess, state, tiny_run
from tests.daemon.tiny_source import LAYOUT, TinySource


def test_daemon_harvests_finalizes_and_labels_every_alive_component(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline") == 0
    run = tiny_run(tmp_path)
    comps = components(run)
    assert [c.component_key for c in comps] == [f"{m}:{i}" for m, n in LAYOUT for i in range(n)]
    dead = TinySource().dead_key
    alive = {c.component_key for c in comps if c.firing_count > 0}
    assert dead not in alive and len(alive) == len(comps) - 1
    labelled = Counter(r.component_key for r in results(run))
    assert set(labelled) == alive and set(labelled.values()) == {1}
    s = state(run)
    assert s.phase == "done" and s.batches_done == 12 and run.summary_path.exists()
    assert b"ANTHROPIC" not in run.config_path.read_bytes()


def test_labelling_starts_within_two_seconds_of_the_last_batch(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline") == 0
    run = tiny_run(tmp_path)
    first_label = min(r.timestamp for r in results(run))
    last_batch = state(run).last_batch_at
    assert last_batch is not None and 0 <= first_label - last_batch < 2.0


def test_second_start_after_done_labels_nothing_again(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline") == 0
    run = tiny_run(tmp_path)
    before = run.results_path.read_bytes()
    assert run_inprocess(tmp_path, "--labeller", "offline") == 0
    assert run.results_path.read_bytes() == before
    assert [s.phase for s in state(run).starts] == ["harvest", "done"]


def test_harvest_only_writes_no_labels(tmp_path: Path) -> None:
    argv = daemon_args(tmp_path, "--labeller", "none")[1:]  # `autointerp-daemon <source> ...`
    assert daemon_main(argv) == 0
    run = tiny_run(tmp_path)
    assert len(components(run)) == sum(n for _, n in LAYOUT)
    assert not run.results_path.exists() or run.results_path.stat().st_size == 0
    assert state(run).phase == "label"
