"""A Llama-like decoder with random weights whose decomposed maps are sums of rank-one components.

Each of the q/k/v/o/up/down maps of every layer is `W = Σ_c v_c u_cᵀ = V @ U` (`V [d_in, C]`,
`U [C, d_out]`), exactly the form of an SPD decomposition. The forward pass multiplies by the
dense `W` (formed once at open time) the way SPD runs its target model, and keeps `V` for the
gates, so one step costs about what SPD's does: the target model's forward plus one
`[tokens, d_in] × [d_in, C]` product per module (SPD's small per-component gate MLPs on top of that
product are not modelled). `U` is not kept.

The stack is Llama's: token embedding, pre-norm blocks (RMSNorm, causal multi-head attention with
rotary position embeddings, SwiGLU MLP whose `gate_proj` is not decomposed), a final RMSNorm and an
untied unembedding, all float32. The weights are drawn on the harvest device from one seeded
generator, so nothing of the model's size crosses the host link. `V` has entries of variance
1/d_in, so inner activations of normalised inputs are of order one; the gates are calibrated on
the actual activations anyway (`gates.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from autointerp.sources.synthetic.shapes import SyntheticShape

MODULES = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
"""Decomposed maps of each layer, in module order: the layout is layer by layer in this order."""

QK_GAIN = 1.6
"""Extra scale of q and k: attention logits of std about 2.5, so heads attend to a few keys rather
than averaging the whole context."""
LOGIT_STD = 3.0
"""Std of the output logits: peaked next-token distributions, as a trained LM has."""
ROPE_BASE = 10_000.0
EPS = 1e-6


@dataclass
class Layer:
    weights: dict[str, torch.Tensor]
    """Module name (`MODULES`) → dense `W [d_in, d_out]` = V @ U."""
    gate_proj: torch.Tensor
    attn_norm: torch.Tensor
    mlp_norm: torch.Tensor


class SyntheticLlama:
    """Random Llama-like target model; `v[path]` are the components' input directions."""

    def __init__(self, shape: SyntheticShape, device: torch.device, seed: int) -> None:
        self.shape = shape
        self.device = device
        generator = torch.Generator(device=device).manual_seed(seed)

        def normal(*size: int, std: float) -> torch.Tensor:
            return torch.randn(*size, generator=generator, device=device).mul_(std)

        d, c = shape.d_model, shape.c_per_module
        dims = {
            "self_attn.q_proj": (d, d),
            "self_attn.k_proj": (d, d),
            "self_attn.v_proj": (d, d),
            "self_attn.o_proj": (d, d),
            "mlp.up_proj": (d, shape.d_mlp),
            "mlp.down_proj": (shape.d_mlp, d),
        }
        gains = {"self_attn.q_proj": QK_GAIN, "self_attn.k_proj": QK_GAIN}
        self.embed = normal(shape.vocab_size, d, std=1.0)
        self.v: dict[str, torch.Tensor] = {}
        self.layers: list[Layer] = []
        for i in range(shape.n_layers):
            weights = {}
            for name in MODULES:
                d_in, d_out = dims[name]
                v = normal(d_in, c, std=1.0 / math.sqrt(d_in))  # inner activations ~ unit scale
                u = normal(c, d_out, std=gains.get(name, 1.0) / math.sqrt(c))
                weights[name] = v @ u
                self.v[f"layers.{i}.{name}"] = v
                del u
            gate_proj = normal(d, shape.d_mlp, std=1.0 / math.sqrt(d))
            ones = torch.ones(d, device=device)
            self.layers.append(Layer(weights, gate_proj, ones, ones.clone()))
        self.final_norm = torch.ones(d, device=device)
        self.unembed = normal(d, shape.vocab_size, std=LOGIT_STD / math.sqrt(d))
        self._cos, self._sin = _rotary_tables(shape, device)

    @property
    def module_paths(self) -> list[str]:
        return list(self.v)

    def forward(
        self, tokens: torch.Tensor, *, logits: bool = True
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Logits `[B, S, V]` (None when `logits` is False) and each decomposed module's input,
        flattened to `[B·S, d_in]`. Tokens `int64 [B, S]` on the model's device, S ≤ max_context.
        """
        b, s = tokens.shape
        if s > self.shape.max_context:
            raise ValueError(f"the model reads at most {self.shape.max_context} tokens, got {s}")
        heads, d = self.shape.n_heads, self.shape.d_model
        inputs: dict[str, torch.Tensor] = {}
        x = self.embed[tokens].reshape(b * s, d)
        cos, sin = self._cos[:s], self._sin[:s]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, heads, d // heads).transpose(1, 2)

        for i, layer in enumerate(self.layers):
            w, prefix = layer.weights, f"layers.{i}."
            h = _rms_norm(x, layer.attn_norm)
            for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                inputs[prefix + name] = h
            q = _rotate(split(h @ w["self_attn.q_proj"]), cos, sin)
            k = _rotate(split(h @ w["self_attn.k_proj"]), cos, sin)
            attended = F.scaled_dot_product_attention(
                q, k, split(h @ w["self_attn.v_proj"]), is_causal=True
            )
            attended = attended.transpose(1, 2).reshape(b * s, d)
            inputs[prefix + "self_attn.o_proj"] = attended
            x = x + attended @ w["self_attn.o_proj"]
            h = _rms_norm(x, layer.mlp_norm)
            inputs[prefix + "mlp.up_proj"] = h
            hidden = F.silu(h @ layer.gate_proj) * (h @ w["mlp.up_proj"])
            inputs[prefix + "mlp.down_proj"] = hidden
            x = x + hidden @ w["mlp.down_proj"]
        if not logits:
            return None, inputs
        out = _rms_norm(x, self.final_norm) @ self.unembed
        return out.view(b, s, self.shape.vocab_size), inputs


def _rms_norm(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + EPS) * gain


def _rotary_tables(
    shape: SyntheticShape, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin `[max_context, head_dim]` of Llama's rotary embedding (halves rotated)."""
    head_dim = shape.d_model // shape.n_heads
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, device=device) / head_dim)
    angles = torch.arange(shape.max_context, device=device)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def _rotate(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = t.shape[-1] // 2
    rotated = torch.cat([-t[..., half:], t[..., :half]], dim=-1)
    return t * cos + rotated * sin
