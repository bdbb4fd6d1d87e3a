"""How many CPU threads a CPU harvest gives torch.

torch takes every core by default. On a shared machine, cores busy with other work make its
OpenMP threads wait on each other at every parallel region, and a 2-core harvest ran 4-10x
slower than with one thread. So a CPU harvest uses the cores that are idle when it starts
(measured over a short sample of /proc/stat), unless told otherwise.
"""

from __future__ import annotations

import os
import time

import torch

SAMPLE_S = 0.3


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs, from /proc/stat; None where there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])


def idle_cpus(sample_s: float = SAMPLE_S) -> float | None:
    """How many CPUs' worth of time went idle during a short sample (None: cannot tell)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return share * (os.cpu_count() or 1)


def choose_threads(usable: int, idle: float | None) -> int:
    """The idle cores (rounded), at least 1 and at most the usable ones."""
    if idle is None:
        return usable
    return max(1, min(usable, int(idle + 0.5)))


def apply_cpu_threads(device: torch.device, requested: int | None) -> str | None:
    """Set torch's intra-op threads for a CPU harvest; say what was chosen and why."""
    if device.type != "cpu":
        return None
    usable = usable_cpus()
    if requested is not None:
        torch.set_num_threads(requested)
        return f"{requested} thread(s) (--threads)"
    idle = idle_cpus()
    threads = choose_threads(usable, idle)
    torch.set_num_threads(threads)
    seen = "unknown" if idle is None else f"{idle:.1f}"
    return f"{threads} thread(s) ({seen} of {usable} cores idle at start)"
