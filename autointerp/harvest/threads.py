"""How many CPU threads a CPU harvest gives torch, re-decided as the machine's load changes.

torch takes every core by default. On a shared machine, a core busy with other work makes
torch's OpenMP threads wait on each other at every parallel region: on a 2-core machine a harvest
update took 0.53 s with torch's 2 threads and one busy neighbour, 3.0 s with two, against 0.09 s
idle; one thread took 0.16 s and 0.22 s (`python -m bench.threads`). So the harvest uses the
cores that other processes leave idle: every `every_s` it reads how much CPU time the whole
machine spent (/proc/stat) minus what this process spent, and sets torch's threads to the cores
left.

`torch.set_num_threads` acts on the calling thread only (OpenMP's setting is per thread), so the
policy must run in the thread that runs the harvest: `HarvestPass` calls it there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

EVERY_S = 20.0
"""Seconds between decisions: long enough to average out a burst, short enough to follow a
neighbour that starts or stops."""
FIRST_SAMPLE_S = 0.25
"""The first decision, before the first batch, looks at this much of the machine's time."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_busy_seconds() -> float | None:
    """CPU-seconds all CPUs spent not idle since boot (/proc/stat); None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        return None
    ticks = [float(v) for v in fields[1:9]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def own_busy_seconds() -> float:
    """CPU-seconds this process spent (all its threads)."""
    t = os.times()
    return t.user + t.system


def threads_for(usable: int, others_busy: float) -> int:
    """The cores other processes leave idle (rounded), at least 1 and at most `usable`."""
    if not math.isfinite(others_busy):
        return usable
    return max(1, min(usable, round(usable - others_busy)))


@dataclass
class CpuThreadPolicy:
    """`requested` fixes the count (`--threads`); None follows the load. Call `start()` and then
    `tick()` from the harvest thread; `describe()` says what it chose and why."""

    requested: int | None = None
    every_s: float = EVERY_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    machine_busy: Callable[[], float | None] = machine_busy_seconds
    own_busy: Callable[[], float] = own_busy_seconds
    usable: int = field(default_factory=usable_cpus)
    threads: int = 0
    others_busy: float | None = None
    """Cores' worth of CPU other processes used over the last interval (None: not measured)."""
    _last: tuple[float, float, float] | None = None

    def start(self) -> int:
        """The first decision: the fixed count, else from a short look at the machine."""
        if self.requested is not None:
            return self._set(self.requested)
        self._last = self._sample()
        if self._last is None:  # no /proc/stat: keep torch's choice
            return self._set(torch.get_num_threads())
        self.sleep(FIRST_SAMPLE_S)
        return self._decide()

    def tick(self) -> int:
        """Re-decide if `every_s` passed since the last decision; return the thread count."""
        if self._last is None or self.clock() - self._last[0] < self.every_s:
            return self.threads
        return self._decide()

    def _decide(self) -> int:
        assert self._last is not None
        sample = self._sample()
        if sample is None or sample[0] <= self._last[0]:
            return self.threads
        wall = sample[0] - self._last[0]
        machine = sample[1] - self._last[1]
        own = sample[2] - self._last[2]
        self._last = sample
        self.others_busy = max(0.0, (machine - own) / wall)
        return self._set(threads_for(self.usable, self.others_busy))

    def _sample(self) -> tuple[float, float, float] | None:
        machine = self.machine_busy()
        if machine is None:
            return None
        return self.clock(), machine, self.own_busy()

    def _set(self, threads: int) -> int:
        if threads != self.threads or torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return threads

    def describe(self) -> str:
        if self.requested is not None:
            return f"{self.threads} CPU thread(s) (--threads)"
        if self.others_busy is None:
            return f"{self.threads} CPU thread(s) of {self.usable}"
        return (
            f"{self.threads} CPU thread(s) of {self.usable} "
            f"(other processes use {self.others_busy:.1f} cores)"
        )
