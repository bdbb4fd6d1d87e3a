"""Prefetching changes where batches are built, never what or in which order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.sources.prefetch import prefetched


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "autointerp-batch-prefetch"]


def wait_for_no_prefetch_threads() -> None:
    deadline = time.monotonic() + 5
    while prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not prefetch_threads()


@settings(max_examples=30, deadline=None)
@given(items=st.lists(st.integers()), depth=st.integers(1, 4))
def test_same_items_same_order(items: list[int], depth: int) -> None:
    assert list(prefetched(lambda: iter(items), depth)) == items
    wait_for_no_prefetch_threads()


def test_errors_reach_the_consumer_after_the_items_before_them() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad batch request")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad batch request"):
        for x in prefetched(failing):
            got.append(x)
    assert got == [1, 2]
    wait_for_no_prefetch_threads()


def test_closing_early_stops_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    it = prefetched(endless, depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # type: ignore[attr-defined]
    assert closed.wait(5)
    wait_for_no_prefetch_threads()


def test_unused_iterator_starts_no_thread() -> None:
    prefetched(lambda: iter(range(3)))
    assert not prefetch_threads()
