"""CPU threads for a CPU harvest: the cores other processes leave idle, decided in the thread
that runs the harvest and re-decided as the load changes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import torch

from autointerp.harvest import HarvestPass, HarvestProgress
from autointerp.harvest.config import HarvestOptions, harvest_config, reconcile_config
from autointerp.harvest.threads import (
    CpuThreadPolicy,
    machine_busy_seconds,
    own_busy_seconds,
    threads_for,
)
from autointerp.store import RunDir, RunLock, StateFile
from tests.daemon.tiny_source import TinySource


def test_threads_are_the_cores_left_idle() -> None:
    assert [threads_for(2, busy) for busy in (0.0, 0.4, 0.6, 1.0, 1.7, 2.0, 5.0)] == [
        2, 2, 1, 1, 1, 1, 1,
    ]  # fmt: skip
    assert threads_for(16, 3.2) == 13 and threads_for(16, 0.0) == 16
    assert threads_for(4, float("nan")) == 4


class FakeMachine:
    """A machine whose other processes use `others` cores while this one uses `own`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.machine = 0.0
        self.own = 0.0
        self.others = 0.0
        self.ours = 1.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.machine += (self.others + self.ours) * seconds
        self.own += self.ours * seconds


def policy_on(machine: FakeMachine, requested: int | None = None) -> CpuThreadPolicy:
    return CpuThreadPolicy(
        requested,
        every_s=10.0,
        clock=lambda: machine.now,
        sleep=machine.sleep,
        machine_busy=lambda: machine.machine,
        own_busy=lambda: machine.own,
        usable=2,
    )


def test_the_policy_follows_a_neighbour_that_comes_and_goes() -> None:
    saved = torch.get_num_threads()
    try:
        machine = FakeMachine()
        machine.others = 1.0  # one core busy elsewhere when the harvest starts
        policy = policy_on(machine)
        assert policy.start() == 1 and torch.get_num_threads() == 1
        assert "other processes use 1.0 cores" in policy.describe()
        machine.others = 0.0
        machine.sleep(5.0)
        assert policy.tick() == 1  # not yet: decisions come every 10 s
        machine.sleep(5.0)
        assert policy.tick() == 2 and torch.get_num_threads() == 2  # the neighbour left
        machine.others, machine.ours = 1.9, 0.1  # a heavy neighbour starves us
        machine.sleep(10.0)
        assert policy.tick() == 1
        fixed = policy_on(machine, requested=2)
        assert fixed.start() == 2 and fixed.tick() == 2 and "--threads" in fixed.describe()
    finally:
        torch.set_num_threads(saved)


def test_the_machine_counters_read_this_machine() -> None:
    """Both counters advance while this process spends CPU (they tick in 10 ms steps, so spend
    until they move, up to a few seconds: a counter that never moves fails)."""
    busy, own = machine_busy_seconds(), own_busy_seconds()
    assert busy is not None
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        sum(i * i for i in range(100_000))  # spend some CPU
        if machine_busy_seconds() > busy and own_busy_seconds() > own:  # type: ignore[operator]
            break
    assert machine_busy_seconds() > busy  # type: ignore[operator]
    assert own_busy_seconds() > own


def test_the_harvest_thread_gets_the_threads_and_the_caller_keeps_its_own(
    tmp_path: Path,
) -> None:
    """torch's thread setting is per thread: set anywhere else it would not reach the harvest."""
    caller_threads = torch.get_num_threads()
    run = RunDir(tmp_path / "run")
    source = TinySource()
    config = harvest_config(source, HarvestOptions(n_batches=3))
    seen: list[tuple[int, int]] = []

    def on_progress(progress: HarvestProgress) -> None:
        seen.append((progress.cpu_threads, torch.get_num_threads()))

    with RunLock(run):
        reconcile_config(run, config, force_new=False)
        harvest = HarvestPass(
            source,
            config,
            run,
            StateFile(run),
            checkpoint_every_s=300.0,
            stop=threading.Event(),
            on_progress=on_progress,
            cpu_threads=CpuThreadPolicy(requested=1),
        )
        worker = threading.Thread(target=harvest.run)
        worker.start()
        worker.join()
    assert seen and all(reported == actual == 1 for reported, actual in seen)
    assert torch.get_num_threads() == caller_threads
