"""Write a finished, labelled and scored run directory with the project's own writers.

Used by the report tests (a few dozen components, one of them hostile) and by
`bench/report_load.py` (40k components). The files are real: the same schemas, the same line
encoding (`files.encode_line`), the same layout as a daemon's run; lines go through one buffered
writer per file rather than an fsync each, so that 40k components take seconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from autointerp.files import JsonlAppender, encode_line, write_json_atomic
from autointerp.schemas import (
    PAD_TOKEN,
    ActivationExample,
    ArchitectureInfo,
    ComponentCorrelations,
    ComponentData,
    HarvestConfig,
    HarvestSummary,
    HeldOutData,
    InterpretationResult,
    LabelFailure,
    RunState,
    ScoreRecord,
    TokenStats,
)
from autointerp.store import RunDir

_VOCAB = (
    "the a girl boy dog cat park tree red blue green happy sad ran jumped said was very named "
    'Lily Tom Sue Max in to home school ball apple big small . , ! ? " Once upon time'
)
WORDS = tuple(f" {w}" if w[0].isalnum() else w for w in _VOCAB.split(" "))
SCORERS = ("detection", "fuzzing", "intruder", "simulation")

HOSTILE_MODULE = 'blocks.9.attn"></script><script>window.pwned=3</script>/../x'
HOSTILE_KEY = f"{HOSTILE_MODULE}:0"
HOSTILE_LABEL = "<img src=x onerror=window.pwned=1> \"quoted\" 'single' &amp; \u202eevil"
HOSTILE_REASONING = (
    "</script><script>window.pwned=2</script> onerror=alert(1) \x1b[31m\x00 line1\nline2"
)
HOSTILE_TOKENS = ["<script>", "</script>", "\u202e", '"', "'", "<img src=x onerror=alert(1)>", "\n"]


@dataclass(frozen=True)
class RunSpec:
    n_components: int = 60
    modules_per_layer: tuple[str, ...] = ("attn.q_proj", "attn.k_proj", "mlp.up_proj")
    n_layers: int = 2
    dead_every: int = 5
    """Every `dead_every`-th component never fired (0: none)."""
    unlabelled_every: int = 0
    """Every such alive component has no label yet (0: all labelled)."""
    examples: int = 6
    heldout: int = 4
    window: int = 8
    """Tokens each side of the firing token."""
    scorers: tuple[str, ...] = SCORERS
    hostile: bool = False
    """Add one component whose module, label, reasoning and tokens are hostile text."""
    seed: int = 0


def modules(spec: RunSpec) -> list[tuple[str, int]]:
    names = [
        f"blocks.{layer}.{m}" for layer in range(spec.n_layers) for m in spec.modules_per_layer
    ]
    per = max(1, spec.n_components // len(names))
    layout = [(name, per) for name in names]
    layout[-1] = (names[-1], spec.n_components - per * (len(names) - 1))
    return layout


def label_of(key: str, rng: random.Random) -> tuple[str, str, str]:
    a, b, c = rng.sample(WORDS, 3)
    return (f'fires on "{a}" after "{b}", predicts "{c}"', f'fires on "{a}"', f'predicts "{c}"')


def _example(rng: random.Random, spec: RunSpec, hostile: bool, firing: bool) -> ActivationExample:
    n = 2 * spec.window + 1
    tokens = [rng.choice(WORDS) for _ in range(n)]
    if hostile:
        tokens[: len(HOSTILE_TOKENS)] = HOSTILE_TOKENS
    if rng.random() < 0.2:
        tokens[-2:] = [PAD_TOKEN, PAD_TOKEN]
    ci = [0.0] * n
    if firing:
        for i in range(n):
            if rng.random() < 0.15:
                ci[i] = round(rng.random(), 3)
        ci[spec.window] = round(0.3 + 0.7 * rng.random(), 3)
    return ActivationExample(
        tokens=tokens,
        ci_values=ci,
        active_pos=spec.window,
        active_ci=ci[spec.window],
        stream_pos=rng.randrange(10**6),
    )


def _stats(rng: random.Random, hostile: bool) -> TokenStats:
    def rows() -> list[tuple[str, float]]:
        toks = HOSTILE_TOKENS[:5] if hostile else rng.sample(WORDS, 5)
        return [(t, round(rng.random(), 3)) for t in toks]

    return TokenStats(top_precision=rows(), top_recall=rows(), top_pmi=rows())


def _score(key: str, scorer: str, rng: random.Random, label: str) -> ScoreRecord:
    if rng.random() < 0.1:
        return ScoreRecord(key, scorer, None, None, None, 0, answerer="offline", model="offline")
    lo_axis = -1.0 if scorer == "simulation" else 0.0
    score = round(lo_axis + (1 - lo_axis) * rng.random(), 3)
    half = 0.05 + 0.1 * rng.random()
    return ScoreRecord(
        component_key=key,
        scorer=scorer,
        score=score,
        ci_low=max(lo_axis, score - half),
        ci_high=min(1.0, score + half),
        n=40,
        metrics={"precision": round(rng.random(), 3), "recall": round(rng.random(), 3)},
        answerer="offline",
        model="offline",
        label=label,
    )


@dataclass
class Written:
    run: RunDir
    labelled: list[str]
    alive: list[str]
    dead: list[str]
    failed: list[str]
    hostile_key: str | None


def _components(spec: RunSpec) -> Iterator[tuple[str, str, int, bool]]:
    layout = modules(spec)
    if spec.hostile:
        layout = [*layout, (HOSTILE_MODULE, 1)]
    n = 0
    for module, count in layout:
        for index in range(count):
            n += 1
            dead = module != HOSTILE_MODULE and spec.dead_every > 0 and n % spec.dead_every == 0
            yield module, f"{module}:{index}", index, not dead


def write_run(root: Path, spec: RunSpec = RunSpec()) -> Written:
    """A run directory at `root` as the daemon and `autointerp score` leave it."""
    rng = random.Random(spec.seed)
    run = RunDir(Path(root))
    run.ensure()
    layout = modules(spec) + ([(HOSTILE_MODULE, 1)] if spec.hostile else [])
    arch = ArchitectureInfo(
        n_layers=spec.n_layers,
        c=max(n for _, n in layout),
        model_class="SyntheticLM",
        dataset_name="synthetic stories",
        dataset_description="generated for the report tests",
        module_c=dict(layout),
    )
    config = HarvestConfig(
        run_id=run.root.name,
        source="synthetic (tests/report/runs.py)",
        source_fingerprint={"source": "synthetic"},
        layout=layout,
        vocab_size=len(WORDS),
        n_batches=10,
        batch_size=8,
        context_length=64,
        ci_threshold=0.0,
        examples_per_component=spec.examples,
        context_tokens_per_side=spec.window,
        top_k=5,
        seed=spec.seed,
        architecture=arch,
        heldout_per_component=spec.heldout,
        negatives_per_component=spec.heldout,
    )
    write_json_atomic(run.config_path, config)
    out = Written(run, [], [], [], [], HOSTILE_KEY if spec.hostile else None)
    all_keys = [key for _, key, _, _ in _components(spec)]
    results = open(run.results_path, "wb")  # noqa: SIM115 - many lines: one buffered writer
    components = open(run.components_path, "wb")  # noqa: SIM115
    heldout = open(run.heldout_path, "wb")  # noqa: SIM115
    run.scores_dir.mkdir(parents=True, exist_ok=True)
    scores = {s: open(run.score_path(s), "wb") for s in spec.scorers}  # noqa: SIM115
    skipped = 0
    try:
        for module, key, index, alive in _components(spec):
            hostile = key == HOSTILE_KEY
            examples = [_example(rng, spec, hostile, True) for _ in range(spec.examples)]
            density = 10 ** rng.uniform(-5, -0.5) if alive else 0.0
            partners = rng.sample(all_keys, min(4, len(all_keys)))
            corr = [(k, round(rng.random(), 3)) for k in partners]
            record = ComponentData(
                component_key=key,
                layer=module,
                component_idx=index,
                mean_ci=round(rng.random() * 0.3, 4) if alive else 0.0,
                activation_examples=examples if alive else [],
                input_token_stats=_stats(rng, hostile),
                output_token_stats=_stats(rng, hostile),
                correlations=ComponentCorrelations(corr, corr, corr, corr),
                firing_count=int(density * 5120) + 1 if alive else 0,
                firing_density=density,
            )
            components.write(encode_line(record))
            if not alive:
                out.dead.append(key)
                continue
            out.alive.append(key)
            if spec.heldout:
                held = HeldOutData(
                    component_key=key,
                    activating=[_example(rng, spec, hostile, True) for _ in range(spec.heldout)],
                    non_activating=[
                        _example(rng, spec, hostile, False) for _ in range(spec.heldout)
                    ],
                )
                heldout.write(encode_line(held))
            if (
                not hostile
                and spec.unlabelled_every
                and len(out.alive) % spec.unlabelled_every == 0
            ):
                skipped += 1
                if skipped % 2:  # every other one failed; the rest are not labelled yet
                    out.failed.append(key)
                continue
            label, side_in, side_out = label_of(key, rng)
            reasoning = "The input precision is high for these tokens.\nSecond line of reasoning."
            if hostile:
                label, side_in, side_out = HOSTILE_LABEL, HOSTILE_LABEL, HOSTILE_REASONING
                reasoning = HOSTILE_REASONING
            result = InterpretationResult(
                component_key=key,
                label=label,
                confidence=rng.choice(("low", "medium", "high")),
                reasoning=reasoning,
                raw_response="",
                labeller="offline",
                model="offline",
                timestamp=1.0,
            )
            line = encode_line(result)
            results.write(_with_sides(line, side_in, side_out))
            out.labelled.append(key)
            for scorer in spec.scorers:
                scores[scorer].write(encode_line(_score(key, scorer, rng, label)))
    finally:
        for f in (results, components, heldout, *scores.values()):
            f.close()
    with JsonlAppender(run.failures_path) as failures:
        for key in out.failed:
            failures.append(LabelFailure(key, "the API said no (test)", 3, "claude", "m"))
    n_alive, n_dead = len(out.alive), len(out.dead)
    summary = HarvestSummary(
        n_tokens=5120,
        n_batches=10,
        n_components=n_alive + n_dead,
        n_alive=n_alive,
        n_dead=n_dead,
        ci_threshold=0.0,
        components_per_module=dict(layout),
        alive_per_module={},
        firing_count_quantiles={},
        firing_count_histogram_edges=[],
        firing_count_histogram=[],
        mean_firings_per_token=1.0,
    )
    write_json_atomic(run.summary_path, summary)
    write_json_atomic(
        run.state_path,
        RunState(
            harvest_complete=True,
            finalize_complete=True,
            labelling_complete=not out.failed,
            n_batches=10,
            batches_done=10,
            n_tokens=5120,
            n_components=n_alive + n_dead,
        ),
    )
    return out


def _with_sides(line: bytes, input_label: str, output_label: str) -> bytes:
    """Add both sides' labels to a results line, whether or not this checkout's
    `InterpretationResult` has those fields yet (the report reads them when present)."""
    record = msgspec.json.decode(line)
    record["input_label"] = input_label
    record["output_label"] = output_label
    return msgspec.json.encode(record) + b"\n"


def result_line(key: str, label: str, confidence: str = "high") -> bytes:
    """One more `results.jsonl` line, as a labelling daemon appends it."""
    return encode_line(
        InterpretationResult(
            component_key=key,
            label=label,
            confidence=confidence,  # type: ignore[arg-type]
            reasoning="appended while the report was served",
            raw_response="",
            labeller="offline",
            model="offline",
        )
    )
