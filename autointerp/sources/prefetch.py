"""Build the next batches in a background thread while the GPU works on the current one.

Tokenizing a batch of text costs CPU time that would otherwise stall the device between steps
(HuggingFace fast tokenizers release the GIL while they encode). Order and content are unchanged:
this only moves the work of the wrapped iterator to another thread. Errors are re-raised in the
consumer; closing the consumer (or dropping it) stops the thread and closes the wrapped iterator.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_POLL_S = 0.05
_JOIN_S = 30.0


@dataclass
class _Failed:
    error: BaseException


_END = object()


def prefetched(make_iterator: Callable[[], Iterator[T]], depth: int = 2) -> Iterator[T]:
    """Yield what `make_iterator()` yields, computed up to `depth` items ahead in a thread."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            iterator = make_iterator()
            try:
                for item in iterator:
                    if not offer(item):
                        return
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as e:
            offer(_Failed(e))
            return
        offer(_END)

    def consume() -> Iterator[T]:
        # Started on the first `next`, so an iterator that is never used leaves no thread behind.
        worker = threading.Thread(target=work, name="autointerp-batch-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = slots.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            worker.join(timeout=_JOIN_S)
            if worker.is_alive():
                log.warning("batch prefetch thread did not stop within %.0f s", _JOIN_S)

    return consume()
