"""Where an update's time goes: an optional timer the engine reports its stages to.

Off by default (the engine then pays one attribute check per stage). On, it synchronises the
device at every stage boundary so that each stage's wall time is its own; that costs throughput,
so it is for benchmarks (`bench/gpu.py`), never for a real harvest.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

import torch


class StageTimer:
    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - t0

    def reset(self) -> None:
        self.seconds.clear()
