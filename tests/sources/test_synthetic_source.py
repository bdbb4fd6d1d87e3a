"""The synthetic benchmark source: the Source protocol, determinism, SPD-like CI statistics at the
tiny scale, the `synthetic[:shape]` spellings, the refusal of options it would ignore, and a whole
daemon run on it. CPU only; the whole file takes a few seconds."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
import torch

from autointerp.errors import UserError
from autointerp.files import read_json, read_jsonl
from autointerp.schemas import ComponentData, InterpretationResult, RunState
from autointerp.sources.open import open_source
from autointerp.sources.paths import SyntheticRef, parse_source
from autointerp.sources.synthetic import SHAPES, open_synthetic_source
from autointerp.sources.synthetic.model import MODULES
from autointerp.sources.synthetic.rates import target_rates
from autointerp.sources.synthetic.source import SyntheticSource
from autointerp.store import RunDir
from tests.daemon.runner import REPO, child_env

DAEMON_ENTRY = "from autointerp.cli import daemon_main; raise SystemExit(daemon_main())"

DENSITY = (0.012, 0.025)
"""Share of (position, component) pairs with CI > 0 (target about 1.7%; a real SPD run ~1.7%)."""
DEAD = (0.18, 0.26)
"""Share of components that never fire in the sample (6 of every 32 by construction, plus rare
ones the sample misses)."""
MEDIAN_ALIVE_RATE = (0.006, 0.016)
ONES = (0.15, 0.25)
"""Share of firing CI values exactly 1.0 (a fifth by calibration)."""
TINY_VALUES = 0.15
"""At least this share of firing CI values is below 1e-3."""

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(scope="module")
def tiny() -> SyntheticSource:
    return open_synthetic_source("tiny", device="cpu")


def test_protocol_shapes_and_dtypes(tiny: SyntheticSource) -> None:
    shape = SHAPES["tiny"]
    assert tiny.run_id == "synthetic-tiny"
    assert tiny.description.startswith("synthetic:tiny")
    assert tiny.layout == [
        (f"layers.{i}.{name}", 32) for i in range(shape.n_layers) for name in MODULES
    ]
    assert tiny.vocab_size == 300 and tiny.max_context == 64
    assert tiny.architecture.module_c == dict(tiny.layout)
    assert tiny.architecture.n_layers == 2 and tiny.architecture.c == 32
    assert tiny.harvest_defaults == {"n_batches": 20, "batch_size": 8, "context_length": 64}
    assert tiny.device == torch.device("cpu")
    assert tiny.decode(0) == "tok0" and tiny.decode(299) == "tok299"

    tokens = next(tiny.batches(3, 17))
    assert tokens.dtype == torch.int64 and tokens.shape == (3, 17)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < tiny.vocab_size
    ci, probs = tiny.step(tokens)
    assert ci.dtype == probs.dtype == torch.float32
    assert ci.shape == (3, 17, 384) and probs.shape == (3, 17, 300)
    assert ci.device == probs.device == tiny.device
    assert float(ci.min()) >= 0.0 and float(ci.max()) <= 1.0
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 17))


def test_large_shapes_match_the_runs_they_stand_for() -> None:
    ss, pile = SHAPES["simplestories"], SHAPES["pile"]
    assert (ss.n_modules, ss.c_per_module, ss.n_components) == (24, 704, 16_896)
    assert (ss.vocab_size, ss.max_context, ss.batch_size, ss.d_model) == (4019, 512, 32, 768)
    assert (pile.n_modules, pile.c_per_module, pile.n_components) == (24, 1664, 39_936)
    assert (pile.vocab_size, pile.max_context, pile.batch_size) == (50_277, 512, 16)


def test_batches_are_deterministic_and_resume_exactly(tiny: SyntheticSource) -> None:
    whole = list(islice(tiny.batches(4, 16), 6))
    tail = list(islice(tiny.batches(4, 16, start=2), 4))
    for a, b in zip(whole[2:], tail, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(whole[0], whole[1])
    again = open_synthetic_source("tiny", device="cpu")
    for a, b in zip(whole, islice(again.batches(4, 16), 6), strict=True):
        assert torch.equal(a, b)
    # Frequent ids are small: a Zipf-like unigram distribution.
    counts = torch.bincount(torch.cat([t.flatten() for t in whole]), minlength=300)
    assert counts[:10].sum() > counts[-100:].sum()


def test_step_and_model_are_deterministic(tiny: SyntheticSource) -> None:
    tokens = next(tiny.batches(2, 64, start=5))
    ci, probs = tiny.step(tokens)
    ci2, probs2 = tiny.step(tokens)
    assert torch.equal(ci, ci2) and torch.equal(probs, probs2)
    again = open_synthetic_source("tiny", device="cpu")
    ci3, probs3 = again.step(tokens)
    assert torch.equal(ci, ci3) and torch.equal(probs, probs3)
    assert again.fingerprint() == tiny.fingerprint()
    assert tiny.fingerprint()["shape"] == "tiny"
    other_seed = open_synthetic_source("tiny", device="cpu", seed=1)
    assert other_seed.fingerprint() != tiny.fingerprint()


def test_batches_refuse_sizes_the_model_cannot_read(tiny: SyntheticSource) -> None:
    with pytest.raises(UserError, match="at most 64 tokens"):
        tiny.batches(2, 65)
    with pytest.raises(UserError, match="batch size"):
        tiny.batches(0, 8)
    with pytest.raises(UserError, match="start batch"):
        tiny.batches(2, 8, start=-1)


@pytest.mark.parametrize("device", DEVICES)
def test_ci_statistics_are_spd_like(device: str) -> None:
    source = open_synthetic_source("tiny", device=device)
    c = sum(n for _, n in source.layout)
    ci = torch.cat(
        [source.step(t)[0].reshape(-1, c).cpu() for t in islice(source.batches(8, 64), 16)]
    )  # 8,192 positions
    fires = ci > 0
    rate = fires.double().mean(0)
    values = ci[fires]
    assert DENSITY[0] <= float(rate.mean()) <= DENSITY[1]
    assert DEAD[0] <= float((rate == 0).double().mean()) <= DEAD[1]
    assert MEDIAN_ALIVE_RATE[0] <= float(rate[rate > 0].median()) <= MEDIAN_ALIVE_RATE[1]
    assert ONES[0] <= float((values == 1.0).double().mean()) <= ONES[1]
    assert float((values < 1e-3).double().mean()) >= TINY_VALUES
    # Each component fires at about its calibrated rate; dead ones never do.
    target = target_rates(source.layout, seed=0)
    assert bool((rate[target == 0] == 0).all())
    common = target >= 0.02
    assert 0.8 <= float((rate[common] / target[common]).median()) <= 1.25
    assert float(torch.corrcoef(torch.stack([rate, target]))[0, 1]) > 0.9


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("synthetic", "simplestories"),
        ("synthetic:simplestories", "simplestories"),
        ("synthetic:pile", "pile"),
        ("synthetic:tiny", "tiny"),
        ("  synthetic:tiny\n", "tiny"),
    ],
)
def test_synthetic_spellings(spec: str, shape: str) -> None:
    assert parse_source(spec) == SyntheticRef(shape)


@pytest.mark.parametrize("spec", ["synthetic:", "synthetic:huge", "synthetic:Tiny"])
def test_unknown_synthetic_shapes_are_refused(spec: str) -> None:
    with pytest.raises(UserError, match="not a synthetic shape") as e:
        parse_source(spec)
    assert "simplestories, pile, tiny" in str(e.value)
    assert "synthetic[:simplestories|:pile|:tiny]" in str(e.value)  # the accepted forms


def test_parsing_a_synthetic_spec_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from autointerp.sources.paths import parse_source\n"
        "parse_source('synthetic:pile')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"


def test_open_source_opens_the_synthetic_model() -> None:
    source = open_source("synthetic:tiny", device="cpu")
    assert isinstance(source, SyntheticSource)
    assert source.run_id == "synthetic-tiny" and source.device == torch.device("cpu")


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ({"dataset": "stories.txt"}, "--dataset"),
        ({"tokenizer": "gpt2"}, "--tokenizer"),
        ({"text_column": "story"}, "--text-column"),
        ({"cache_dir": "/tmp/cache"}, "--cache-dir"),
    ],
)
def test_options_it_would_ignore_are_refused(option: dict[str, str], flag: str) -> None:
    with pytest.raises(UserError) as e:
        open_source("synthetic:tiny", device="cpu", **option)  # type: ignore[arg-type]
    assert str(e.value) == (
        f"{flag} cannot be used with the synthetic source synthetic:tiny: it brings its own "
        "model and data (these options apply to SPD runs)"
    )


def test_the_daemon_harvests_and_labels_the_tiny_shape(tmp_path: Path) -> None:
    argv = ["synthetic:tiny", "--labeller", "offline", "--plain", "--device", "cpu"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            DAEMON_ENTRY,
            *argv,
            "--data-dir",
            str(tmp_path),
            "--n-batches",
            "3",
        ],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "phase done" in done.stdout
    run = RunDir(tmp_path / "synthetic-tiny")
    comps, report = read_jsonl(run.components_path, ComponentData)
    assert len(comps) == 384 and not report.bad_lines
    alive = {c.component_key for c in comps if c.firing_count > 0}
    assert 0.6 * 384 <= len(alive) <= 0.82 * 384
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    labelled = Counter(r.component_key for r in results)
    assert set(labelled) == alive and set(labelled.values()) == {1}
    assert all(r.labeller == "offline" and r.label for r in results)
    assert read_json(run.state_path, RunState).phase == "done"
