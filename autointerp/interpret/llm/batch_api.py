"""The contract of a provider's batch endpoint: submit many requests at once, poll, read results.

A batch is answered within hours at half the price. What a `BatchAPI` returns is plain data;
the grouping, the ledger that makes a restart never submit twice, the retries and the cost are
the batch client's (`batch_client.py`), so a new batch provider adds only this.

`submit` raises, besides the errors of `errors.py`, `SubmitUncertain` when the server may have
created the batch without our learning its id (a timeout, a dropped connection, a 5xx): the
client then finds out from the server's list before it submits those requests again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from autointerp.interpret.llm.pricing import Price
from autointerp.interpret.llm.provider import Reply, Request

EntryKind = Literal["succeeded", "errored", "canceled", "expired"]


class SubmitUncertain(Exception):
    """The submission may or may not have created a batch."""


class BatchGone(Exception):
    """The server no longer knows this batch (deleted, or its results aged out)."""


@dataclass(frozen=True)
class BatchEntry:
    custom_id: str
    request: Request


@dataclass(frozen=True)
class BatchState:
    batch_id: str
    ended: bool
    created_at: float
    """Unix time the server created it."""
    total: int
    """Requests in the batch."""
    processing: int
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


@dataclass(frozen=True)
class EntryResult:
    """The outcome of one entry. `succeeded` carries a reply (or, for a refusal or a cut-off
    answer, `unusable` with the tokens it still cost); `errored` says whether another
    submission may succeed (`retryable`); `canceled` and `expired` always may."""

    custom_id: str
    kind: EntryKind
    reply: Reply | None = None
    unusable: str | None = None
    error: str | None = None
    retryable: bool = True


class BatchAPI(ABC):
    model: str
    base_url: str
    secret: str
    """The API key, so that the client can scrub it from every message it makes."""

    @abstractmethod
    async def submit(self, entries: Sequence[BatchEntry]) -> str:
        """Create a batch; returns its id."""

    @abstractmethod
    async def state(self, batch_id: str) -> BatchState:
        """Where the batch is (raises `BatchGone` when the server no longer has it)."""

    @abstractmethod
    async def results(self, batch_id: str) -> list[EntryResult]:
        """Every entry's outcome, in any order (only once the batch has ended)."""

    @abstractmethod
    async def created_since(self, unix_time: float) -> list[BatchState]:
        """The batches of this key created at or after `unix_time` (to find an orphan)."""

    @abstractmethod
    def price(self) -> Price | None:
        """The model's full price per token (the client halves it), None when unknown."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
