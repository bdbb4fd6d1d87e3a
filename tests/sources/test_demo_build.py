"""The demo build is deterministic: a tiny build run twice writes identical weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autointerp.errors import UserError
from autointerp.sources.demo.build import TINY, build
from autointerp.sources.demo.decomposition import DecomposedLM
from autointerp.sources.demo.model import DemoStoryLM, LMConfig
from autointerp.sources.demo.train import module_c_for
from autointerp.sources.demo.weights_file import WEIGHTS_FILE, load_weights


def test_tiny_build_twice_gives_identical_weights_that_load_back(tmp_path: Path) -> None:
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

    model, tokenizer = load_weights(first)
    assert model.target.cfg.d_model == TINY.d_model
    assert set(model.module_c.values()) == {TINY.spd.attention_c, TINY.spd.mlp_c}
    assert len(tokenizer) == model.target.cfg.vocab_size
    for name, tensor in model.components.state_dict().items():
        assert torch.equal(tensor, a["components_state"][name])


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


def test_missing_or_mismatched_weights_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing"):
        load_weights(tmp_path)
    torch.save({"format": 1, "vocabulary": [" some", " other", " words"]}, tmp_path / WEIGHTS_FILE)
    with pytest.raises(UserError, match="grammar"):
        load_weights(tmp_path)
