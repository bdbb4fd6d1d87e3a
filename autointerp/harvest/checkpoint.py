"""Crash-proof checkpoints of a harvester: a payload file plus a manifest that commits it.

Save: write the payload to a temp file (hashing it on the way), fsync, rename, fsync the
directory, then atomically replace `manifest.json` (size + sha256 + the caller's `extra`), and
only then delete older payloads. A crash at any point leaves the previous manifest pointing at
its complete payload. Load verifies size and hash before unpickling anything, so a truncated or
corrupt file is reported, never silently loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import torch

from autointerp.errors import UserError
from autointerp.files import fsync_dir, write_json_atomic
from autointerp.harvest.harvester import Harvester

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1


class CheckpointManifest(msgspec.Struct):
    format: int
    payload: str
    bytes: int
    sha256: str
    n_tokens: int
    n_batches: int
    saved_at: float
    extra: dict[str, Any]


class _HashingWriter:
    """File-like sink for `torch.save` that hashes and counts what passes through."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        return self.raw.write(view)

    def flush(self) -> None:
        self.raw.flush()


def _fail(directory: Path, problem: str) -> UserError:
    return UserError(
        f"harvest checkpoint in {directory} is unusable: {problem}. Nothing was loaded. Delete "
        f"{directory} to restart the harvest pass from the first batch (labels already written "
        "are kept)."
    )


def save_checkpoint(directory: Path | str, harvester: Harvester, extra: dict[str, Any]) -> Path:
    """Atomically replace the checkpoint in `directory`; returns the payload path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"state-{harvester.n_batches:09d}-{uuid.uuid4().hex[:8]}.pt"
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as raw:
        writer = _HashingWriter(raw)
        torch.save(harvester._state(copy=False), writer)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, directory / name)
    fsync_dir(directory)
    manifest = CheckpointManifest(
        format=FORMAT,
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


def _verify(directory: Path, manifest: CheckpointManifest) -> Path:
    path = directory / manifest.payload
    if not path.is_file():
        raise _fail(directory, f"the payload {manifest.payload} named by {MANIFEST} is missing")
    size = path.stat().st_size
    if size != manifest.bytes:
        raise _fail(directory, f"{path.name} has {size} bytes, {manifest.bytes} were written")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    if digest.hexdigest() != manifest.sha256:
        raise _fail(directory, f"{path.name} does not match its sha256 (corrupt on disk)")
    return path


def load_checkpoint(
    directory: Path | str, device: torch.device | str
) -> tuple[Harvester, dict[str, Any]] | None:
    """The harvester and `extra` of the last committed checkpoint, or None if there is none."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        leftovers = [p.name for p in directory.glob("*.pt*")] if directory.is_dir() else []
        if leftovers:
            log.warning("%s: ignoring uncommitted checkpoint files %s", directory, leftovers)
        return None
    try:
        manifest = msgspec.json.decode(manifest_path.read_bytes(), type=CheckpointManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise _fail(directory, f"{MANIFEST} is corrupt ({e})") from e
    if manifest.format != FORMAT:
        raise _fail(directory, f"checkpoint format {manifest.format} is not {FORMAT}")
    path = _verify(directory, manifest)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        harvester = Harvester.from_state_dict(state, device)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise _fail(directory, f"{path.name} could not be read ({e})") from e
    return harvester, manifest.extra
