"""`open_source(spec, ...)`: the one entry point from a source argument to a ready Source.

Blocking (downloads, model loading, tokenizer and dataset loading): the daemon calls it in a worker
thread, never on the event loop. torch is imported only when a source is opened, so building the
CLI parser stays fast. Options a source would ignore are refused before anything is loaded.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import UserError
from autointerp.sources.paths import (
    DemoRef,
    FactoryRef,
    LocalRunRef,
    SyntheticRef,
    WandbRunRef,
    describe_source_forms,
    parse_source,
)

if TYPE_CHECKING:
    import torch

    from autointerp.sources.base import Source
    from autointerp.sources.tokenizers import TextTokenizer

TOKEN_INDEX_DIRNAME = ".token-index"
"""Under the cache root: per-dataset token length files that make resuming instant."""

__all__ = ["SourceOptions", "describe_source_forms", "open_source", "resolve_device"]


@dataclass(frozen=True)
class SourceOptions:
    """Where the model and data come from, as the user gave it."""

    spec: str
    device: str = "auto"
    cache_dir: str | None = None
    dataset: str | None = None
    tokenizer: str | None = None
    text_column: str | None = None

    def open(self) -> Source:
        return open_source(
            self.spec,
            device=self.device,
            cache_dir=self.cache_dir,
            dataset=self.dataset,
            tokenizer=self.tokenizer,
            text_column=self.text_column,
        )


def open_source(
    spec: str,
    *,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    dataset: str | None = None,
    tokenizer: str | TextTokenizer | None = None,
    text_column: str | None = None,
) -> Source:
    """Parse `spec`, fetch what it names (cached wandb files are reused offline) and load it."""
    ref = parse_source(spec)
    if isinstance(ref, DemoRef | SyntheticRef | FactoryRef):
        _refuse_ignored(
            _self_contained_name(ref, spec),
            {
                "--cache-dir": cache_dir,
                "--dataset": dataset,
                "--tokenizer": tokenizer,
                "--text-column": text_column,
            },
        )
    resolved = resolve_device(device)
    if isinstance(ref, DemoRef):
        demo = importlib.import_module("autointerp.sources.demo")
        return demo.open_demo_source(device=resolved)
    if isinstance(ref, SyntheticRef):
        synthetic = importlib.import_module("autointerp.sources.synthetic")
        return synthetic.open_synthetic_source(ref.shape, device=resolved)
    if isinstance(ref, FactoryRef):
        return _open_factory(ref, resolved)
    from autointerp.sources.spd import open_spd_source
    from autointerp.sources.spd_model import import_spd
    from autointerp.sources.wandb_files import default_cache_root, fetch_run_files

    import_spd()  # no SPD package: say so before downloading a checkpoint it could not load
    cache_root = Path(cache_dir).expanduser() if cache_dir else default_cache_root()
    if isinstance(ref, WandbRunRef):
        files = fetch_run_files(ref, cache_root)
        checkpoint, run_id, description = files.checkpoint_path, ref.run_id, ref.description
    else:
        assert isinstance(ref, LocalRunRef)
        checkpoint, run_id, description = ref.checkpoint, ref.run_id, ref.description
    return open_spd_source(
        checkpoint=checkpoint,
        run_id=run_id,
        description=description,
        device=resolved,
        dataset=dataset,
        tokenizer=tokenizer,
        text_column=text_column,
        index_dir=cache_root / TOKEN_INDEX_DIRNAME,
    )


def _self_contained_name(ref: DemoRef | SyntheticRef | FactoryRef, spec: str) -> str:
    """How the refusal of ignored options names a source that brings its own model and data."""
    if isinstance(ref, DemoRef):
        return "the demo"
    if isinstance(ref, SyntheticRef):
        return f"the synthetic source synthetic:{ref.shape}"
    return f"source {spec!r}"


def _refuse_ignored(what: str, given: dict[str, object]) -> None:
    """A UserError naming the options this source would silently ignore."""
    ignored = [name for name, value in given.items() if value is not None]
    if ignored:
        raise UserError(
            f"{', '.join(ignored)} cannot be used with {what}: it brings its own model and "
            "data (these options apply to SPD runs)"
        )


def _open_factory(ref: FactoryRef, device: torch.device) -> Any:
    try:
        module = importlib.import_module(ref.module)
    except ImportError as e:
        raise UserError(
            f"cannot import {ref.module!r} for py:{ref.module}:{ref.attribute}: {e}"
        ) from None
    factory = getattr(module, ref.attribute, None)
    if not callable(factory):
        raise UserError(f"{ref.module} has no callable {ref.attribute!r}")
    return factory(device=device)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`auto` (cuda when available, else cpu), `cpu`, `cuda`, `cuda:N` or `mps`, checked."""
    import torch

    if isinstance(device, torch.device):
        return device
    text = (device or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if m := re.fullmatch(r"cuda(?::(\d+))?", text):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available here (use --device cpu)")
        index = int(m.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise UserError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device("cuda", index)
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("--device mps: MPS is not available here (use --device cpu)")
        return torch.device("mps")
    raise UserError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
