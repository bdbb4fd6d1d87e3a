"""Fixtures for the whole suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_autointerp_logger() -> Iterator[None]:
    """The daemon configures the `autointerp` logger for its process (no propagation, its own
    handlers); tests that run it in-process must not leak that into later tests' `caplog`."""
    logger = logging.getLogger("autointerp")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield
    for handler in list(logger.handlers):
        if handler not in saved[2]:
            logger.removeHandler(handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
