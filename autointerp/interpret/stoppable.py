"""Taking the next item of a queue that workers share, unless the run is stopping first."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

T = TypeVar("T")


async def get_unless_stopped(queue: asyncio.Queue[T], stopping: asyncio.Event) -> tuple[T] | None:
    """The next item of `queue` (in a 1-tuple, since the item may itself be None), or None when
    `stopping` is set before one arrives. An item that arrives while the get is being cancelled
    stays in the queue for the next reader."""
    if stopping.is_set():
        return None
    get = asyncio.ensure_future(queue.get())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not get.done():
            get.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await get
    if get.cancelled():
        return None
    return (get.result(),)
