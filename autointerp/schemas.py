"""Typed records written to and read from the run directory.

Field names follow the reference layout (see SPEC): existing readers depend on them, so fields are
only ever added, never renamed. Every record is a msgspec Struct so that encoding is fast and
decoding validates. The component records (hundreds of thousands per finalize, holding only strings,
numbers and each other) are not tracked by the cyclic GC (`gc=False`): they cannot form cycles.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

Confidence = Literal["low", "medium", "high"]
Phase = Literal["harvest", "finalize", "label", "done"]

PAD_TOKEN = "<pad>"
"""How the sentinel that pads activation windows at sequence edges is rendered."""


def finite(x: float, default: float = 0.0) -> float:
    """msgspec writes NaN/Inf as null and then cannot read it back into a float: sanitise first."""
    return x if math.isfinite(x) else default


class ActivationExample(msgspec.Struct, gc=False):
    tokens: list[str]
    ci_values: list[float]
    active_pos: int
    active_ci: float
    stream_pos: int = -1
    """Position of the window's centre token in the harvested stream (-1: not recorded), so
    that held-out windows can be checked to be disjoint from the shown ones."""


class TokenStats(msgspec.Struct, gc=False):
    top_precision: list[tuple[str, float]]
    top_recall: list[tuple[str, float]]
    top_pmi: list[tuple[str, float]]


class ComponentCorrelations(msgspec.Struct, gc=False):
    precision: list[tuple[str, float]]
    recall: list[tuple[str, float]]
    pmi: list[tuple[str, float]]
    bottom_pmi: list[tuple[str, float]]


class ComponentData(msgspec.Struct, gc=False):
    component_key: str
    layer: str
    component_idx: int
    mean_ci: float
    activation_examples: list[ActivationExample]
    input_token_stats: TokenStats
    output_token_stats: TokenStats
    correlations: ComponentCorrelations
    firing_count: int = 0
    firing_density: float = 0.0


class HeldOutData(msgspec.Struct, gc=False):
    """`harvest/heldout.jsonl`: windows kept from the labeller, for scoring its label.

    `activating`: a uniform sample of the component's firings, disjoint from the shown
    examples. `non_activating`: windows where the component fires nowhere (every `ci_values`
    entry at or below the threshold), checked on the CI. `active_pos` is the window's centre.
    `hard_non_activating`: windows, as silent for the component, centred where one of its
    co-firing partners fires; `hard_partners[i]` is the key of the partner that fired at the
    centre of window i. Both are empty in files written before hard negatives.
    """

    component_key: str
    activating: list[ActivationExample]
    non_activating: list[ActivationExample]
    hard_non_activating: list[ActivationExample] = []
    hard_partners: list[str] = []


class ArchitectureInfo(msgspec.Struct):
    n_layers: int
    c: int
    model_class: str
    dataset_name: str
    dataset_description: str
    module_c: dict[str, int] = {}
    """Components per module path, in layout order (SPD Feb 2026 runs have per-module C)."""


class InterpretationResult(msgspec.Struct):
    component_key: str
    label: str
    confidence: Confidence
    reasoning: str
    raw_response: str
    labeller: str = "claude"
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    timestamp: float = 0.0
    cost_known: bool = True
    """False when the model's price is unknown: `cost_usd` is then 0 but not free."""
    input_label: str = ""
    """What the component responds to (the input side); "" from the one-line prompt (v1)."""
    output_label: str = ""
    """What it does when it fires: the tokens it promotes (the output side); "" from v1."""
    prompt: str = ""
    """The labelling prompt's version (`v1`: one line; `v2`: both sides); "" in older runs."""


class ScoreRecord(msgspec.Struct):
    """One scorer's verdict on one component's label: `scores/<scorer>.jsonl`, one line each.

    `score` is the scorer's headline figure (balanced accuracy, accuracy or correlation) with
    its 95% interval over `n` trials; trials whose request failed are `n_errors`, counted apart
    from wrong answers. `score` None: too few answered trials to say.
    """

    component_key: str
    scorer: str
    score: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_errors: int = 0
    metrics: dict[str, float | None] = {}
    """Further figures of the scorer (precision, recall, F1, chance level, …)."""
    answerer: str = ""
    """`claude` (a model through the API) or `offline` (the label-word simulator)."""
    model: str = ""
    label: str = ""
    """The label text that was scored (the side the scorer reads, see `side`)."""
    side: str = ""
    """`input` or `output`: which of the labeller's descriptions was scored; "" for intruder,
    which reads none."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    timestamp: float = 0.0


class LabelFailure(msgspec.Struct):
    """A component that could not be labelled after retries; retried on the next start."""

    component_key: str
    reason: str
    attempts: int
    labeller: str = ""
    model: str = ""
    timestamp: float = 0.0


def component_key(module_path: str, index: int) -> str:
    return f"{module_path}:{index}"


class HarvestSummary(msgspec.Struct):
    """What the harvest saw, written to `harvest/summary.json` (dashboard and sanity checks)."""

    n_tokens: int
    n_batches: int
    n_components: int
    n_alive: int
    n_dead: int
    ci_threshold: float
    components_per_module: dict[str, int]
    alive_per_module: dict[str, int]
    firing_count_quantiles: dict[str, float]
    """Quantiles of firing counts over all components, keyed by the quantile ("0.5")."""
    firing_count_histogram_edges: list[float]
    """Log-spaced bin edges over firing counts of alive components (counts >= 1)."""
    firing_count_histogram: list[int]
    """Alive components per bin: `edges[i] <= count < edges[i+1]` (last bin closed)."""
    mean_firings_per_token: float
    """Average number of components firing at one position (the L0 of the CI mask)."""
    examples_per_component: int = 0
    n_components_with_full_examples: int = 0


class HarvestConfig(msgspec.Struct, kw_only=True):
    """Everything that determines the harvest statistics (never the API key);
    `harvest/config.json`."""

    run_id: str
    source: str
    source_fingerprint: dict[str, str]
    layout: list[tuple[str, int]]
    vocab_size: int
    n_batches: int
    batch_size: int
    context_length: int
    ci_threshold: float
    examples_per_component: int
    context_tokens_per_side: int
    top_k: int
    seed: int
    architecture: ArchitectureInfo
    heldout_per_component: int = 0
    """Firings sampled beside the shown examples and never shown to the labeller (for scoring);
    0 in runs made before held-out sampling existed."""
    negatives_per_component: int = 0
    """Windows where the component fires nowhere, checked on the CI (for scoring)."""
    hard_negatives_per_component: int = 0
    """Windows where the component is silent but one of its co-firing partners fires at the
    centre (for scoring); 0 in runs made before hard negatives existed."""

    @property
    def has_heldout(self) -> bool:
        """Whether finalize writes `harvest/heldout.jsonl` (what labels are scored on)."""
        sizes = (
            self.heldout_per_component,
            self.negatives_per_component,
            self.hard_negatives_per_component,
        )
        return any(n > 0 for n in sizes)

    @property
    def sampled_per_component(self) -> int:
        """The size of each component's uniform sample of firings: shown plus held out."""
        return self.examples_per_component + self.heldout_per_component


class ResumeRecord(msgspec.Struct):
    """One start of a process on this run."""

    started_at: float
    pid: int
    phase: Phase
    batches_done: int
    """Harvest batches already accumulated in the checkpoint this start resumed from."""
    components_written: int


class RunState(msgspec.Struct, kw_only=True):
    """`harvest/state.json`: which phases are complete, and where each start resumed from."""

    harvest_complete: bool = False
    finalize_complete: bool = False
    labelling_complete: bool = False
    n_batches: int = 0
    batches_done: int = 0
    """As of the last checkpoint (the position a restart resumes from)."""
    n_tokens: int = 0
    n_components: int = 0
    last_checkpoint_at: float | None = None
    last_batch_at: float | None = None
    """When the last harvest batch finished (labelling should start within seconds of it)."""
    harvest_completed_at: float | None = None
    finalize_completed_at: float | None = None
    labelling_completed_at: float | None = None
    starts: list[ResumeRecord] = []

    @property
    def phase(self) -> Phase:
        """The phase still to do (`done` when all three are complete)."""
        if not self.harvest_complete:
            return "harvest"
        if not self.finalize_complete:
            return "finalize"
        return "done" if self.labelling_complete else "label"


class LiveProgress(msgspec.Struct, kw_only=True):
    """`<run>/progress.json`: what a running process is doing now, replaced every few seconds.

    Checkpoints come minutes apart; this lets `autointerp status` show the live position. It is
    a view, never used for recovery: a restart trusts only the checkpoint and the JSONL files.
    """

    pid: int
    updated_at: float
    phase: str
    batches_done: int
    n_batches: int
    n_tokens: int
    tokens_per_second: float
    components_written: int
    n_components: int
    labelled: int
    failed: int
    in_flight: int
    cost_usd: float
