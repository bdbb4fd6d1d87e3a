"""The harvest configuration: what the user asked for, resolved against the source, checked
before anything is written, and reconciled with what the run directory already holds.

Statistics from two different configurations must never be merged into one accumulator, so a
restart compares the new configuration with `harvest/config.json` field by field and refuses
(naming every difference) unless the user asks for a fresh harvest, which moves the old files
aside instead of deleting them. A run that has harvested nothing yet has nothing to mix: its
configuration is simply replaced.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from autointerp.errors import UserError
from autointerp.files import fsync_dir, write_json_atomic
from autointerp.schemas import HarvestConfig
from autointerp.sources.base import Source
from autointerp.store import RunDir, RunReader

log = logging.getLogger(__name__)

FALLBACK_SIZES: dict[str, int] = {"n_batches": 1000, "batch_size": 32, "context_length": 512}
"""Harvest size when neither the user nor the source says."""
DEFAULT_HELDOUT = 40
"""Held-out firings per component for a new run: scorers test a label on 20 to 40 windows."""
DEFAULT_NEGATIVES = 20
"""Verified silent windows per component for a new run."""
DEFAULT_HARD_NEGATIVES = 10
"""Silent windows where a co-firing partner fires, per component, for a new run."""


@dataclass(frozen=True)
class HarvestOptions:
    """What the user asked for; None sizes mean the source's suggestion, else the fallback."""

    n_batches: int | None = None
    batch_size: int | None = None
    context_length: int | None = None
    ci_threshold: float = 0.0
    examples_per_component: int = 20
    context_tokens: int = 10
    top_k: int = 10
    seed: int = 0
    checkpoint_every_s: float = 300.0
    force_new: bool = False
    heldout_per_component: int | None = None
    """None: the run's own (a run made before held-out sampling keeps 0), else the default."""
    negatives_per_component: int | None = None
    hard_negatives_per_component: int | None = None


def harvest_config(
    source: Source, options: HarvestOptions, previous: HarvestConfig | None = None
) -> HarvestConfig:
    """The configuration of this harvest; a UserError when the source cannot serve it.

    `previous`: the run directory's configuration, whose held-out sizes an unspecified option
    keeps (so that a run started before held-out sampling existed still resumes)."""
    suggested = {**FALLBACK_SIZES, **{k: int(v) for k, v in source.harvest_defaults.items()}}
    sizes = {
        name: int(asked if asked is not None else suggested[name])
        for name, asked in (
            ("n_batches", options.n_batches),
            ("batch_size", options.batch_size),
            ("context_length", options.context_length),
        )
    }
    limit = source.max_context
    if limit is not None and not 1 <= sizes["context_length"] <= limit:
        raise UserError(
            f"--context-length {sizes['context_length']}: {source.description} reads at most "
            f"{limit} tokens per sequence; use a context length from 1 to {limit}"
        )
    return HarvestConfig(
        run_id=source.run_id,
        source=source.description,
        source_fingerprint=dict(source.fingerprint()),
        layout=[(str(m), int(c)) for m, c in source.layout],
        vocab_size=int(source.vocab_size),
        n_batches=sizes["n_batches"],
        batch_size=sizes["batch_size"],
        context_length=sizes["context_length"],
        ci_threshold=float(options.ci_threshold),
        examples_per_component=options.examples_per_component,
        context_tokens_per_side=options.context_tokens,
        top_k=options.top_k,
        seed=options.seed,
        architecture=source.architecture,
        heldout_per_component=_or_kept(
            options.heldout_per_component, previous, "heldout_per_component", DEFAULT_HELDOUT
        ),
        negatives_per_component=_or_kept(
            options.negatives_per_component, previous, "negatives_per_component", DEFAULT_NEGATIVES
        ),
        hard_negatives_per_component=_or_kept(
            options.hard_negatives_per_component,
            previous,
            "hard_negatives_per_component",
            DEFAULT_HARD_NEGATIVES,
        ),
    )


def _or_kept(asked: int | None, previous: HarvestConfig | None, name: str, default: int) -> int:
    if asked is not None:
        return asked
    return int(getattr(previous, name)) if previous is not None else default


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


def has_harvested(run: RunDir) -> bool:
    """Whether the run holds statistics or labels a new configuration would conflict with."""
    files = (run.components_path, run.results_path, run.failures_path)
    return any(p.exists() and p.stat().st_size > 0 for p in files) or any(
        run.checkpoint_dir.glob("*")
    )


def has_harvest_data(run: RunDir) -> bool:
    """Whether the run directory holds anything of an earlier harvest (config or state too)."""
    return has_harvested(run) or run.config_path.exists() or run.state_path.exists()


def reconcile_config(run: RunDir, config: HarvestConfig, *, force_new: bool) -> Path | None:
    """Make `harvest/config.json` hold `config`; return the backup folder if old data moved aside.

    Raises `UserError` listing the differences when the run harvested with another
    configuration and `force_new` is not set.
    """
    backup = None
    if run.config_path.exists():
        old = RunReader(run).config()
        assert old is not None
        diffs = config_differences(old, config)
        if diffs and force_new:
            backup = move_aside(run)
        elif diffs and has_harvested(run):
            raise UserError(
                f"{run.root} was harvested with a different configuration:\n  "
                + "\n  ".join(diffs)
                + "\nRun with the old options to resume, or add --force-new-harvest to "
                "start over (the old files are moved to a backup folder, not deleted)."
            )
        elif diffs:
            log.info(
                "nothing was harvested yet: replacing the configuration (%s)", "; ".join(diffs)
            )
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
