"""Clocks for rate tests: time that runs faster than real time, so minute windows take a second."""

from __future__ import annotations

import asyncio
import time


class ScaledClock:
    """`scale` virtual seconds pass per real second (sleeps shrink by the same factor)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)
