"""The one shared state object the harvest thread, the event loop and the dashboard meet at.

Writers change it under a lock; readers (the rich refresh thread, the plain status printer) take
a frozen copy with `snapshot()` and render that, so a frame never mixes two moments.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from autointerp.interpret.llm.stats import BatchProgress
from autointerp.interpret.scoring.runner import ScoringSnapshot


@dataclasses.dataclass(frozen=True)
class LabelLine:
    """One recent label for the dashboard table (untrusted text: escaped when rendered)."""

    component_key: str
    label: str
    confidence: str


@dataclasses.dataclass(frozen=True)
class LabellingView:
    """What the dashboard shows about labelling (copied from the pool's snapshot)."""

    done: int = 0
    """Components with a label (earlier starts included)."""
    failed: int = 0
    in_flight: int = 0
    concurrency_limit: int = 0
    retries: int = 0
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0
    ratelimit_requests_remaining: int | None = None
    ratelimit_tokens_remaining: int | None = None
    paused_until: float | None = None
    cost_usd: float = 0.0
    """Spent on the run so far, earlier starts included."""
    budget_usd: float | None = None
    last_error: str | None = None
    recent: tuple[LabelLine, ...] = ()
    scoring: ScoringSnapshot | None = None
    """Scores of the labels as they arrive (`--score`); None when not scoring."""
    batch: BatchProgress | None = None
    """Where the Message Batches stand (`--batch`); None when asking one request at a time."""


@dataclasses.dataclass(frozen=True)
class View:
    """A consistent copy of everything on the dashboard at one moment."""

    run_id: str = ""
    run_dir: str = ""
    """Absolute path of the run directory (where the results are, and what `status` takes)."""
    source: str = ""
    device: str = ""
    labeller: str = ""
    started_at: float = dataclasses.field(default_factory=time.time)
    phase: str = "starting"
    stopping: bool = False
    n_batches: int = 0
    batches_done: int = 0
    resumed_from_batch: int = 0
    batches_this_session: int = 0
    harvest_seconds: float = 0.0
    tokens_per_batch: int = 0
    n_tokens: int = 0
    last_checkpoint_at: float | None = None
    device_memory: str = ""
    cpu_threads: int = 0
    n_components: int = 0
    components_written: int = 0
    alive_written: int = 0
    alive_total: int | None = None
    queue_depth: int = 0
    labelling: LabellingView | None = None
    last_error: str | None = None
    end_note: str | None = None
    """A last line for the summary: how to resume, or what to do next."""
    now: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        if self.harvest_seconds <= 0:
            return 0.0
        return self.batches_this_session * self.tokens_per_batch / self.harvest_seconds

    @property
    def harvest_eta_seconds(self) -> float | None:
        if self.batches_this_session <= 0 or self.harvest_seconds <= 0:
            return None
        per_batch = self.harvest_seconds / self.batches_this_session
        return (self.n_batches - self.batches_done) * per_batch

    @property
    def labelled(self) -> int:
        return self.labelling.done if self.labelling else 0

    @property
    def failed(self) -> int:
        return self.labelling.failed if self.labelling else 0

    @property
    def alive_estimate(self) -> tuple[int, bool] | None:
        """(alive components, exact?): exact once finalize is done, else extrapolated from the
        share of alive components among those finalized so far."""
        if self.alive_total is not None:
            return self.alive_total, True
        if self.components_written == 0 or self.n_components == 0:
            return None
        share = self.alive_written / self.components_written
        unseen = self.n_components - self.components_written
        return self.alive_written + round(unseen * share), False

    @property
    def remaining(self) -> int | None:
        """Alive components still without a label (estimated during finalize)."""
        estimate = self.alive_estimate
        return None if estimate is None else max(0, estimate[0] - self.labelled)

    @property
    def remaining_is_exact(self) -> bool:
        return self.alive_total is not None

    @property
    def cost_usd(self) -> float:
        return self.labelling.cost_usd if self.labelling else 0.0

    @property
    def projected_cost_usd(self) -> float | None:
        """Cost so far plus the remaining components at the mean cost per label so far."""
        lab = self.labelling
        if lab is None or lab.done == 0 or self.remaining is None:
            return None
        return self.cost_usd + self.remaining * lab.cost_usd / lab.done


class SharedProgress:
    """Mutable holder of a `View`; every change and every read takes the lock."""

    def __init__(self, **initial: Any) -> None:
        self._lock = threading.Lock()
        self._view = View(**initial)

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._view = dataclasses.replace(self._view, **changes)

    def add(self, **increments: int | float) -> None:
        with self._lock:
            changes = {k: getattr(self._view, k) + v for k, v in increments.items()}
            self._view = dataclasses.replace(self._view, **changes)

    def snapshot(self) -> View:
        with self._lock:
            return dataclasses.replace(self._view, now=time.time())
