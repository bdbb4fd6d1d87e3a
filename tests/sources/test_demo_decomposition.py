"""The decomposition's building blocks: exact initial reconstruction, the CI clamp's gradients."""

from __future__ import annotations

import torch

from autointerp.sources.demo.decomposition import (
    LEAK,
    DecomposedLM,
    lower_leaky_clamp,
    upper_leaky_clamp,
)
from autointerp.sources.demo.model import DemoStoryLM, LMConfig
from autointerp.sources.demo.train import module_c_for


def test_initial_components_reproduce_the_model_exactly() -> None:
    """Before training, the sum of all components is the target weight (all masks 1)."""
    target = DemoStoryLM(LMConfig(vocab_size=50, d_model=16, n_heads=2, d_mlp=32, max_context=8))
    model = DecomposedLM(target, module_c_for(2, attention_c=24, mlp_c=40), gate_hidden=2)
    model.initialise(torch.Generator().manual_seed(0))
    tokens = torch.randint(50, (3, 8), generator=torch.Generator().manual_seed(1))
    logits, _ = model.forward_with_inputs(tokens)
    all_on = {p: torch.ones(3, 8, c) for p, c in model.module_c.items()}
    torch.testing.assert_close(model.forward_masked(tokens, all_on), logits, atol=1e-4, rtol=0)
    assert model.faithfulness_loss().item() < 1e-10


def test_clamps_are_exact_forward_and_leak_only_on_their_side() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 1.5], requires_grad=True)
    for clamp, below, above in ((lower_leaky_clamp, LEAK, 0.0), (upper_leaky_clamp, 0.0, LEAK)):
        (grad,) = torch.autograd.grad(clamp(x).sum(), x)
        assert torch.equal(clamp(x).detach(), x.detach().clamp(0, 1))
        assert torch.equal(grad, torch.tensor([below, below, 1.0, 1.0, 1.0, above]))
