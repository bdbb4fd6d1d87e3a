"""Crash-proof checkpoints of a harvester: a payload file plus a manifest that commits it.

Save: stream the compact payload (`payload.py`) to a temp file (hashing it on the way), fsync,
rename, fsync the directory, then atomically replace `manifest.json` (format, size, sha256, the
caller's `extra`), and only then delete older payloads. A crash at any point leaves the previous
manifest pointing at its complete payload. Load hashes the payload while it decodes it and keeps
the result only if size and hash match the manifest, so a truncated or corrupt file is reported,
never silently loaded.

`write_checkpoint` writes any `StateView` (the live tables, or a host snapshot of them that a
background thread writes while the harvest goes on: `writer.py`); `save_checkpoint` writes a
harvester's live tables synchronously. Format 1 checkpoints (one `torch.save` of
`Harvester.state_dict()`, state versions 1 and 2) still load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import torch

from autointerp.errors import UserError
from autointerp.files import fsync_dir, write_json_atomic
from autointerp.harvest.harvester import Harvester
from autointerp.harvest.payload import StateView, live_view, read_payload, write_payload
from autointerp.harvest.pieces import PayloadError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 2
"""2: the compact streamed payload (`payload.py`). 1: `torch.save` of the state dict."""
FORMATS = (1, FORMAT)


class CheckpointManifest(msgspec.Struct):
    format: int
    payload: str
    bytes: int
    sha256: str
    n_tokens: int
    n_batches: int
    saved_at: float
    extra: dict[str, Any]


@dataclass(frozen=True)
class Commit:
    """A checkpoint that is on disk and named by the manifest."""

    manifest: CheckpointManifest
    path: Path
    write_s: float
    """Seconds from the first byte to the committed manifest."""


class _HashingWriter:
    """File-like sink that hashes and counts what passes through."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        return self.raw.write(view)

    def flush(self) -> None:
        self.raw.flush()


class _HashingReader:
    """File-like source that hashes and counts what is read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.size += n
        return n or 0

    def drain(self) -> None:
        """Hash the rest of the file (after a decode error, or trailing bytes)."""
        while block := self.raw.read(1 << 24):
            self.digest.update(block)
            self.size += len(block)


def _fail(directory: Path, problem: str) -> UserError:
    return UserError(
        f"harvest checkpoint in {directory} is unusable: {problem}. Nothing was loaded. Delete "
        f"{directory} to restart the harvest pass from the first batch (labels already written "
        "are kept)."
    )


def _is_payload_file(name: str) -> bool:
    """Payloads and their temp files, of either format (`state-*.pt`, `.state-*.ckpt.tmp`)."""
    return name.startswith(("state-", ".state-"))


def save_checkpoint(directory: Path | str, harvester: Harvester, extra: dict[str, Any]) -> Path:
    """Atomically replace the checkpoint in `directory` with the harvester's state, written from
    its live tables (the caller does not update it meanwhile); returns the payload path."""
    return write_checkpoint(directory, live_view(harvester), extra).path


def write_checkpoint(directory: Path | str, view: StateView, extra: dict[str, Any]) -> Commit:
    """Atomically replace the checkpoint in `directory` with `view`."""
    t0 = time.monotonic()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n_batches, n_tokens = int(view.meta["n_batches"]), int(view.meta["n_tokens"])
    name = f"state-{n_batches:09d}-{uuid.uuid4().hex[:8]}.ckpt"
    tmp = directory / f".{name}.tmp"
    try:
        with open(tmp, "wb") as raw:
            writer = _HashingWriter(raw)
            write_payload(view, writer)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: give the space back
        raise
    fsync_dir(directory)
    manifest = CheckpointManifest(
        format=FORMAT,
        payload=name,
        bytes=writer.size,
        sha256=writer.digest.hexdigest(),
        n_tokens=n_tokens,
        n_batches=n_batches,
        saved_at=time.time(),
        extra=extra,
    )
    write_json_atomic(directory / MANIFEST, manifest)
    for stale in directory.iterdir():
        if stale.name != name and _is_payload_file(stale.name):
            stale.unlink(missing_ok=True)
    fsync_dir(directory)
    return Commit(manifest, directory / name, time.monotonic() - t0)


def read_manifest(directory: Path | str) -> CheckpointManifest | None:
    """The committed manifest, or None if there is none."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = msgspec.json.decode(path.read_bytes(), type=CheckpointManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise _fail(directory, f"{MANIFEST} is corrupt ({e})") from e
    if manifest.format not in FORMATS:
        raise _fail(directory, f"checkpoint format {manifest.format} is not one of {FORMATS}")
    return manifest


def _payload_path(directory: Path, manifest: CheckpointManifest) -> Path:
    path = directory / manifest.payload
    if not path.is_file():
        raise _fail(directory, f"the payload {manifest.payload} named by {MANIFEST} is missing")
    size = path.stat().st_size
    if size != manifest.bytes:
        raise _fail(directory, f"{path.name} has {size} bytes, {manifest.bytes} were written")
    return path


def _corrupt(directory: Path, path: Path) -> UserError:
    return _fail(directory, f"{path.name} does not match its sha256 (corrupt on disk)")


def load_checkpoint(
    directory: Path | str, device: torch.device | str
) -> tuple[Harvester, dict[str, Any]] | None:
    """The harvester and `extra` of the last committed checkpoint, or None if there is none."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        leftovers = (
            [p.name for p in directory.iterdir() if _is_payload_file(p.name)]
            if directory.is_dir()
            else []
        )
        if leftovers:
            log.warning("%s: ignoring uncommitted checkpoint files %s", directory, leftovers)
        return None
    path = _payload_path(directory, manifest)
    if manifest.format == 1:
        return _load_format_1(directory, path, manifest, device), manifest.extra
    with open(path, "rb") as raw:
        reader = _HashingReader(raw)
        try:
            harvester: Harvester | None = read_payload(reader, device)
            problem: Exception | None = None
        except (
            PayloadError,
            UserError,
            msgspec.DecodeError,
            msgspec.ValidationError,
            RuntimeError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
        ) as e:
            harvester, problem = None, e
        reader.drain()
    if reader.size != manifest.bytes or reader.digest.hexdigest() != manifest.sha256:
        raise _corrupt(directory, path)
    if problem is not None or harvester is None:
        raise _fail(directory, f"{path.name} could not be read ({problem})") from problem
    return harvester, manifest.extra


def _load_format_1(
    directory: Path, path: Path, manifest: CheckpointManifest, device: torch.device | str
) -> Harvester:
    """A `torch.save`d state dict: verify the whole file, then unpickle (`weights_only`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    if digest.hexdigest() != manifest.sha256:
        raise _corrupt(directory, path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return Harvester.from_state_dict(state, device)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise _fail(directory, f"{path.name} could not be read ({e})") from e
