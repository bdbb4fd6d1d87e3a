"""Fetch an SPD run's `final_config.yaml` and final checkpoint from wandb into a local cache.

Once both files are cached (recorded by a manifest written last), later starts use them without
touching the network: `wandb.Api()` is never constructed then, because its constructor checks
credentials online. Downloads go to a temp name and are renamed into place, so a download killed
half-way is redone on the next start instead of being mistaken for a complete file.

Everything here blocks (network, disk): the daemon calls it in a worker thread, off the event loop.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from autointerp.errors import UserError
from autointerp.files import read_json, write_json_atomic
from autointerp.sources.paths import CONFIG_FILENAME, WandbRunRef, latest_checkpoint_name

log = logging.getLogger(__name__)

MANIFEST_FILENAME = "autointerp_files.json"
PARTIAL_DIRNAME = ".partial"


class CacheManifest(msgspec.Struct):
    """Written last, after both files are in place: its presence means the cache is complete."""

    checkpoint: str
    sizes: dict[str, int]


@dataclass(frozen=True)
class RunFiles:
    config_path: Path
    checkpoint_path: Path


def default_cache_root() -> Path:
    """`$XDG_CACHE_HOME/autointerp/wandb`, else `~/.cache/autointerp/wandb`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "autointerp" / "wandb"


def run_cache_dir(cache_root: Path, ref: WandbRunRef) -> Path:
    return Path(cache_root).expanduser() / ref.entity / ref.project / ref.run_id


def cached_run_files(run_dir: Path) -> RunFiles | None:
    """The cached files if a previous start completed both downloads, else None."""
    manifest_path = run_dir / MANIFEST_FILENAME
    if not manifest_path.is_file():
        return None
    try:
        manifest = read_json(manifest_path, CacheManifest)
    except (UserError, OSError):
        log.warning("ignoring unreadable cache manifest %s", manifest_path)
        return None
    config = run_dir / CONFIG_FILENAME
    checkpoint = run_dir / Path(manifest.checkpoint).name
    for path in (config, checkpoint):
        if not path.is_file() or manifest.sizes.get(path.name, -1) != path.stat().st_size:
            log.warning("cached %s is missing or incomplete: downloading again", path)
            return None
    return RunFiles(config_path=config, checkpoint_path=checkpoint)


def fetch_run_files(ref: WandbRunRef, cache_root: Path | None = None) -> RunFiles:
    """The run's config and final checkpoint on local disk, downloading only what is missing."""
    run_dir = run_cache_dir(cache_root or default_cache_root(), ref)
    cached = cached_run_files(run_dir)
    if cached is not None:
        log.info("using cached run files in %s (no network)", run_dir)
        return cached
    run = _open_run(ref)
    names = [f.name for f in _call(ref, "list the run's files", run.files)]
    checkpoint_name = latest_checkpoint_name(names)
    if CONFIG_FILENAME not in names:
        raise UserError(
            f"wandb run {ref.path} has no {CONFIG_FILENAME}: it does not look like an SPD run"
        )
    if checkpoint_name is None:
        raise UserError(
            f"wandb run {ref.path} has no model_<step>.pth checkpoint file: is the run finished "
            "and did it save its model to wandb?"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    names_to_fetch = (CONFIG_FILENAME, checkpoint_name)
    sizes = {name: _download(ref, run, name, run_dir) for name in names_to_fetch}
    write_json_atomic(run_dir / MANIFEST_FILENAME, CacheManifest(checkpoint_name, sizes))
    return RunFiles(
        config_path=run_dir / CONFIG_FILENAME, checkpoint_path=run_dir / checkpoint_name
    )


def _open_run(ref: WandbRunRef) -> Any:
    try:
        import wandb
    except ImportError as e:
        raise UserError(f"cannot download {ref.path}: wandb is not installed ({e})") from None
    api = _call(ref, "connect to wandb", wandb.Api)
    return _call(ref, "find the run", lambda: api.run(ref.path))


def _download(ref: WandbRunRef, run: Any, name: str, run_dir: Path) -> int:
    """Download one file to a temp directory, then rename it into place; returns its size."""
    target = run_dir / name
    if name != CONFIG_FILENAME and target.is_file():
        remote_size = getattr(run.file(name), "size", None)
        if remote_size is not None and target.stat().st_size == remote_size:
            return remote_size
    partial = run_dir / PARTIAL_DIRNAME
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log.info("downloading %s from wandb run %s", name, ref.path)

    def download() -> None:
        handle = run.file(name).download(root=str(partial), replace=True)
        handle.close()

    _call(ref, f"download {name}", download)
    downloaded = partial / name
    if not downloaded.is_file():
        raise UserError(f"wandb reported {name} downloaded but {downloaded} is missing")
    with open(downloaded, "rb") as f:
        os.fsync(f.fileno())
    os.replace(downloaded, target)
    shutil.rmtree(partial, ignore_errors=True)
    return target.stat().st_size


def _call(ref: WandbRunRef, action: str, fn: Any) -> Any:
    """Run one wandb call, turning its failures into one clear UserError each."""
    try:
        return fn()
    except UserError:
        raise
    except Exception as e:
        raise UserError(_explain(ref, action, e)) from None


_NETWORK_WORDS = (
    "did not respond",
    "timed out",
    "timeout",
    "connection",
    "max retries",
    "name resolution",
    "name or service",
    "unreachable",
    "network is",
)


def _explain(ref: WandbRunRef, action: str, e: Exception) -> str:
    kind = type(e).__name__
    detail = _first_line(e)
    text = detail.lower()
    where = f"cannot {action} for wandb run {ref.path}"
    server = (
        ""
        if ref.host is None
        else f" The URL is on {ref.host}: log wandb in to that server "
        f"(`wandb login --host https://{ref.host}` or WANDB_BASE_URL)."
    )
    if kind in ("CommError", "ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout") or any(
        w in text for w in _NETWORK_WORDS
    ):
        return (
            f"{where}: wandb is unreachable ({kind}: {detail}). Check the network, or copy the "
            f"run's {CONFIG_FILENAME} and model_<step>.pth into a directory and pass that "
            "directory."
        )
    if kind == "AuthenticationError" or "api key" in text or "api_key" in text or "401" in text:
        return (
            f"{where}: wandb has no valid API key ({detail}). Run `wandb login` or set "
            f"WANDB_API_KEY.{server}"
        )
    if "not found" in text or "could not find" in text or "404" in text:
        return (
            f"{where}: the run was not found. Check entity, project and run id, and that your "
            f"wandb account can see it.{server}"
        )
    return f"{where}: {kind}: {detail}{server}"


def _first_line(e: Exception) -> str:
    """The first line of an error, with the API key masked should the error quote it."""
    text = str(e)
    key = os.environ.get("WANDB_API_KEY")
    if key:
        text = text.replace(key, "***")
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""
