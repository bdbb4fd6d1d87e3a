"""The labeller contract shared by the Claude labeller, the offline labeller and the daemon."""

from __future__ import annotations

from abc import ABC, abstractmethod

import msgspec

from autointerp.schemas import ArchitectureInfo, ComponentData, InterpretationResult


class LabelError(Exception):
    """This component could not be labelled (after retries); recorded in failures.jsonl."""


class FatalLabellerError(Exception):
    """Labelling cannot go on at all (bad key, spend limit): stop the run with this message."""


class LabellerStats(msgspec.Struct):
    """A snapshot for the dashboard; every field is cheap to compute."""

    in_flight: int = 0
    concurrency_limit: int = 0
    requests: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0
    ratelimit_requests_remaining: int | None = None
    ratelimit_tokens_remaining: int | None = None
    paused_until: float | None = None
    last_error: str | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_known: bool = True
    """False once a model with an unknown price answered: `cost_usd` is then a floor."""
    ratelimit_input_tokens_remaining: int | None = None
    ratelimit_output_tokens_remaining: int | None = None
    budget_requests_remaining: float | None = None
    """Left in our own `--max-rpm` window (None: no such budget); likewise the token budgets."""
    budget_input_tokens_remaining: float | None = None
    budget_output_tokens_remaining: float | None = None


class Labeller(ABC):
    name: str
    """`claude` or `offline`: written into every result."""

    model: str

    @abstractmethod
    async def label(
        self, component: ComponentData, architecture: ArchitectureInfo
    ) -> InterpretationResult:
        """Label one component. Raises `LabelError` or `FatalLabellerError`."""

    @abstractmethod
    def stats(self) -> LabellerStats: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
