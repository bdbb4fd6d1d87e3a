"""Load an SPD ComponentModel through the SPD package itself, and read its shape.

SPD is imported lazily: the Feb 2026 package creates `~/spd_out` (or `$SPD_OUT_DIR`) on import, and
it is only needed when an SPD run is actually opened. Both the Dec 2025 API (one `model.C`) and the
Feb 2026 API (per-module `model.module_to_c`, no `C`) are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from autointerp.errors import UserError

SPD_INSTALL_HINT = (
    "Install the SPD package into this same Python environment, e.g. "
    "`pip install git+https://github.com/goodfire-ai/spd` or `pip install -e <your spd checkout>` "
    "(SPD needs Python 3.13)."
)


def load_component_model(checkpoint: Path) -> tuple[Any, Any]:
    """`(ComponentModel, sampling)` via `SPDRunInfo.from_path(<absolute checkpoint file>)`.

    SPD's loader needs the checkpoint FILE (it reads `final_config.yaml` beside it): a run directory
    fails, and a relative `a/b/c`-shaped path would be taken for a wandb path.
    """
    component_model_cls, run_info_cls = import_spd()
    path = str(Path(checkpoint).resolve())
    try:
        run_info = run_info_cls.from_path(path)
        model = component_model_cls.from_run_info(run_info)
    except Exception as e:
        raise UserError(
            f"SPD could not load {path}: {type(e).__name__}: {_first_line(e)}. Is the installed "
            "SPD package the version that trained this run, and can it reach the target model "
            "(pretrained_model_name / pretrained_model_path in final_config.yaml)?"
        ) from e
    sampling = getattr(run_info.config, "sampling", "continuous")
    return model, sampling


def import_spd() -> tuple[Any, Any]:
    """`(ComponentModel, SPDRunInfo)`, or a UserError saying what to install."""
    try:
        from spd.models.component_model import ComponentModel, SPDRunInfo
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing == "spd" or missing.startswith("spd."):
            raise UserError(
                f"opening an SPD run needs the SPD package, which is not importable here. "
                f"{SPD_INSTALL_HINT}"
            ) from None
        raise UserError(
            f"the SPD package is installed but its dependency {missing!r} is missing: "
            f"pip install {missing.split('.')[0]} (or reinstall SPD with its dependencies)"
        ) from None
    except ImportError as e:
        raise UserError(
            f"the SPD package failed to import ({_first_line(e)}). {SPD_INSTALL_HINT}"
        ) from None
    return ComponentModel, SPDRunInfo


def module_layout(model: Any) -> list[tuple[str, int]]:
    """Ordered `(module_path, C)` in `model.target_module_paths` order (never pattern order)."""
    paths = [str(p) for p in model.target_module_paths]
    per_module = getattr(model, "module_to_c", None)
    if isinstance(per_module, Mapping):
        missing = [p for p in paths if p not in per_module]
        if missing:
            raise UserError(f"SPD model has no component count for modules {missing}")
        return [(p, int(per_module[p])) for p in paths]
    shared_c = getattr(model, "C", None)
    if shared_c is None:
        raise UserError(
            "SPD model has neither `module_to_c` nor `C`: unsupported SPD version. "
            f"{SPD_INSTALL_HINT}"
        )
    return [(p, int(shared_c)) for p in paths]


def embedding_rows(target_model: nn.Module) -> int:
    """Vocab size as the rows of the input embedding (tokenizer sizes differ from it)."""
    getter = getattr(target_model, "get_input_embeddings", None)
    if callable(getter):
        try:
            embedding = getter()
        except NotImplementedError:
            embedding = None
        if isinstance(embedding, nn.Embedding):
            return int(embedding.num_embeddings)
    for module in target_model.modules():
        if isinstance(module, nn.Embedding):
            return int(module.num_embeddings)
    raise UserError("cannot find the target model's input embedding to read the vocab size")


def max_positions(target_model: nn.Module) -> int | None:
    """The most positions the target model reads, from its config (None when it says nothing)."""
    config = getattr(target_model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "block_size"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def count_layers(target_model: nn.Module, module_paths: list[str]) -> int:
    """Transformer blocks: from the model's config when it has one, else from the module paths."""
    config = getattr(target_model, "config", None)
    for name in ("num_hidden_layers", "n_layer", "n_layers", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    indices = {
        m.group(1)
        for p in module_paths
        if (m := re.search(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)", p))
    }
    return len(indices) or len(module_paths)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else ""
