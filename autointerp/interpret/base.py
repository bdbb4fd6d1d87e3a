"""The labeller contract shared by the model labeller, the offline labeller and the pool.

`label` raises `RequestFailed` when this one component cannot be labelled (the pool records a
failure and goes on) and `FatalAPIError` when no component can be (the run stops).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from autointerp.interpret.llm.stats import ClientStats
from autointerp.schemas import ArchitectureInfo, ComponentData, InterpretationResult
from autointerp.store import RunDir


class Labeller(ABC):
    name: str
    """`claude` or `offline`: written into every result."""

    model: str

    max_concurrent: int
    """How many components the pool should have in hand at once."""

    @abstractmethod
    async def label(
        self, component: ComponentData, architecture: ArchitectureInfo
    ) -> InterpretationResult:
        """Label one component."""

    @abstractmethod
    def stats(self) -> ClientStats: ...

    def attach(self, run: RunDir) -> None:  # noqa: B027 - optional hook
        """The run labelled: where a client keeps state across starts (batches)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
