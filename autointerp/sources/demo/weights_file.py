"""Saving and loading the shipped demo weights (`weights/demo.pt`) and their quality figures.

One file holds everything the source needs: the vocabulary (checked against the grammar's, so a
changed grammar fails loudly instead of producing nonsense), the LM config and weights, and the
components and gates of every decomposed module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from autointerp.errors import UserError
from autointerp.sources.demo.decomposition import DecomposedLM
from autointerp.sources.demo.model import DemoStoryLM, LMConfig
from autointerp.sources.demo.tokenizer import WordTokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = "demo.pt"
QUALITY_FILE = "quality.json"
FORMAT = 1


def save_weights(model: DecomposedLM, tokenizer: WordTokenizer, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "vocabulary": tokenizer.vocabulary,
        "lm_config": model.target.cfg.to_dict(),
        "lm_state": {k: v.contiguous() for k, v in model.target.state_dict().items()},
        "module_c": model.module_c,
        "gate_hidden": model.gate_hidden,
        "components_state": {k: v.contiguous() for k, v in model.components.state_dict().items()},
    }
    path = out_dir / WEIGHTS_FILE
    torch.save(payload, path)
    return path


def save_quality(figures: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / QUALITY_FILE
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path


def load_weights(weights_dir: Path = WEIGHTS_DIR) -> tuple[DecomposedLM, WordTokenizer]:
    """The decomposed demo model (on CPU, eval mode) and its tokenizer."""
    path = weights_dir / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(
            f"the demo weights {path} are missing: reinstall autointerp, or rebuild them with "
            "`python -m autointerp.sources.demo.build`"
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    tokenizer = WordTokenizer()
    if payload.get("format") != FORMAT or payload["vocabulary"] != tokenizer.vocabulary:
        raise UserError(
            f"the demo weights {path} do not match this version's story grammar: rebuild them "
            "with `python -m autointerp.sources.demo.build`"
        )
    target = DemoStoryLM(LMConfig(**payload["lm_config"]))
    target.load_state_dict(payload["lm_state"])
    model = DecomposedLM(target, payload["module_c"], payload["gate_hidden"])
    model.components.load_state_dict(payload["components_state"])
    return model.eval().requires_grad_(False), tokenizer


def weights_sha256(weights_dir: Path = WEIGHTS_DIR) -> str:
    return hashlib.sha256((weights_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
