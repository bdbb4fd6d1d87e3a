"""Small, hand-made records for labelling tests (no harvest, no torch)."""

from __future__ import annotations

from autointerp.schemas import (
    ActivationExample,
    ArchitectureInfo,
    ComponentCorrelations,
    ComponentData,
    TokenStats,
)

ARCH = ArchitectureInfo(
    n_layers=4,
    c=704,
    model_class="LlamaForCausalLM",
    dataset_name="SimpleStories/SimpleStories",
    dataset_description="Short, simple stories written for young children.",
)


def component(
    key: str = "model.layers.3.mlp.up_proj:17",
    *,
    firing_count: int = 120,
    input_precision: list[tuple[str, float]] | None = None,
    output_precision: list[tuple[str, float]] | None = None,
    example_tokens: list[str] | None = None,
) -> ComponentData:
    """A plausible alive component: fires on determiners, predicts nouns."""
    module, _, idx = key.rpartition(":")
    tokens = example_tokens or ["Once", " upon", " a", " time", ",", " the", " cat", " sat"]
    inp = input_precision or [(" the", 0.61), (" a", 0.42), (" an", 0.3)]
    out = output_precision or [(" cat", 0.2), (" dog", 0.18), (" girl", 0.1)]
    return ComponentData(
        component_key=key,
        layer=module,
        component_idx=int(idx),
        mean_ci=0.0123,
        activation_examples=[
            ActivationExample(
                tokens=tokens,
                ci_values=[0.0] * 5 + [1.0] + [0.0] * (len(tokens) - 6),
                active_pos=5,
                active_ci=1.0,
            ),
            ActivationExample(
                tokens=["<pad>", "<pad>", " a", " big", " dog"],
                ci_values=[0.0, 0.0, 0.75, 0.0, 0.0],
                active_pos=2,
                active_ci=0.75,
            ),
        ],
        input_token_stats=TokenStats(
            top_precision=inp,
            top_recall=[(" the", 0.55), (" a", 0.3), (" an", 0.05)],
            top_pmi=[(" an", 3.2), (" the", 2.9)],
        ),
        output_token_stats=TokenStats(
            top_precision=out,
            top_recall=[(" cat", 0.1), (" dog", 0.09)],
            top_pmi=[(" girl", 1.5)],
        ),
        correlations=ComponentCorrelations(
            precision=[("model.layers.2.mlp.down_proj:3", 0.8)],
            recall=[("model.layers.2.mlp.down_proj:3", 0.4)],
            pmi=[("model.layers.1.self_attn.q_proj:9", 2.5)],
            bottom_pmi=[("model.layers.0.mlp.up_proj:1", -1.25)],
        ),
        firing_count=firing_count,
        firing_density=firing_count / 100_000,
    )
