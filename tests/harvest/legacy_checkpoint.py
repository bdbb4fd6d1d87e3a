"""The format 1 checkpoint writer, as it shipped before the compact format: kept to make old
checkpoints in tests (they must still load) and as the baseline of `bench/checkpoint.py`."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from autointerp.files import fsync_dir, write_json_atomic
from autointerp.harvest.checkpoint import MANIFEST, CheckpointManifest, _HashingWriter
from autointerp.harvest.harvester import Harvester


def save_checkpoint_format_1(
    directory: Path | str,
    harvester: Harvester,
    extra: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """`torch.save` of the state dict (or of `state`, e.g. a version 1 state), then the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"state-{harvester.n_batches:09d}-{uuid.uuid4().hex[:8]}.pt"
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as raw:
        writer = _HashingWriter(raw)
        torch.save(harvester._state(copy=False) if state is None else state, writer)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, directory / name)
    fsync_dir(directory)
    manifest = CheckpointManifest(
        format=1,
        payload=name,
        bytes=writer.size,
        sha256=writer.digest.hexdigest(),
        n_tokens=harvester.n_tokens,
        n_batches=harvester.n_batches,
        saved_at=time.time(),
        extra=extra,
    )
    write_json_atomic(directory / MANIFEST, manifest)
    for stale in directory.iterdir():
        if stale.name != name and stale.name != MANIFEST and ".pt" in stale.name:
            stale.unlink(missing_ok=True)
    fsync_dir(directory)
    return directory / name
