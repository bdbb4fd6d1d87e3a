"""The demo's quality bars, measured on generated held-out stories.

Three properties make the shipped decomposition worth labelling:
- faithful: the model run with only its components, each scaled by its CI, predicts the next token
  almost as well as the original model (`loss_gap` in nats);
- sparse: few components have CI > 0 at any position (`ci_density`);
- selective: an alive component fires on most occurrences of some input token
  (`median_top_precision`: median over alive components of max_t co(c,t)/T(t), over tokens seen
  at least `MIN_TOKEN_COUNT` times), while firing on only a small share of all positions
  (`median_alive_density`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

from autointerp.sources.demo.decomposition import DecomposedLM
from autointerp.sources.demo.model import next_token_loss
from autointerp.sources.demo.stream import story_batch
from autointerp.sources.demo.tokenizer import WordTokenizer

MAX_LOSS_GAP = 0.1
MAX_CI_DENSITY = 0.05
MIN_MEDIAN_TOP_PRECISION = 0.5
MAX_MEDIAN_ALIVE_DENSITY = 0.1
MIN_FIRINGS_ALIVE = 5
MIN_TOKEN_COUNT = 5


@dataclass(frozen=True)
class QualityReport:
    n_tokens: int
    original_loss: float
    decomposed_loss: float
    loss_gap: float
    ci_density: float
    n_components: int
    n_alive: int
    median_top_precision: float
    median_alive_density: float

    def failures(self) -> list[str]:
        """Which bars this report misses (empty when all pass)."""
        missed = []
        if self.loss_gap >= MAX_LOSS_GAP:
            missed.append(f"loss gap {self.loss_gap:.4f} ≥ {MAX_LOSS_GAP} nats")
        if self.ci_density >= MAX_CI_DENSITY:
            missed.append(f"CI density {self.ci_density:.4f} ≥ {MAX_CI_DENSITY}")
        if self.median_top_precision < MIN_MEDIAN_TOP_PRECISION:
            missed.append(
                f"median top precision {self.median_top_precision:.3f} < {MIN_MEDIAN_TOP_PRECISION}"
            )
        if self.median_alive_density >= MAX_MEDIAN_ALIVE_DENSITY:
            missed.append(
                f"median alive density {self.median_alive_density:.4f} ≥ {MAX_MEDIAN_ALIVE_DENSITY}"
            )
        return missed

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"held-out tokens             {self.n_tokens}",
            f"original next-token loss    {self.original_loss:.4f} nats",
            f"decomposed (CI-masked) loss {self.decomposed_loss:.4f} nats"
            f"  gap {self.loss_gap:+.4f} (bar < {MAX_LOSS_GAP})",
            f"CI density                  {self.ci_density:.4f} (bar < {MAX_CI_DENSITY})",
            f"alive components            {self.n_alive} of {self.n_components}"
            f" (≥ {MIN_FIRINGS_ALIVE} firings)",
            f"median top input precision  {self.median_top_precision:.3f}"
            f" (bar ≥ {MIN_MEDIAN_TOP_PRECISION})",
            f"median alive firing density {self.median_alive_density:.4f}"
            f" (bar < {MAX_MEDIAN_ALIVE_DENSITY})",
        ]


@torch.no_grad()
def measure_quality(
    model: DecomposedLM,
    tokenizer: WordTokenizer,
    n_batches: int = 8,
    batch_size: int = 32,
    stream: str = "heldout",
) -> QualityReport:
    context = model.target.cfg.max_context
    original = decomposed = 0.0
    fired: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []
    nonzero = total = 0
    for index in range(n_batches):
        tokens = story_batch(tokenizer, stream, index, batch_size, context)
        logits, inputs = model.forward_with_inputs(tokens)
        ci = {p: g.clamp(0, 1) for p, g in model.gates(inputs).items()}
        original += next_token_loss(logits, tokens).item() / n_batches
        decomposed += next_token_loss(model.forward_masked(tokens, ci), tokens).item() / n_batches
        fires = torch.cat([ci[p] for p in model.paths], dim=-1) > 0
        nonzero += int(fires.sum())
        total += fires.numel()
        fired.append(fires.flatten(0, 1))
        seen.append(tokens.flatten())
    fires = torch.cat(fired).to(torch.float64)
    tokens = torch.cat(seen)
    token_count = torch.bincount(tokens, minlength=len(tokenizer)).to(torch.float64)
    co = F.one_hot(tokens, len(tokenizer)).to(torch.float64).T @ fires  # [V, C]
    precision = co / token_count.clamp(min=1).unsqueeze(1)
    precision[token_count < MIN_TOKEN_COUNT] = 0
    firings = fires.sum(0)
    alive = firings >= MIN_FIRINGS_ALIVE
    top_precision = precision.max(0).values[alive]
    alive_density = firings[alive] / tokens.numel()
    return QualityReport(
        n_tokens=tokens.numel(),
        original_loss=original,
        decomposed_loss=decomposed,
        loss_gap=decomposed - original,
        ci_density=nonzero / total,
        n_components=fires.shape[1],
        n_alive=int(alive.sum()),
        median_top_precision=float(top_precision.median()) if alive.any() else 0.0,
        median_alive_density=float(alive_density.median()) if alive.any() else 1.0,
    )
