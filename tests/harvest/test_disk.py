"""Free disk space is checked before a harvest starts: a clear refusal (exit 2), never a full disk
at a checkpoint hours in."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from autointerp.errors import UserError
from autointerp.harvest import Harvester, save_checkpoint
from autointerp.harvest.config import HarvestOptions, harvest_config
from autointerp.harvest.disk import (
    DiskNeed,
    check_disk,
    check_free,
    checkpoint_bytes,
    components_bytes,
    disk_need,
    state_shapes,
)
from autointerp.harvest.harvester import INT32_LIMIT
from autointerp.harvest.payload import state_sections
from autointerp.schemas import HarvestConfig
from autointerp.store import RunDir, StateFile
from tests.daemon.runner import run_child, tiny_run
from tests.daemon.tiny_source import TinySource

GIB = 2**30


def _config(**options: object) -> HarvestConfig:
    return harvest_config(TinySource(), HarvestOptions(**options))  # type: ignore[arg-type]


def test_refuses_with_the_breakdown_when_the_disk_is_too_small(tmp_path: Path) -> None:
    need = DiskNeed(
        checkpoint_bytes=30 * GIB, checkpoints=60 * GIB, components=GIB, already_on_disk=0
    )
    with pytest.raises(UserError) as refused:
        check_free(need, free=40 * GIB, where=tmp_path)
    message = str(refused.value)
    assert "needs 61.00 GiB" in message and "only 40.00 GiB is free" in message
    assert "each at most 30.00 GiB" in message and str(tmp_path) in message
    assert "--data-dir" in message
    check_free(need, free=61 * GIB, where=tmp_path)  # enough: no error


def test_what_the_run_already_holds_counts_as_available(tmp_path: Path) -> None:
    need = DiskNeed(
        checkpoint_bytes=30 * GIB, checkpoints=60 * GIB, components=GIB, already_on_disk=31 * GIB
    )
    check_free(need, free=30 * GIB, where=tmp_path)


@pytest.mark.parametrize("total_tokens", [None, INT32_LIMIT + 1])
def test_state_shapes_are_the_harvesters(total_tokens: int | None) -> None:
    h = Harvester([("a", 5), ("b", 3)], 70, 0.0, 3, 2, "cpu", 0)
    if total_tokens is not None:
        h._promote_counts()
    want = {k: (t.dtype, list(t.shape)) for k, t in state_sections(h).items()}
    assert state_shapes([("a", 5), ("b", 3)], 70, 3, 2, total_tokens, "cpu") == want


def test_a_checkpoint_never_exceeds_the_estimate(tmp_path: Path) -> None:
    config = _config(n_batches=2)
    h = Harvester(
        config.layout,
        config.vocab_size,
        config.ci_threshold,
        config.examples_per_component,
        config.context_tokens_per_side,
        "cpu",
        0,
    )
    g = torch.Generator().manual_seed(0)
    for t in (h.input_co, h.cooc, h.firing_count, h.token_count):
        t.copy_(torch.randint(1, 2**31 - 1, t.shape, generator=g, dtype=t.dtype))
    h.cooc.triu_()
    for t in (h.ci_sum, h.output_mass, h.examples.ci):
        t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype))
    h.examples.keys.copy_(torch.randint(0, 2**62, h.examples.keys.shape, generator=g))
    path = save_checkpoint(tmp_path, h, {"batches_done": 2})
    assert path.stat().st_size <= checkpoint_bytes(config, "cpu")


def test_components_estimate_covers_a_real_finalized_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_child(data, "--n-batches", "3", "--labeller", "none").returncode == 0
    run = tiny_run(data)
    config = _config(n_batches=3)
    assert run.components_path.stat().st_size <= components_bytes(config)


def test_need_credits_the_current_checkpoint_and_components(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    config = _config(n_batches=2)
    fresh = disk_need(run, config, "cpu")
    assert fresh.already_on_disk == 0 and fresh.checkpoints == 2 * fresh.checkpoint_bytes
    h = Harvester(config.layout, config.vocab_size, 0.0, 2, 1, "cpu", 0)
    payload = save_checkpoint(run.checkpoint_dir, h, {"batches_done": 1})
    run.components_path.write_bytes(b"x" * 1000)
    resumed = disk_need(run, config, "cpu")
    assert resumed.already_on_disk == payload.stat().st_size + 1000
    assert disk_need(run, config, "cpu", force_new=True).already_on_disk == 0
    StateFile(run).update(harvest_complete=True)
    done = disk_need(run, config, "cpu")
    assert done.checkpoints == 0 and done.already_on_disk == 1000


def test_check_disk_measures_the_run_directorys_file_system(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "not" / "yet" / "there")
    need = check_disk(run, _config(n_batches=2), "cpu")  # the nearest existing ancestor
    assert 0 < need.total < GIB


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_the_daemon_refuses_a_harvest_the_disk_cannot_hold(tiny_disk: Path) -> None:
    done = run_child(tiny_disk, "--n-batches", "2", "--labeller", "none")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not enough free disk space" in done.stderr
    assert not (tiny_run(tiny_disk).checkpoint_dir).exists()
