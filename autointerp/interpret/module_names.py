"""Turn a module path such as `transformer.h.3.mlp.c_fc` into words a labeller can use."""

from __future__ import annotations

import re

_LAYERED = re.compile(r"(?:^|\.)(?:h|layers|blocks|layer|block)\.(\d+)\.(.+)$")

_ROLES: dict[str, str] = {
    # GPT-2 style (Conv1D names)
    "mlp.c_fc": "MLP up-projection",
    "mlp.c_proj": "MLP down-projection",
    "attn.c_attn": "attention query/key/value projection",
    "attn.c_proj": "attention output projection",
    # LLaMA style
    "mlp.up_proj": "MLP up-projection",
    "mlp.gate_proj": "MLP gate projection",
    "mlp.down_proj": "MLP down-projection",
    "self_attn.q_proj": "attention query projection",
    "self_attn.k_proj": "attention key projection",
    "self_attn.v_proj": "attention value projection",
    "self_attn.o_proj": "attention output projection",
    # GPT-NeoX / OPT / other common spellings
    "mlp.fc1": "MLP up-projection",
    "mlp.fc2": "MLP down-projection",
    "mlp.dense_h_to_4h": "MLP up-projection",
    "mlp.dense_4h_to_h": "MLP down-projection",
    "attention.query_key_value": "attention query/key/value projection",
    "attention.dense": "attention output projection",
    "attn.q_proj": "attention query projection",
    "attn.k_proj": "attention key projection",
    "attn.v_proj": "attention value projection",
    "attn.out_proj": "attention output projection",
    "attn.o_proj": "attention output projection",
}


def describe_module(module_path: str, n_layers: int | None = None) -> str:
    """`MLP up-projection in layer 3 of 4 (counting from 0)`; unknown paths come back unchanged.

    A known layer index with an unknown sub-module keeps the sub-module's own name.
    """
    match = _LAYERED.search(module_path)
    if match is None:
        return module_path
    layer, rest = int(match.group(1)), match.group(2)
    role = _ROLES.get(rest, f"`{rest}`")
    where = f"layer {layer}"
    if n_layers:
        where += f" of {n_layers} (counting from 0)"
    return f"{role} in {where}"
