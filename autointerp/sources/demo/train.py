"""Training loops of the demo build: the language model, then its decomposition.

All randomness comes from explicit seeded generators (data from `stream.py`, initialisation and
masks from `torch.Generator`), so a build on the same machine and thread count is bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from autointerp.sources.demo.decomposition import (
    DecomposedLM,
    lower_leaky_clamp,
    upper_leaky_clamp,
)
from autointerp.sources.demo.model import DemoStoryLM, LMConfig, next_token_loss
from autointerp.sources.demo.stream import story_batch
from autointerp.sources.demo.tokenizer import WordTokenizer

Log = Callable[[str], None]


@dataclass(frozen=True)
class LMTrainConfig:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0


def module_c_for(n_layers: int, attention_c: int, mlp_c: int) -> dict[str, int]:
    """Components per decomposed module, in the model's module order; C differs per module kind
    (the SPD Feb 2026 shape)."""
    module_c: dict[str, int] = {}
    for i in range(n_layers):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            module_c[f"layers.{i}.self_attn.{name}"] = attention_c
        module_c[f"layers.{i}.mlp.up_proj"] = mlp_c
        module_c[f"layers.{i}.mlp.down_proj"] = mlp_c
    return module_c


@dataclass(frozen=True)
class SPDTrainConfig:
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 100
    gate_hidden: int = 4
    faithfulness_coeff: float = 3e4
    stochastic_recon_coeff: float = 1.0
    ci_recon_coeff: float = 1.0
    importance_coeff: float = 5e-2
    importance_p_start: float = 1.0
    importance_p_end: float = 0.5
    attention_c: int = 64
    mlp_c: int = 128
    seed: int = 1


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def train_lm(
    tokenizer: WordTokenizer, lm_cfg: LMConfig, cfg: LMTrainConfig, log: Log
) -> DemoStoryLM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = DemoStoryLM(lm_cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        tokens = story_batch(tokenizer, "train", step, cfg.batch_size, lm_cfg.max_context)
        loss = next_token_loss(model(tokens), tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 200 == 0 or step == cfg.steps - 1:
            log(f"lm step {step:5d}  loss {loss.item():.4f}")
    return model.eval().requires_grad_(False)


def _kl(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(target ‖ model)."""
    target = target_logits.log_softmax(-1)
    return (
        F.kl_div(logits.log_softmax(-1), target, log_target=True, reduction="none").sum(-1).mean()
    )


def train_decomposition(
    target: DemoStoryLM, tokenizer: WordTokenizer, cfg: SPDTrainConfig, log: Log
) -> DecomposedLM:
    generator = torch.Generator().manual_seed(cfg.seed)
    module_c = module_c_for(target.cfg.n_layers, cfg.attention_c, cfg.mlp_c)
    model = DecomposedLM(target, module_c, cfg.gate_hidden)
    model.initialise(generator)
    params = list(model.components.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    for step in range(cfg.steps):
        frac = step / max(1, cfg.steps - 1)
        p = cfg.importance_p_start + (cfg.importance_p_end - cfg.importance_p_start) * frac
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        tokens = story_batch(tokenizer, "spd", step, cfg.batch_size, target.cfg.max_context)
        with torch.no_grad():
            target_logits, inputs = model.forward_with_inputs(tokens)
        gates = model.gates(inputs)
        ci = {path: lower_leaky_clamp(g) for path, g in gates.items()}
        masks = {
            path: c + (1 - c) * torch.rand(c.shape, generator=generator) for path, c in ci.items()
        }
        stochastic = _kl(target_logits, model.forward_masked(tokens, masks))
        ci_masked = _kl(target_logits, model.forward_masked(tokens, ci))
        importance = sum(
            (upper_leaky_clamp(g) + 1e-12).pow(p).sum(-1).mean() for g in gates.values()
        )
        faithfulness = model.faithfulness_loss()
        loss = (
            cfg.faithfulness_coeff * faithfulness
            + cfg.stochastic_recon_coeff * stochastic
            + cfg.ci_recon_coeff * ci_masked
            + cfg.importance_coeff * importance
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            with torch.no_grad():
                density = torch.cat([(c > 0).flatten() for c in ci.values()]).float().mean()
            log(
                f"spd step {step:5d}  faith {faithfulness.item():.2e}"
                f"  stoch {stochastic.item():.4f}  ci {ci_masked.item():.4f}"
                f"  imp {float(importance.detach()):.1f}  p {p:.2f}"
                f"  density {density.item():.4f}"
            )
    return model.eval().requires_grad_(False)
