"""Free disk space for a harvest, checked before the pass starts.

A pass that fills the disk fails at its next checkpoint, possibly hours in; this check refuses it
up front (exit 2). The run directory needs room for:

- two checkpoints at once: a new payload is written beside the previous one, which is deleted
  only once the new manifest commits. Each is at most `checkpoint_bytes`: the compact format's
  size with every entry stored dense (`payload.dense_bound`); sparse and narrowed encodings make
  it smaller, but counts fill in over a long pass, so the bound is what a late checkpoint can
  reach;
- `components.jsonl`: `components_bytes` estimates a line per component with all its examples
  and top-k lists (about 1.5x the lines of the demo run).

What the run already holds and will replace (its current checkpoint, the components written so
far) is on disk already and counts as available. `check_free` is the pure decision, so it can be
tested with any free-space figure; `check_disk` measures and decides.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import msgspec
import torch

from autointerp.errors import UserError
from autointerp.harvest.memory import state_shapes
from autointerp.harvest.payload import dense_bound
from autointerp.schemas import HarvestConfig
from autointerp.store import RunDir, RunReader

log = logging.getLogger(__name__)

GIB = 2**30
CHECKPOINTS_AT_ONCE = 2
"""The temp file of the checkpoint being written, and the previous one until the commit."""
LINE_BASE_BYTES = 512
"""A component line's key, layer, numbers and field names."""
EXAMPLE_BASE_BYTES = 48
WINDOW_POSITION_BYTES = 40
"""A token's text and its CI value in an example window (the demo run's lines: 27)."""
TOKEN_ENTRY_BYTES = 40
CORRELATION_ENTRY_BYTES = 24
"""Besides the other component's key."""


class DiskNeed(msgspec.Struct):
    """Bytes a harvest still needs on the run directory's file system."""

    checkpoint_bytes: int
    """One checkpoint, at most."""
    checkpoints: int
    """All checkpoints at once (0 once the harvest is complete: no more are written)."""
    components: int
    """`components.jsonl`, estimated."""
    already_on_disk: int
    """What the run holds already and these replace (counted as available)."""

    @property
    def total(self) -> int:
        return max(0, self.checkpoints + self.components - self.already_on_disk)


def checkpoint_bytes(config: HarvestConfig, device: torch.device | str) -> int:
    """The most bytes one checkpoint of this harvest can take."""
    total_tokens = config.n_batches * config.batch_size * config.context_length
    shapes = state_shapes(
        config.layout,
        config.vocab_size,
        config.sampled_per_component,
        config.context_tokens_per_side,
        total_tokens,
        device,
        config.negatives_per_component,
        config.hard_negatives_per_component,
    )
    return dense_bound(shapes, config.vocab_size)


def components_bytes(config: HarvestConfig) -> int:
    """An estimate of `components.jsonl` with every component alive and its lists full."""
    key = max(len(m) for m, _ in config.layout) + 8
    width = 2 * config.context_tokens_per_side + 1
    example = EXAMPLE_BASE_BYTES + width * WINDOW_POSITION_BYTES
    lists = 3 * TOKEN_ENTRY_BYTES + 4 * (key + CORRELATION_ENTRY_BYTES)
    line = LINE_BASE_BYTES + config.examples_per_component * example + config.top_k * lists
    windows = config.heldout_per_component + config.negatives_per_component
    # A hard negative also names the partner that fired in it.
    hard = config.hard_negatives_per_component * (example + key)
    heldout = LINE_BASE_BYTES + windows * example + hard
    return sum(n for _, n in config.layout) * (line + heldout)


def _payload_bytes(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith("state-"))


def disk_need(
    run: RunDir, config: HarvestConfig, device: torch.device | str, *, force_new: bool = False
) -> DiskNeed:
    """What the harvest of `config` still needs in `run` (`force_new`: its files are moved
    aside, on the same file system, so none of them counts as available)."""
    one = checkpoint_bytes(config, device)
    done = not force_new and RunReader(run).state().harvest_complete
    already = 0
    if not force_new:
        already = _payload_bytes(run.checkpoint_dir) * (not done)
        if run.components_path.exists():
            already += run.components_path.stat().st_size
    return DiskNeed(
        checkpoint_bytes=one,
        checkpoints=0 if done else CHECKPOINTS_AT_ONCE * one,
        components=components_bytes(config),
        already_on_disk=already,
    )


def size_text(n: int) -> str:
    """Bytes in GiB, MiB or KiB, whichever shows them best."""
    for unit, scale in (("GiB", GIB), ("MiB", 2**20)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1024:.1f} KiB"


def check_free(need: DiskNeed, free: int, where: Path) -> None:
    """Raise `UserError` (exit 2) unless `free` bytes cover `need`."""
    if need.total <= free:
        return
    lines = [
        f"  checkpoints       {size_text(need.checkpoints):>12} ({CHECKPOINTS_AT_ONCE} at once "
        f"while one replaces the other, each at most {size_text(need.checkpoint_bytes)})",
        f"  components.jsonl  {size_text(need.components):>12} (estimated)",
    ]
    if need.already_on_disk:
        lines.append(
            f"  already on disk   {size_text(-need.already_on_disk):>12} (this run's, replaced)"
        )
    raise UserError(
        f"not enough free disk space for this harvest: it needs {size_text(need.total)} in "
        f"{where} but only {size_text(free)} is free:\n" + "\n".join(lines) + "\nFree space "
        "there, or choose a --data-dir (or AUTOINTERP_DATA_DIR) on a larger disk."
    )


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (the run directory may not exist yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(
    run: RunDir, config: HarvestConfig, device: torch.device | str, *, force_new: bool = False
) -> DiskNeed:
    """Refuse (exit 2, with the breakdown) a harvest that would run out of disk space."""
    need = disk_need(run, config, device, force_new=force_new)
    where = _existing(run.checkpoint_dir)
    check_free(need, shutil.disk_usage(where).free, where)
    log.info(
        "harvest disk space: up to %s more in %s (checkpoints at most %s each)",
        size_text(need.total),
        where,
        size_text(need.checkpoint_bytes),
    )
    return need
