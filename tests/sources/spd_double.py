"""An SPD-API-shaped test double, built only from the facts in SPEC, installed as a fake `spd`.

A real (tiny) torch language model is decomposed: `ComponentModel(tokens, cache_type="input")`
returns `(logits, {module_path: input})` via forward hooks, `calc_causal_importances(...)` returns
an object whose `lower_leaky` maps module path → `clamp(ci_fn(input), 0, 1)` [B,S,C_module]. Two
API variants: "dec" (Dec 2025: one `C` attribute, module order = model order) and "feb" (Feb 2026:
per-module `module_to_c`, no `C`, module order pattern by pattern). `install_fake_spd` writes a
package `spd` into a temp dir on `sys.path` whose `spd.models.component_model` re-exports these
classes, so the adapter's real `from spd.models.component_model import ...` path runs.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import torch
import yaml
from torch import nn

EMBEDDING_ROWS = 64
"""More rows than the test tokenizer's vocab: the adapter must read this, not the tokenizer."""


class TinyBlock(nn.Module):
    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.mlp = nn.ModuleDict(
            {"up": nn.Linear(d_model, d_hidden), "down": nn.Linear(d_hidden, d_model)}
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mlp["down"](torch.relu(self.mlp["up"](h)))


class TinyLM(nn.Module):
    """Embedding → blocks (`layers.i.mlp.up`, `layers.i.mlp.down`) → `lm_head`."""

    def __init__(self, vocab: int, d_model: int, d_hidden: int, n_layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList([TinyBlock(d_model, d_hidden) for _ in range(n_layers)])
        self.lm_head = nn.Linear(d_model, vocab)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for layer in self.layers:
            h = layer(h)
        return self.lm_head(h)


class OutputWithCache(NamedTuple):
    output: torch.Tensor
    cache: dict[str, torch.Tensor]


@dataclass
class CIOutputs:
    lower_leaky: dict[str, torch.Tensor]
    upper_leaky: dict[str, torch.Tensor]


def _model_order_paths(target: nn.Module, patterns: list[str]) -> list[str]:
    names = [n for n, m in target.named_modules() if isinstance(m, nn.Linear)]
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]


class _ComponentModelBase(nn.Module):
    def __init__(self, target: TinyLM, module_to_c: dict[str, int]) -> None:
        super().__init__()
        self.target_model = target
        self._paths = list(module_to_c)
        modules = dict(target.named_modules())
        self.ci_fns = nn.ModuleDict(
            {
                p.replace(".", "-"): nn.Linear(modules[p].in_features, c)
                for p, c in module_to_c.items()
            }
        )
        # CI functions output around 0 with both signs, so clamp gives exact zeros and ones.
        for fn in self.ci_fns.values():
            assert isinstance(fn, nn.Linear)
            nn.init.normal_(fn.weight, std=2.0)

    @property
    def target_module_paths(self) -> list[str]:
        return list(self._paths)

    def forward(self, tokens: torch.Tensor, cache_type: str = "none") -> Any:
        if cache_type == "none":
            return self.target_model(tokens)
        assert cache_type == "input"
        cache: dict[str, torch.Tensor] = {}
        modules = dict(self.target_model.named_modules())
        handles = [
            modules[p].register_forward_hook(
                lambda _m, args, _out, p=p: cache.__setitem__(p, args[0])
            )
            for p in self._paths
        ]
        try:
            out = self.target_model(tokens)
        finally:
            for h in handles:
                h.remove()
        return OutputWithCache(out, cache)

    def calc_causal_importances(
        self, pre_weight_acts: dict[str, torch.Tensor], sampling: str, detach_inputs: bool = False
    ) -> CIOutputs:
        assert sampling in ("continuous", "binomial")
        lower = {}
        for path, x in pre_weight_acts.items():  # the cache's (model) order, as SPD does
            pre = self.ci_fns[path.replace(".", "-")](x.detach() if detach_inputs else x)
            lower[path] = pre.clamp(0.0, 1.0)
        return CIOutputs(lower_leaky=lower, upper_leaky=dict(lower))

    @classmethod
    def from_run_info(cls, run_info: Any) -> Any:
        model = cls.build(run_info.config)
        state = torch.load(run_info.checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.loaded_from = Path(run_info.checkpoint_path)
        model.requires_grad_(False)
        return model


def _target_from(config: Any) -> TinyLM:
    d = config.double
    return TinyLM(EMBEDDING_ROWS, d["d_model"], d["d_hidden"], d["n_layers"])


class DecComponentModel(_ComponentModelBase):
    """Dec 2025: one `C` for every module, modules in the model's order, no `module_to_c`."""

    def __init__(self, target: TinyLM, patterns: list[str], c: int) -> None:
        super().__init__(target, {p: c for p in _model_order_paths(target, patterns)})
        self.C = c

    @classmethod
    def build(cls, config: Any) -> DecComponentModel:
        return cls(_target_from(config), list(config.target_module_patterns), int(config.C))


class FebComponentModel(_ComponentModelBase):
    """Feb 2026: per-module C, modules grouped pattern by pattern, no `C` attribute."""

    @classmethod
    def build(cls, config: Any) -> FebComponentModel:
        target = _target_from(config)
        module_to_c: dict[str, int] = {}
        for info in config.module_info:
            for path in _model_order_paths(target, [info["module_pattern"]]):
                module_to_c[path] = int(info["C"])
        model = cls(target, module_to_c)
        model.module_to_c = dict(module_to_c)
        return model


@dataclass
class SPDRunInfo:
    checkpoint_path: Path
    config: Any

    @classmethod
    def from_path(cls, path: str) -> SPDRunInfo:
        p = Path(path)
        if not p.is_absolute() and len(p.parts) == 3:
            raise RuntimeError(f"{path} would be parsed as a wandb path")
        if not p.is_file():
            raise IsADirectoryError(f"SPD needs the checkpoint file, got {path}")
        config = yaml.safe_load((p.parent / "final_config.yaml").read_text())
        return cls(checkpoint_path=p, config=SimpleNamespace(**config))


DEC_CONFIG: dict[str, Any] = {
    "C": 5,
    "target_module_patterns": ["layers.*.mlp.up", "layers.*.mlp.down"],
}
FEB_CONFIG: dict[str, Any] = {
    "module_info": [
        {"module_pattern": "layers.*.mlp.down", "C": 3},
        {"module_pattern": "layers.*.mlp.up", "C": 4},
    ],
}
MODEL_CLASSES = {"dec": DecComponentModel, "feb": FebComponentModel}


def run_config(variant: str, dataset: str, seed: int = 3) -> dict[str, Any]:
    return {
        "seed": seed,
        "sampling": "continuous",
        "pretrained_model_class": "tests.sources.spd_double.TinyLM",
        "tokenizer_name": "test/word-tokenizer",
        "task_config": {
            "task_name": "lm",
            "max_seq_len": 16,
            "dataset_name": dataset,
            "column_name": "story",
            "train_data_split": "train",
            "streaming": False,
        },
        "double": {"d_model": 8, "d_hidden": 12, "n_layers": 2},
        **(DEC_CONFIG if variant == "dec" else FEB_CONFIG),
    }


def make_spd_run(
    run_dir: Path, variant: str, dataset: str, steps: tuple[int, ...] = (2, 10, 6)
) -> Path:
    """A run directory: `final_config.yaml` and one differently-initialised checkpoint per step."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_config(variant, dataset)
    (run_dir / "final_config.yaml").write_text(yaml.safe_dump(config))
    for step in steps:
        torch.manual_seed(step)
        model = MODEL_CLASSES[variant].build(SimpleNamespace(**config))
        torch.save(model.state_dict(), run_dir / f"model_{step}.pth")
    return run_dir


def load_checkpoint_directly(run_dir: Path, variant: str, step: int) -> Any:
    """The double loaded straight from one checkpoint (no adapter), for reference values."""
    info = SPDRunInfo.from_path(str((run_dir / f"model_{step}.pth").resolve()))
    return MODEL_CLASSES[variant].from_run_info(info)


def write_fake_spd_package(root: Path, variant: str, broken_dependency: str | None = None) -> None:
    pkg = root / "spd"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    model_class = {"dec": "DecComponentModel", "feb": "FebComponentModel"}[variant]
    body = f"import {broken_dependency}\n" if broken_dependency else ""
    body += (
        f"from tests.sources.spd_double import {model_class} as ComponentModel\n"
        "from tests.sources.spd_double import SPDRunInfo\n"
        "__all__ = ['ComponentModel', 'SPDRunInfo']\n"
    )
    (pkg / "models" / "component_model.py").write_text(body)
