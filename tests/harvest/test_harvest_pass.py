"""The harvest pass as a library, without the daemon: callbacks, stop, resume, re-emission."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest

from autointerp.errors import UserError
from autointerp.files import read_jsonl
from autointerp.harvest import HarvestPass, HarvestProgress
from autointerp.harvest.config import HarvestOptions, harvest_config, reconcile_config
from autointerp.schemas import ComponentData
from autointerp.store import RunDir, RunLock, StateFile
from tests.daemon.tiny_source import LAYOUT, TinySource

N_BATCHES = 6


def _pass(
    run: RunDir,
    source: TinySource,
    stop: threading.Event,
    progress: list[HarvestProgress],
    **kwargs: object,
) -> HarvestPass:
    config = harvest_config(source, HarvestOptions(n_batches=N_BATCHES))
    reconcile_config(run, config, force_new=False)
    kwargs.setdefault("on_progress", progress.append)
    return HarvestPass(
        source,
        config,
        run,
        StateFile(run),
        checkpoint_every_s=0.0,
        stop=stop,
        **kwargs,  # type: ignore[arg-type]
    )


def _lines(run: RunDir) -> list[bytes]:
    records, report = read_jsonl(run.components_path, ComponentData)
    assert not report.bad_lines and not report.torn_tail
    return [msgspec.json.encode(r) for r in records]


def test_a_whole_pass_emits_every_component_and_reports_progress(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    emitted: list[str] = []
    progress: list[HarvestProgress] = []
    with RunLock(run):
        harvest = _pass(run, TinySource(), threading.Event(), progress)
        harvest.run(lambda c: emitted.append(c.component_key) or True)
    keys = [f"{m}:{i}" for m, n in LAYOUT for i in range(n)]
    assert emitted == keys
    assert [p.batches_done for p in progress if p.phase == "harvest"][-1] == N_BATCHES
    last = progress[-1]
    assert last.phase == "label" and last.components_written == len(keys)
    assert last.alive_total == len(keys) - 1  # the tiny source's one dead component
    assert StateFile(run).get().phase == "label"


def test_stop_then_resume_gives_the_uninterrupted_records(tmp_path: Path) -> None:
    reference = RunDir(tmp_path / "reference")
    with RunLock(reference):
        _pass(reference, TinySource(), threading.Event(), []).run()

    run = RunDir(tmp_path / "run")
    stop = threading.Event()
    seen: list[HarvestProgress] = []

    def stop_at_batch_3(progress: HarvestProgress) -> None:
        seen.append(progress)
        if progress.batches_done == 3:
            stop.set()

    with RunLock(run):
        _pass(run, TinySource(), stop, [], on_progress=stop_at_batch_3).run()
        assert StateFile(run).get().batches_done == 3  # checkpointed when stopped
        assert not run.components_path.exists()
        emitted: list[str] = []
        again: list[HarvestProgress] = []
        _pass(run, TinySource(), threading.Event(), again).run(
            lambda c: emitted.append(c.component_key) or True
        )
    assert again[-1].resumed_from_batch == 3
    assert _lines(run) == _lines(reference)
    assert len(emitted) == sum(n for _, n in LAYOUT)


def test_a_finished_pass_emits_again_only_what_the_caller_still_wants(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with RunLock(run):
        _pass(run, TinySource(), threading.Event(), []).run()
        wanted = {"layers.0.mlp:2", "layers.1.mlp:0", TinySource().dead_key}
        emitted: list[str] = []
        _pass(run, TinySource(), threading.Event(), [], emit_written=wanted.__contains__).run(
            lambda c: emitted.append(c.component_key) or True
        )
    assert emitted == ["layers.0.mlp:2", "layers.1.mlp:0"]  # dead components are never emitted


def test_a_context_longer_than_the_model_reads_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    source = TinySource()
    source.max_context = 16
    with pytest.raises(UserError, match="reads at most 16 tokens"):
        harvest_config(source, HarvestOptions(context_length=17))
    assert harvest_config(source, HarvestOptions()).context_length == 16


def test_a_run_that_harvested_nothing_takes_a_new_configuration(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    source = TinySource()
    reconcile_config(run, harvest_config(source, HarvestOptions(n_batches=4)), force_new=False)
    new = harvest_config(source, HarvestOptions(n_batches=5))
    assert reconcile_config(run, new, force_new=False) is None  # no refusal, nothing moved
    with RunLock(run):
        _pass(run, source, threading.Event(), []).run()  # now it has data: 6 batches
    with pytest.raises(UserError, match="n_batches: 6 → 5"):
        reconcile_config(run, new, force_new=False)
