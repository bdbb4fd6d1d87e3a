"""Turn the user's source argument into a typed reference, before anything is loaded.

The argument may be a wandb run (several spellings, URLs of any wandb host), a local SPD run
directory or checkpoint file, the embedded demo, the synthetic benchmark model, or a Python
factory. Whatever exists on disk is local; a relative path shaped like `entity/project/run_id`
that does not exist is a wandb run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from autointerp.errors import UserError
from autointerp.sources.synthetic.shapes import DEFAULT_SHAPE, SHAPES

CONFIG_FILENAME = "final_config.yaml"
CHECKPOINT_RE = re.compile(r"^model_(\d+)\.pth$")

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_WANDB_PATH_RE = re.compile(rf"^({_NAME})/({_NAME})/(?:runs/)?({_RUN_ID})/?$")
_SCHEMELESS_URL_RE = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/[^/]+/[^/]+/runs/")
_FACTORY_RE = re.compile(r"^py:([A-Za-z_][\w.]*):([A-Za-z_]\w*)$")


@dataclass(frozen=True)
class WandbRunRef:
    entity: str
    project: str
    run_id: str
    host: str | None = None
    """The web host of a pasted URL when it is not wandb.ai (dedicated cloud, forge hosts). Only
    informational: the API host comes from the user's wandb login (`wandb login --host`,
    `WANDB_BASE_URL`), because a server's API host need not be its web host."""

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.run_id}"

    @property
    def description(self) -> str:
        host = "" if self.host is None else f"{self.host}:"
        return f"wandb:{host}{self.path}"


@dataclass(frozen=True)
class LocalRunRef:
    run_dir: Path
    checkpoint: Path
    """Absolute path of the checkpoint file to load (the highest step unless one was named)."""

    @property
    def run_id(self) -> str:
        return local_run_id(self.checkpoint)

    @property
    def description(self) -> str:
        return f"local:{self.checkpoint}"


@dataclass(frozen=True)
class DemoRef:
    """The embedded demo model (built by `autointerp.sources.demo`)."""


@dataclass(frozen=True)
class SyntheticRef:
    """`synthetic[:shape]`: a random SPD-shaped model made at open time (`sources/synthetic/`)."""

    shape: str = DEFAULT_SHAPE


@dataclass(frozen=True)
class FactoryRef:
    """`py:package.module:factory`: a Python callable `factory(device=...) -> Source`."""

    module: str
    attribute: str


SourceRef = WandbRunRef | LocalRunRef | DemoRef | SyntheticRef | FactoryRef


def describe_source_forms() -> str:
    """The accepted spellings of a source argument, for help and error messages."""
    return (
        "Accepted sources:\n"
        "  entity/project/run_id              a wandb run (also entity/project/runs/run_id)\n"
        "  wandb:entity/project/run_id        the same, with the wandb: prefix\n"
        "  https://wandb.ai/entity/project/runs/run_id[/overview|/files/...][?...]\n"
        "                                     a wandb run URL (any wandb host, e.g. *.wandb.io;\n"
        "                                     the https:// may be left out)\n"
        "  /path/to/spd/run_dir               a local run: final_config.yaml + model_<step>.pth\n"
        "  /path/to/spd/run_dir/model_400.pth a local checkpoint file (final_config.yaml beside)\n"
        "  demo                               the embedded demo model\n"
        "  synthetic[:simplestories|:pile|:tiny]\n"
        "                                     a random SPD-shaped model for benchmarks, made at\n"
        "                                     run time (bare `synthetic`: simplestories)\n"
        "  py:package.module:factory          a Python factory(device=...) returning a Source"
    )


def _bad(spec: str, why: str) -> UserError:
    return UserError(f"cannot use source {spec!r}: {why}\n{describe_source_forms()}")


def parse_source(spec: str) -> SourceRef:
    """Classify a source argument; local runs are checked for their files here."""
    text = spec.strip()
    if not text:
        raise _bad(spec, "it is empty")
    if text == "demo":
        return DemoRef()
    if text == "synthetic" or text.startswith("synthetic:"):
        return _parse_synthetic(spec, text)
    if text.startswith("py:"):
        if m := _FACTORY_RE.match(text):
            return FactoryRef(module=m.group(1), attribute=m.group(2))
        raise _bad(spec, "a factory is written py:package.module:function")
    if text.startswith("wandb:"):
        return _parse_wandb(spec, text.removeprefix("wandb:"))
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return _parse_url(spec, text)
    local = Path(text).expanduser()
    if local.exists():
        return _parse_local(spec, local)
    if _SCHEMELESS_URL_RE.match(text):  # "wandb.ai/entity/project/runs/id" pasted without https
        return _parse_url(spec, f"https://{text}")
    if _looks_like_local_path(text):
        raise _bad(spec, f"{local} does not exist")
    return _parse_wandb(spec, text)


def _parse_synthetic(spec: str, text: str) -> SyntheticRef:
    if text == "synthetic":
        return SyntheticRef(DEFAULT_SHAPE)
    shape = text.removeprefix("synthetic:")
    if shape not in SHAPES:
        raise _bad(spec, f"{shape!r} is not a synthetic shape (one of {', '.join(SHAPES)})")
    return SyntheticRef(shape)


def _looks_like_local_path(text: str) -> bool:
    return (
        text.startswith(("/", "./", "../", "~", "."))
        or text.endswith((".pth", ".yaml"))
        or "\\" in text
    )


def _parse_wandb(spec: str, text: str) -> WandbRunRef:
    if re.match(r"^https?://", text, re.IGNORECASE):
        return _parse_url(spec, text)
    if m := _WANDB_PATH_RE.match(text):
        return WandbRunRef(entity=m.group(1), project=m.group(2), run_id=m.group(3))
    raise _bad(spec, "it is neither an existing local path nor a wandb run path")


def _parse_url(spec: str, text: str) -> WandbRunRef:
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise _bad(spec, "only http(s) URLs of a wandb run page are understood")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 4 or segments[2] != "runs":
        raise _bad(spec, "a wandb run URL looks like https://<host>/entity/project/runs/run_id")
    entity, project, _, run_id = segments[:4]
    if not (re.fullmatch(_NAME, entity) and re.fullmatch(_NAME, project)):
        raise _bad(spec, "the URL's entity or project name is not a wandb name")
    if not re.fullmatch(_RUN_ID, run_id):
        raise _bad(spec, f"{run_id!r} is not a wandb run id")
    host = parts.netloc.lower()
    other_host = None if host in ("wandb.ai", "www.wandb.ai") else host
    return WandbRunRef(entity=entity, project=project, run_id=run_id, host=other_host)


def _parse_local(spec: str, path: Path) -> LocalRunRef:
    path = path.resolve()
    if path.is_file():
        if not CHECKPOINT_RE.match(path.name):
            raise _bad(spec, f"{path.name} is not an SPD checkpoint (model_<step>.pth)")
        if not (path.parent / CONFIG_FILENAME).is_file():
            raise _bad(spec, f"{CONFIG_FILENAME} is missing beside {path}")
        return LocalRunRef(run_dir=path.parent, checkpoint=path)
    if not (path / CONFIG_FILENAME).is_file():
        raise _bad(spec, f"{path} has no {CONFIG_FILENAME}: it is not an SPD run directory")
    names = [p.name for p in path.iterdir() if p.is_file()]
    latest = latest_checkpoint_name(names)
    if latest is None:
        raise _bad(spec, f"{path} has no model_<step>.pth checkpoint")
    return LocalRunRef(run_dir=path, checkpoint=path / latest)


def latest_checkpoint_name(names: list[str]) -> str | None:
    """The `model_<step>.pth` with the highest step, compared as integers (10 after 6)."""
    steps = {int(m.group(1)): n for n in names if (m := CHECKPOINT_RE.match(n))}
    return steps[max(steps)] if steps else None


def local_run_id(checkpoint: Path) -> str:
    """`local-<run dir name>-<hash of the checkpoint's absolute path>`: stable across restarts.

    The directory and its final checkpoint file name the same checkpoint, so they get one id; an
    earlier checkpoint of the same run gets its own (its statistics differ).
    """
    resolved = checkpoint.resolve()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", resolved.parent.name).strip("._") or "run"
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    return f"local-{name[:40]}-{digest}"
