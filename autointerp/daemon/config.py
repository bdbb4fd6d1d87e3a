"""The harvest configuration a run directory was built with, and the refusal to mix two of them.

Statistics from two different configurations must never be merged into one accumulator, so a
restart compares the new configuration with `harvest/config.json` field by field and refuses
(naming every difference) unless the user asks for a fresh harvest, which moves the old files
aside instead of deleting them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import msgspec

from autointerp.errors import UserError
from autointerp.schemas import ArchitectureInfo
from autointerp.store import RunDir, fsync_dir, read_json, write_json_atomic


class HarvestConfig(msgspec.Struct, kw_only=True):
    """Everything that determines the harvest statistics (never the API key)."""

    run_id: str
    source: str
    source_fingerprint: dict[str, str]
    layout: list[tuple[str, int]]
    vocab_size: int
    n_batches: int
    batch_size: int
    context_length: int
    ci_threshold: float
    examples_per_component: int
    context_tokens_per_side: int
    top_k: int
    seed: int
    architecture: ArchitectureInfo


IGNORED_FIELDS = frozenset({"architecture", "source"})
"""Descriptive fields: a changed description of the same model and data is not a new harvest."""


def config_differences(old: HarvestConfig, new: HarvestConfig) -> list[str]:
    """`field: old → new` for every field that changes the statistics."""
    diffs = []
    for name in HarvestConfig.__struct_fields__:
        if name in IGNORED_FIELDS:
            continue
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            diffs.append(f"{name}: {_show(before)} → {_show(after)}")
    return diffs


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def has_harvest_data(run: RunDir) -> bool:
    """Whether the run directory holds anything a new configuration would conflict with."""
    paths = (run.config_path, run.components_path, run.state_path, run.results_path)
    return any(p.exists() for p in paths) or any(run.checkpoint_dir.glob("*"))


def reconcile_config(run: RunDir, config: HarvestConfig, *, force_new: bool) -> Path | None:
    """Make `harvest/config.json` hold `config`; return the backup folder if old data moved aside.

    Raises `UserError` listing the differences when the run was harvested with another
    configuration and `force_new` is not set.
    """
    backup = None
    if run.config_path.exists():
        old = read_json(run.config_path, HarvestConfig)
        diffs = config_differences(old, config)
        if diffs:
            if not force_new:
                raise UserError(
                    f"{run.root} was harvested with a different configuration:\n  "
                    + "\n  ".join(diffs)
                    + "\nRun with the old options to resume, or add --force-new-harvest to "
                    "start over (the old files are moved to a backup folder, not deleted)."
                )
            backup = move_aside(run)
    elif has_harvest_data(run) and force_new:
        backup = move_aside(run)
    run.ensure()
    write_json_atomic(run.config_path, config)
    return backup


def move_aside(run: RunDir) -> Path:
    """Move `harvest/` and `interpretations/` into `backup-<UTC time>/` inside the run dir."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backup = run.root / f"backup-{stamp}"
    n = 1
    while backup.exists():
        n += 1
        backup = run.root / f"backup-{stamp}-{n}"
    backup.mkdir(parents=True)
    for d in (run.harvest_dir, run.interpretations_dir):
        if d.exists():
            shutil.move(str(d), str(backup / d.name))
    fsync_dir(backup)
    fsync_dir(run.root)
    return backup
