"""The demo build is deterministic: a tiny build run twice writes identical weights."""

from __future__ import annotations

from pathlib import Path

import torch

from autointerp.sources.demo.build import TINY, build
from autointerp.sources.demo.decomposition import DecomposedLM
from autointerp.sources.demo.model import DemoStoryLM, LMConfig
from autointerp.sources.demo.train import module_c_for
from autointerp.sources.demo.weights_file import WEIGHTS_FILE, load_weights


def test_tiny_build_twice_gives_identical_weights(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    build(TINY, first, log=lambda _line: None)
    build(TINY, second, log=lambda _line: None)
    a = torch.load(first / WEIGHTS_FILE, weights_only=True)
    b = torch.load(second / WEIGHTS_FILE, weights_only=True)
    assert a.keys() == b.keys()
    for section in ("lm_state", "components_state"):
        assert a[section].keys() == b[section].keys()
        for name, tensor in a[section].items():
            assert torch.equal(tensor, b[section][name]), f"{section}.{name} differs"
    assert (first / WEIGHTS_FILE).read_bytes() == (second / WEIGHTS_FILE).read_bytes()


def test_tiny_build_loads_back(tmp_path: Path) -> None:
    build(TINY, tmp_path, log=lambda _line: None)
    model, tokenizer = load_weights(tmp_path)
    assert model.target.cfg.d_model == TINY.d_model
    assert set(model.module_c.values()) == {TINY.spd.attention_c, TINY.spd.mlp_c}
    saved = torch.load(tmp_path / WEIGHTS_FILE, weights_only=True)
    for name, tensor in model.components.state_dict().items():
        assert torch.equal(tensor, saved["components_state"][name])
    assert len(tokenizer) == model.target.cfg.vocab_size


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
