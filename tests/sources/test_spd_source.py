"""The SPD adapter against the SPD-shaped double, in both API variants, through `open_source`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from autointerp.errors import UserError
from autointerp.sources.open import open_source
from autointerp.sources.spd import SPDSource
from tests.sources.spd_double import EMBEDDING_ROWS, load_checkpoint_directly, make_spd_run
from tests.sources.word_tokenizer import WORDS, WordTokenizer

EXPECTED_LAYOUT = {
    "dec": [
        ("layers.0.mlp.up", 5),
        ("layers.0.mlp.down", 5),
        ("layers.1.mlp.up", 5),
        ("layers.1.mlp.down", 5),
    ],
    "feb": [
        ("layers.0.mlp.down", 3),
        ("layers.1.mlp.down", 3),
        ("layers.0.mlp.up", 4),
        ("layers.1.mlp.up", 4),
    ],
}


def write_stories(path: Path, n: int = 40) -> Path:
    g = torch.Generator().manual_seed(0)
    lines = []
    for _ in range(n):
        k = int(torch.randint(3, 25, (1,), generator=g))
        idx = torch.randint(0, len(WORDS), (k,), generator=g).tolist()
        lines.append(" ".join(WORDS[i] for i in idx))
    path.write_text("\n".join(lines) + "\n")
    return path


def open_run(tmp_path: Path, variant: str, **kwargs: Any) -> tuple[SPDSource, Path]:
    stories = write_stories(tmp_path / "stories.txt")
    run = make_spd_run(tmp_path / "run", variant, dataset=str(stories))
    tokenizer = WordTokenizer(appends_eos=True)
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    source = open_source(str(run), device="cpu", tokenizer=tokenizer, **kwargs)
    assert isinstance(source, SPDSource)
    return source, run


def reference_step(model: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CI and probabilities computed by hand from the double's weights, in float32."""
    target = model.target_model
    inputs: dict[str, torch.Tensor] = {}
    h = target.embed(tokens)
    for i, layer in enumerate(target.layers):
        inputs[f"layers.{i}.mlp.up"] = h
        a = torch.relu(layer.mlp["up"](h))
        inputs[f"layers.{i}.mlp.down"] = a
        h = h + layer.mlp["down"](a)
    probs = torch.softmax(target.lm_head(h), dim=-1)
    cis = [
        model.ci_fns[p.replace(".", "-")](inputs[p]).clamp(0, 1) for p in model.target_module_paths
    ]
    return torch.cat(cis, dim=-1), probs


@pytest.mark.parametrize("variant", ["dec", "feb"])
def test_layout_vocab_and_final_checkpoint(tmp_path: Path, fake_spd: Any, variant: str) -> None:
    fake_spd(variant)
    source, run = open_run(tmp_path, variant)
    assert source.layout == EXPECTED_LAYOUT[variant]
    assert source.vocab_size == EMBEDDING_ROWS != source.tokenizer.vocab_size  # type: ignore[attr-defined]
    assert source.model.loaded_from.name == "model_10.pth"
    direct = load_checkpoint_directly(run, variant, 10)
    for name, value in direct.state_dict().items():
        assert torch.equal(source.model.state_dict()[name], value), name
    assert source.architecture.module_c == dict(EXPECTED_LAYOUT[variant])
    assert source.architecture.n_layers == 2
    assert source.architecture.c == (5 if variant == "dec" else 4)
    assert source.architecture.model_class == "tests.sources.spd_double.TinyLM"
    assert source.run_id.startswith("local-run-")
    assert source.harvest_defaults == {"context_length": 16}
    fp = source.fingerprint()
    assert fp["checkpoint"] == "model_10.pth" and fp["seed"] == "3"
    assert source.decode(2) == WORDS[0]


@pytest.mark.parametrize("variant", ["dec", "feb"])
def test_step_concatenates_in_target_module_order_without_autocast(
    tmp_path: Path, fake_spd: Any, variant: str
) -> None:
    fake_spd(variant)
    source, run = open_run(tmp_path, variant)
    tokens = next(source.batches(3, 16))
    direct = load_checkpoint_directly(run, variant, 10)
    with torch.no_grad():
        ref_ci, ref_probs = reference_step(direct, tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast must not leak in
        ci, probs = source.step(tokens)
    assert ci.dtype == probs.dtype == torch.float32
    assert ci.shape == (3, 16, sum(c for _, c in EXPECTED_LAYOUT[variant]))
    assert probs.shape == (3, 16, EMBEDDING_ROWS)
    torch.testing.assert_close(ci, ref_ci, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(probs, ref_probs, rtol=1e-6, atol=1e-7)
    assert torch.equal(ci > 0, ref_ci > 0)  # firing counts are exact
    assert (ci == 0).any() and (ci == 1).any()  # clamp gives exact zeros and ones
    col = 0
    for path, c in source.layout:  # each module's block sits where the layout says
        block = direct.ci_fns[path.replace(".", "-")]
        assert block.out_features == c
        col += c
    assert col == ci.shape[-1]


def test_bf16_autocast_would_have_changed_values(tmp_path: Path, fake_spd: Any) -> None:
    """The no-autocast test above can fail: bf16 autocast really changes these CI values."""
    fake_spd("dec")
    source, run = open_run(tmp_path, "dec")
    tokens = next(source.batches(3, 16))
    direct = load_checkpoint_directly(run, "dec", 10)
    with torch.no_grad():
        ref_ci, _ = reference_step(direct, tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, cache = direct(tokens, cache_type="input")
            lower = direct.calc_causal_importances(cache, "continuous", True).lower_leaky
    rounded = torch.cat([lower[p].float() for p in direct.target_module_paths], dim=-1)
    assert not torch.allclose(rounded, ref_ci, rtol=1e-6, atol=1e-6)


def test_resume_matches_uninterrupted_stream(tmp_path: Path, fake_spd: Any) -> None:
    fake_spd("feb")
    source, _ = open_run(tmp_path, "feb")
    full = list(source.batches(2, 8))
    assert len(full) >= 5
    for start in (0, 1, 3, len(full) - 1, len(full), len(full) + 2):
        assert [b.tolist() for b in source.batches(2, 8, start=start)] == [
            b.tolist() for b in full[start:]
        ]


def test_missing_spd_package_says_what_to_install(tmp_path: Path) -> None:
    if importlib.util.find_spec("spd") is not None:
        pytest.skip("a real spd package is installed")
    stories = write_stories(tmp_path / "stories.txt")
    run = make_spd_run(tmp_path / "run", "dec", dataset=str(stories), steps=(1,))
    with pytest.raises(UserError, match="needs the SPD package") as e:
        open_source(str(run), device="cpu", tokenizer=WordTokenizer(), cache_dir=tmp_path)
    assert "pip install" in str(e.value) and "same Python environment" in str(e.value)


def test_missing_spd_package_is_reported_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("spd") is not None:
        pytest.skip("a real spd package is installed")
    import wandb

    def no_download(*_: Any, **__: Any) -> Any:
        raise AssertionError("wandb must not be contacted when SPD cannot load the run")

    monkeypatch.setattr(wandb, "Api", no_download)
    with pytest.raises(UserError, match="needs the SPD package"):
        open_source("goodfire/spd/abcd1234", device="cpu", cache_dir=tmp_path)


def test_spd_with_missing_dependency_names_it(tmp_path: Path, fake_spd: Any) -> None:
    fake_spd("dec", broken_dependency="jaxtyping_not_installed_here")
    stories = write_stories(tmp_path / "stories.txt")
    run = make_spd_run(tmp_path / "run", "dec", dataset=str(stories), steps=(1,))
    with pytest.raises(UserError, match="dependency 'jaxtyping_not_installed_here' is missing"):
        open_source(str(run), device="cpu", tokenizer=WordTokenizer(), cache_dir=tmp_path)


def test_tokenizer_by_name_without_transformers(tmp_path: Path, fake_spd: Any) -> None:
    if importlib.util.find_spec("transformers") is not None:
        pytest.skip("transformers is installed")
    fake_spd("dec")
    stories = write_stories(tmp_path / "stories.txt")
    run = make_spd_run(tmp_path / "run", "dec", dataset=str(stories), steps=(1,))
    with pytest.raises(UserError, match="pip install transformers"):
        open_source(str(run), device="cpu", cache_dir=tmp_path)


def test_dataset_by_name_without_datasets(tmp_path: Path, fake_spd: Any) -> None:
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed")
    fake_spd("dec")
    stories = write_stories(tmp_path / "stories.txt")
    run = make_spd_run(tmp_path / "run", "dec", dataset=str(stories), steps=(1,))
    with pytest.raises(UserError, match="pip install datasets"):
        open_source(
            str(run),
            device="cpu",
            tokenizer=WordTokenizer(),
            dataset="SimpleStories/SimpleStories",
            cache_dir=tmp_path,
        )


def test_dataset_override_and_text_column(tmp_path: Path, fake_spd: Any) -> None:
    fake_spd("dec")
    jsonl = tmp_path / "other.jsonl"
    jsonl.write_text('{"body": "the cat sat", "story": "x"}\n{"body": "a dog ran", "story": "y"}\n')
    source, _ = open_run(tmp_path, "dec", dataset=str(jsonl), text_column="body")
    tokens = next(source.batches(1, 8))
    words = {source.decode(int(t)) for t in tokens.flatten()}
    assert words == {"the", "cat", "sat", "a", "dog", "ran", "<eos>"}
    assert source.architecture.dataset_name == str(jsonl)
