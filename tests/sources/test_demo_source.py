"""DemoSource honours the Source protocol exactly, on the shipped weights."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from autointerp.errors import UserError
from autointerp.sources.demo import DEMO_DEFAULTS, DemoSource, open_demo_source


@pytest.fixture(scope="module")
def source() -> DemoSource:
    return open_demo_source("cpu")


@pytest.fixture(scope="module")
def stepped(source: DemoSource) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens = next(source.batches(4, 64))
    ci, probs = source.step(tokens)
    return tokens, ci, probs


def test_identity_and_layout(source: DemoSource) -> None:
    assert source.run_id == "demo"
    assert source.description == "demo (embedded tiny story model)"
    assert source.device == torch.device("cpu")
    paths = [p for p, _ in source.layout]
    assert paths[0] == "layers.0.self_attn.q_proj"
    assert "layers.1.mlp.down_proj" in paths
    assert len(set(c for _, c in source.layout)) > 1, "C differs per module kind"
    arch = source.architecture
    assert arch.module_c == dict(source.layout)
    assert list(arch.module_c) == paths
    assert arch.n_layers == 2
    assert arch.c == max(c for _, c in source.layout)
    assert arch.model_class == "DemoStoryLM"
    assert arch.dataset_name == "generated simple stories"
    assert len(arch.dataset_description) > 50


def test_decode_every_id(source: DemoSource) -> None:
    texts = [source.decode(i) for i in range(source.vocab_size)]
    assert all(isinstance(t, str) and t for t in texts)
    assert len(set(texts)) == source.vocab_size
    assert " cat" in texts and "<eos>" in texts and "." in texts


def test_batches_shape_dtype_and_range(source: DemoSource) -> None:
    for tokens in itertools.islice(source.batches(3, 17), 2):
        assert tokens.shape == (3, 17)
        assert tokens.dtype == torch.int64
        assert int(tokens.min()) >= 0 and int(tokens.max()) < source.vocab_size


@settings(max_examples=10, deadline=None)
@given(
    batch_size=st.integers(1, 4),
    context_length=st.integers(1, 64),
    start=st.integers(0, 5),
)
def test_start_equals_skipping(
    source: DemoSource, batch_size: int, context_length: int, start: int
) -> None:
    """`batches(start=i)` is the reference stream with its first i batches skipped."""
    reference = list(itertools.islice(source.batches(batch_size, context_length), start + 2))
    resumed = list(itertools.islice(source.batches(batch_size, context_length, start), 2))
    for want, got in zip(reference[start:], resumed, strict=True):
        assert torch.equal(want, got)


def test_batches_differ_from_each_other(source: DemoSource) -> None:
    a, b = itertools.islice(source.batches(4, 64), 2)
    assert not torch.equal(a, b)


@pytest.mark.parametrize(
    ("batch_size", "context_length", "start"), [(0, 8, 0), (2, 65, 0), (2, 0, 0), (2, 8, -1)]
)
def test_bad_batch_requests_are_user_errors(
    source: DemoSource, batch_size: int, context_length: int, start: int
) -> None:
    with pytest.raises(UserError):
        next(source.batches(batch_size, context_length, start))


def test_step_shapes_dtypes_and_ranges(
    source: DemoSource, stepped: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    tokens, ci, probs = stepped
    n_total = sum(c for _, c in source.layout)
    assert ci.shape == (*tokens.shape, n_total) and ci.dtype == torch.float32
    assert probs.shape == (*tokens.shape, source.vocab_size) and probs.dtype == torch.float32
    assert ci.device == probs.device == source.device
    assert float(ci.min()) >= 0.0 and float(ci.max()) <= 1.0
    assert float((ci == 0).float().mean()) > 0.9, "most CI values are exactly zero"
    assert (ci > 0).any(), "some components fire"
    torch.testing.assert_close(probs.sum(-1), torch.ones(tokens.shape), atol=1e-5, rtol=0)
    assert not ci.requires_grad and ci.is_inference() and probs.is_inference()


def test_step_is_deterministic(
    source: DemoSource, stepped: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    tokens, ci, probs = stepped
    ci2, probs2 = source.step(tokens.clone())
    assert torch.equal(ci, ci2) and torch.equal(probs, probs2)


def test_step_ci_matches_a_per_component_reference(
    source: DemoSource, stepped: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    """Each component's CI is clamp(gate(v_cᵀ x), 0, 1), computed here one component at a time."""
    tokens, ci, _ = stepped
    model = source._model
    _, inputs = model.forward_with_inputs(tokens)
    offset = 0
    for path, c in source.layout:
        comp = model.component(path)
        x = inputs[path]
        for j in range(0, c, 7):
            inner = x @ comp.V[:, j]
            hidden = F.gelu(inner.unsqueeze(-1) * comp.gate_w1[j] + comp.gate_b1[j])
            gate = (hidden * comp.gate_w2[j]).sum(-1) + comp.gate_b2[j]
            torch.testing.assert_close(ci[..., offset + j], gate.clamp(0, 1), atol=1e-5, rtol=0)
        offset += c


def test_step_probs_are_the_original_models(
    source: DemoSource, stepped: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    tokens, _, probs = stepped
    with torch.no_grad():
        logits = source._model.target(tokens)
    torch.testing.assert_close(probs, logits.softmax(-1), atol=1e-6, rtol=0)


def test_fingerprint_is_stable_strings(source: DemoSource) -> None:
    fp = source.fingerprint()
    assert fp == open_demo_source("cpu").fingerprint()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fp.items())
    assert len(fp["weights_sha256"]) == 64


def test_demo_defaults_fit_the_model(source: DemoSource) -> None:
    assert set(DEMO_DEFAULTS) == {"n_batches", "batch_size", "context_length"}
    assert DEMO_DEFAULTS["context_length"] <= source.max_context
    assert source.harvest_defaults == DEMO_DEFAULTS
