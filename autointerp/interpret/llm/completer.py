"""What labellers and answerers ask a model through: `LLMClient` (one request at a time) or
`BatchClient` (the Message Batches API). Both pace, retry, account and scrub the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from autointerp.interpret.llm.client import Completion
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.llm.stats import ClientStats

T = TypeVar("T")


class Completer(Protocol):
    max_concurrent: int
    """How many requests callers should keep in hand at once."""

    @property
    def model(self) -> str: ...

    async def complete(self, request: Request, parse: Callable[[str], T]) -> Completion[T]: ...

    def stats(self) -> ClientStats: ...

    def attach(self, state_dir: Path) -> None:
        """Where the client keeps state across starts (the batch ledger); the run's
        `interpretations/batches/`."""

    async def aclose(self) -> None: ...
