"""Claude's Message Batches API (`client.messages.batches`), on the Messages provider's client.

Entries carry the same parameters a direct request would (`AnthropicProvider.params`), so a
batch label is the same question at half the price. Errors are classified as for a direct
request; a failed `create` is `SubmitUncertain` unless the server answered with a 4xx (then it
certainly created nothing).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import TypeVar

import anthropic
from anthropic.types.messages import MessageBatch

from autointerp.interpret.llm.anthropic import AnthropicProvider, reply_of
from autointerp.interpret.llm.batch_api import (
    BatchAPI,
    BatchEntry,
    BatchGone,
    BatchState,
    EntryResult,
    SubmitUncertain,
)
from autointerp.interpret.llm.errors import Transient, Unusable
from autointerp.interpret.llm.pricing import Price
from autointerp.interpret.llm.provider import Reply

T = TypeVar("T")

RETRYABLE_ENTRY_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
)
"""An errored entry of these kinds may succeed in another batch; others (an invalid request)
will not."""
LIST_PAGE = 100


class AnthropicBatches(BatchAPI):
    def __init__(self, provider: AnthropicProvider) -> None:
        self.provider = provider
        self.model = provider.model
        self.base_url = provider.base_url
        self.secret = provider.secret
        self._batches = provider._client.messages.batches

    def price(self) -> Price | None:
        return self.provider.price()

    async def aclose(self) -> None:
        await self.provider.aclose()

    async def submit(self, entries: Sequence[BatchEntry]) -> str:
        requests = [
            {"custom_id": e.custom_id, "params": self.provider.params(e.request)} for e in entries
        ]
        try:
            async with asyncio.timeout(self.provider.timeout):
                batch = await self._batches.create(requests=requests)  # type: ignore[arg-type]
        except anthropic.APIStatusError as e:
            if 400 <= e.status_code < 500:
                raise self.provider._classify(e) from None  # refused: nothing was created
            raise SubmitUncertain(f"HTTP {e.status_code} on submission") from None
        except anthropic.APIConnectionError as e:
            failed = self.provider._connection_error(e)
            if failed.unreachable:
                raise failed from None  # no connection was made: nothing was created
            raise SubmitUncertain(f"no answer to the submission ({type(e).__name__})") from None
        except (anthropic.APIError, TimeoutError, json.JSONDecodeError) as e:
            raise SubmitUncertain(f"no answer to the submission ({type(e).__name__})") from None
        return batch.id

    async def state(self, batch_id: str) -> BatchState:
        try:
            return _state(await self._call(self._batches.retrieve(batch_id)))
        except anthropic.NotFoundError:
            raise BatchGone(f"batch {batch_id} is not known to the server") from None

    async def results(self, batch_id: str) -> list[EntryResult]:
        try:
            async with asyncio.timeout(max(self.provider.timeout, 600.0)):
                decoder = await self._batches.results(batch_id)
                return [_entry(line) async for line in decoder]
        except anthropic.NotFoundError:
            raise BatchGone(f"the results of batch {batch_id} are gone") from None
        except anthropic.APIStatusError as e:
            raise self.provider._classify(e) from None
        except (anthropic.APIError, TimeoutError, json.JSONDecodeError) as e:
            raise Transient(f"reading batch results failed ({type(e).__name__})") from None

    async def created_since(self, unix_time: float) -> list[BatchState]:
        found: list[BatchState] = []
        page = await self._call(self._batches.list(limit=LIST_PAGE))
        while True:
            for batch in page.data:
                state = _state(batch)
                if state.created_at < unix_time:
                    return found  # newest first: the rest are older
                found.append(state)
            if not page.has_next_page():
                return found
            page = await self._call(page.get_next_page())

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """One poll or list call, its errors classified as a direct request's."""
        try:
            async with asyncio.timeout(self.provider.timeout):
                return await awaitable
        except anthropic.NotFoundError:
            raise
        except anthropic.APIStatusError as e:
            raise self.provider._classify(e) from None
        except anthropic.APIConnectionError as e:
            raise self.provider._connection_error(e) from None
        except (anthropic.APIError, TimeoutError, json.JSONDecodeError) as e:
            raise Transient(f"batch request failed ({type(e).__name__})") from None


def _unix(t: datetime) -> float:
    return t.timestamp()


def _state(batch: MessageBatch) -> BatchState:
    c = batch.request_counts
    total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
    return BatchState(
        batch_id=batch.id,
        ended=batch.processing_status == "ended",
        created_at=_unix(batch.created_at),
        total=total,
        processing=c.processing,
        succeeded=c.succeeded,
        errored=c.errored,
        canceled=c.canceled,
        expired=c.expired,
    )


def _entry(line: anthropic.types.messages.MessageBatchIndividualResponse) -> EntryResult:
    result = line.result
    if result.type == "succeeded":
        message = result.message
        try:
            reply = reply_of(message, message.usage.output_tokens)
            return EntryResult(line.custom_id, "succeeded", reply=reply)
        except Unusable as e:
            return EntryResult(
                line.custom_id, "succeeded", reply=Reply("", e.used), unusable=str(e)
            )
    if result.type == "errored":
        error = result.error.error
        kind = str(getattr(error, "type", "error"))
        message = str(getattr(error, "message", ""))[:300]
        return EntryResult(
            line.custom_id,
            "errored",
            error=f"{kind}: {message}",
            retryable=kind in RETRYABLE_ENTRY_ERRORS,
        )
    return EntryResult(line.custom_id, result.type)
