"""INTERIM stand-ins for the harvest engine and the labelling pool, with their exact API names.

Used only until the `harvest` and `interpret` branches land in `main` (then this file is deleted):
they let the orchestrator, the signals and the chaos tests run now. The statistics are simple
but exact (firing counts, mean CI, first-k examples), so resume-equals-uninterrupted is testable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import torch

from autointerp.interpret.base import FatalLabellerError, LabelError, LabellerStats
from autointerp.schemas import (
    ActivationExample,
    ComponentCorrelations,
    ComponentData,
    InterpretationResult,
    LabelFailure,
    TokenStats,
)
from autointerp.store import JsonlAppender, RunDir, read_keys, write_bytes_atomic


class HarvestSummary(msgspec.Struct):
    n_tokens: int
    n_components: int
    n_alive: int


class Harvester:
    def __init__(
        self,
        layout: list[tuple[str, int]],
        vocab_size: int,
        ci_threshold: float = 0.0,
        examples_per_component: int = 20,
        context_tokens_per_side: int = 10,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.layout = [(m, int(c)) for m, c in layout]
        self.vocab_size = vocab_size
        self.ci_threshold = ci_threshold
        self.k = examples_per_component
        self.device = torch.device(device)
        self.seed = seed
        n = sum(c for _, c in self.layout)
        self.firings = torch.zeros(n, dtype=torch.int64)
        self.ci_sum = torch.zeros(n, dtype=torch.float64)
        self.examples: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        self.n_tokens = 0
        self.n_batches = 0

    def update(self, tokens: torch.Tensor, ci: torch.Tensor, output_probs: torch.Tensor) -> None:
        flat_ci = ci.reshape(-1, ci.shape[-1]).double()
        fires = flat_ci > self.ci_threshold
        self.firings += fires.sum(0)
        self.ci_sum += flat_ci.sum(0)
        flat_tokens = tokens.reshape(-1)
        for c in range(fires.shape[1]):
            need = self.k - len(self.examples[c])
            if need > 0:
                idx = fires[:, c].nonzero().flatten()[:need]
                for i in idx.tolist():
                    self.examples[c].append((int(flat_tokens[i]), float(flat_ci[i, c])))
        self.n_tokens += flat_tokens.numel()
        self.n_batches += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "vocab_size": self.vocab_size,
            "ci_threshold": self.ci_threshold,
            "k": self.k,
            "seed": self.seed,
            "firings": self.firings,
            "ci_sum": self.ci_sum,
            "examples": self.examples,
            "n_tokens": self.n_tokens,
            "n_batches": self.n_batches,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str) -> Harvester:
        h = cls(state["layout"], state["vocab_size"], state["ci_threshold"], state["k"], 10, device)
        h.firings = state["firings"]
        h.ci_sum = state["ci_sum"]
        h.examples = state["examples"]
        h.n_tokens = state["n_tokens"]
        h.n_batches = state["n_batches"]
        return h


def finalize(
    harvester: Harvester, decode: Callable[[int], str], top_k: int = 10, start: int = 0
) -> Iterator[ComponentData]:
    empty = TokenStats([], [], [])
    i = 0
    for module, c in harvester.layout:
        for j in range(c):
            if i >= start:
                f = int(harvester.firings[i])
                yield ComponentData(
                    component_key=f"{module}:{j}",
                    layer=module,
                    component_idx=j,
                    mean_ci=float(harvester.ci_sum[i]) / max(harvester.n_tokens, 1),
                    activation_examples=[
                        ActivationExample([decode(t)], [v], 0, v) for t, v in harvester.examples[i]
                    ],
                    input_token_stats=empty,
                    output_token_stats=empty,
                    correlations=ComponentCorrelations([], [], [], []),
                    firing_count=f,
                    firing_density=f / max(harvester.n_tokens, 1),
                )
            i += 1


def summarize(harvester: Harvester) -> HarvestSummary:
    return HarvestSummary(
        harvester.n_tokens, len(harvester.firings), int((harvester.firings > 0).sum())
    )


def save_checkpoint(directory: Path, harvester: Harvester, extra: dict) -> None:
    import io

    buf = io.BytesIO()
    torch.save({"harvester": harvester.state_dict(), "extra": extra}, buf)
    write_bytes_atomic(Path(directory) / "checkpoint.pt", buf.getvalue())


def load_checkpoint(directory: Path, device: torch.device) -> tuple[Harvester, dict] | None:
    path = Path(directory) / "checkpoint.pt"
    if not path.exists():
        return None
    blob = torch.load(path, weights_only=False)
    return Harvester.from_state_dict(blob["harvester"], device), blob["extra"]


class RecentLabel(msgspec.Struct):
    key: str
    label: str
    confidence: str


class PoolSnapshot(msgspec.Struct):
    done: int
    failed: int
    skipped: int
    in_flight: int
    concurrency_limit: int
    cost_usd: float
    budget_usd: float | None
    recent: list[RecentLabel]
    labeller: LabellerStats


class LabellingPool:
    def __init__(
        self,
        labeller: Any,
        architecture: Any,
        run: RunDir,
        *,
        max_concurrent: int = 8,
        budget_usd: float | None = None,
        retry_failed: bool = True,
    ) -> None:
        self.labeller = labeller
        self.architecture = architecture
        self.rundir = run
        self.max_concurrent = max_concurrent
        self.budget_usd = budget_usd
        self._stopping = False
        self.done_before = len(read_keys(run.results_path)[0])
        self.done = self.failed = self.skipped = self.in_flight = 0
        self.recent: list[InterpretationResult] = []

    async def run(self, queue: asyncio.Queue[ComponentData | None]) -> None:
        done_keys, _ = read_keys(self.rundir.results_path)
        results = JsonlAppender(self.rundir.results_path)
        failures = JsonlAppender(self.rundir.failures_path)

        async def worker() -> None:
            while not self._stopping:
                try:
                    c = await asyncio.wait_for(queue.get(), 0.1)
                except TimeoutError:
                    continue
                if c is None:
                    await queue.put(None)
                    return
                if c.firing_count == 0 or c.component_key in done_keys:
                    self.skipped += 1
                    continue
                done_keys.add(c.component_key)
                self.in_flight += 1
                try:
                    r = await self.labeller.label(c, self.architecture)
                    await asyncio.to_thread(results.append, r)
                    self.done += 1
                    self.recent = [*self.recent[-9:], r]
                except LabelError as e:
                    failures.append(LabelFailure(c.component_key, str(e), 1))
                    self.failed += 1
                finally:
                    self.in_flight -= 1

        try:
            await asyncio.gather(*(worker() for _ in range(self.max_concurrent)))
        finally:
            results.close()
            failures.close()

    def stop(self) -> None:
        self._stopping = True

    def snapshot(self) -> PoolSnapshot:
        return PoolSnapshot(
            self.done + self.done_before,
            self.failed,
            self.skipped,
            self.in_flight,
            self.max_concurrent,
            0.0,
            self.budget_usd,
            [RecentLabel(r.component_key, r.label, r.confidence) for r in self.recent],
            self.labeller.stats(),
        )


class OfflineLabeller:
    name = "offline"
    model = "offline"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def label(self, component: ComponentData, architecture: Any) -> InterpretationResult:
        if self.delay:
            await asyncio.sleep(self.delay)
        return InterpretationResult(
            component.component_key,
            f"fires {component.firing_count} times",
            "low",
            "offline",
            "",
            labeller="offline",
            timestamp=time.time(),
        )

    def stats(self) -> LabellerStats:
        return LabellerStats()

    async def aclose(self) -> None:
        pass


__all__ = ["FatalLabellerError"]
