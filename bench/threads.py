"""Measure how torch's CPU thread settings hold up when other processes keep the cores busy.

    PYTHONPATH=. python -m bench.threads                        # both workloads, loads 0 1 2
    PYTHONPATH=. python -m bench.threads --workloads harvest --loads 0 2 --repeat 5
    PYTHONPATH=. python -m bench.threads --src HEAD             # run a `git archive HEAD` copy

Why: on a busy 2-core machine the CPU harvest was seen to slow several-fold with torch's default
threads (one per core) and not with one thread. An OpenMP parallel region ends only when its
slowest thread does, so when a busy process takes one of the two cores, every region waits for a
descheduled thread (and, with the default wait policy, idle threads spin, taking CPU time from the
rest). This benchmark puts numbers on that, so the harvest's thread setting can be chosen.

Background load: N busy processes (`python -c 'while True: pass'`), started before each
measurement and killed after it. Workloads, each in a fresh process:

- harvest: `autointerp.harvest.Harvester.update` on SPD-like batches at bench/harvest.py's "small"
  shape (6 modules x 704 components, vocab 4019, batch 2x512), made with that module's helpers;
  one untimed warm-up update, then `--updates` timed ones (each a sample).
- demo: the whole demo daemon as a user runs it (`python -m autointerp daemon demo --labeller none
  --plain --device cpu`, a fresh data dir each time); the sample is the process's wall time.

Thread settings: autointerp's own choice (`CpuThreadPolicy`, the daemon's default: the cores
other processes leave idle, re-decided as the load changes); torch's default (one thread per
core); one thread; and each fixed count with OMP_WAIT_POLICY=PASSIVE. The harvest child sets a
fixed count through the environment; the daemon through `--threads` (its policy would override
the environment). The threads column is what the children report (`torch.get_num_threads()`, or
the daemon log's "harvest: N CPU thread(s)" lines).

Separately (`--switch-loads`), one process changes `torch.set_num_threads` between updates, as a
long-running daemon might, and reports whether the intra-op pool follows: per phase, the update
time, the process's CPU time over wall time, and how many OS threads did work. It does so both in
the thread that called set_num_threads and in a long-lived worker thread (the daemon harvests in
an `asyncio.to_thread` worker), since OpenMP keeps the thread count per calling thread.

Timings on a shared machine are noisy: the table gives median, min and max over the samples of
all repeats, and slowdowns as ratios of medians. Its "other procs' cores" column is the load this
benchmark did not start (median over children, from /proc/stat): well above 0, a cell's times
measure other people's work as much as the setting. A default run takes about 8-10 minutes on 2
cores (the demo with torch's default threads under load is most of it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Variables that change the thread count or the wait policy; children start without them.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "OMP_DYNAMIC",
)
RESULT = "RESULT "  # prefix of the child's one JSON line on stdout
WORKLOADS = ("harvest", "demo")
CHILD_TIMEOUT_S = 600  # a child running longer is killed (and the benchmark fails)
HZ = os.sysconf("SC_CLK_TCK")  # the unit of /proc's CPU times


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    env: dict[str, str]
    threads: int | None = None
    """Fixed torch threads (the daemon's `--threads`; the env for the harvest child); None:
    torch's own default, or with `policy` autointerp's choice."""
    policy: bool = False
    """autointerp's `CpuThreadPolicy` decides (the daemon's default)."""


CORES = os.cpu_count() or 1
SETTINGS = (
    Setting("autointerp auto", {}, policy=True),
    Setting("torch default", {}, threads=CORES),
    Setting("1 thread", {"OMP_NUM_THREADS": "1"}, threads=1),
    Setting("default + PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, threads=CORES),
    Setting(
        "1 thread + PASSIVE", {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}, threads=1
    ),
)


@dataclasses.dataclass
class Cell:
    """The samples of one workload at one load with one setting, over all repeats."""

    workload: str
    load: int
    setting: str
    samples: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)  # CPU seconds, per sample
    threads: set[int] = dataclasses.field(default_factory=set)  # torch.get_num_threads()
    other: list[float] = dataclasses.field(default_factory=list)  # Window.other_cores, per child

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# --- the parent: background load, children, table ---------------------------------------------


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent not idle (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / HZ


def process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is stat's 3rd field
    return (int(fields[11]) + int(fields[12])) / HZ


@dataclasses.dataclass
class Window:
    """A measurement under load. Set `own_cpu_s` to the measured process's CPU seconds; on exit,
    `other_cores` is what processes other than it and the busy loops took (cores, on average):
    this machine is shared, and other people's work is load that the benchmark does not control."""

    own_cpu_s: float = 0.0
    other_cores: float = 0.0


@contextlib.contextmanager
def busy(n: int) -> Iterator[Window]:
    """`n` pure-Python busy loops for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    window = Window()
    try:
        if procs:
            time.sleep(0.3)  # let them start spinning
        loops0 = sum(process_cpu_s(p.pid) for p in procs)
        machine0, t0 = machine_busy_s(), time.perf_counter()
        yield window
        loops = sum(process_cpu_s(p.pid) for p in procs) - loops0
        machine, wall = machine_busy_s() - machine0, time.perf_counter() - t0
        window.other_cores = max(0.0, machine - loops - window.own_cpu_s) / wall
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def child_env(src: Path, setting: Setting) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(setting.env, PYTHONPATH=str(src), PYTHONUNBUFFERED="1")
    return env


def run_child(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Run a child to completion: its wall seconds, its CPU seconds (user + system, all threads)
    and its stdout. Raises if it fails."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err)
        timer = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait: for the child's rusage
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{args} failed ({proc.returncode}):\n{err.read()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, stdout


def child_result(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT)]
    if len(lines) != 1:
        raise RuntimeError(f"child printed no result:\n{stdout[-3000:]}")
    return json.loads(lines[0][len(RESULT) :])


def child_args(mode: str, updates: int, policy: bool = False) -> list[str]:
    # -P: no script directory on sys.path, so `bench` and `autointerp` come from PYTHONPATH (src).
    script = str(Path(__file__).resolve())
    args = [sys.executable, "-P", script, "--child", mode, "--updates", str(updates)]
    return [*args, "--policy"] if policy else args


def measure_harvest(cell: Cell, src: Path, setting: Setting, updates: int) -> float:
    """Add the child's timed updates to `cell`; return the child's CPU seconds."""
    args = child_args("harvest", updates, setting.policy)
    _, cpu, stdout = run_child(args, child_env(src, setting), src)
    r = child_result(stdout)
    cell.samples += r["wall"]
    cell.cpu += r["cpu"]
    cell.threads.add(r["threads"])
    return cpu


THREADS_LOGGED = re.compile(r"harvest: (?:now )?(\d+) CPU thread")


def measure_demo(cell: Cell, src: Path, setting: Setting) -> float:
    """Add one demo run's wall time to `cell`, and the thread counts its log names; return its
    CPU seconds. A fixed setting is passed as `--threads` (the daemon's policy would override
    an environment variable)."""
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as data_dir:
        cmd = [sys.executable, "-m", "autointerp", "daemon", "demo", "--labeller", "none"]
        cmd += ["--plain", "--data-dir", data_dir, "--device", "cpu"]
        if setting.threads is not None:
            cmd += ["--threads", str(setting.threads)]
        wall, cpu, _ = run_child(cmd, child_env(src, setting), src)
        log = (Path(data_dir) / "demo" / "autointerp.log").read_text()
    cell.threads.update(int(n) for n in THREADS_LOGGED.findall(log))
    cell.samples.append(wall)
    cell.cpu.append(cpu)
    return cpu


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def table(cells: list[Cell]) -> str:
    head = (
        "| workload | busy procs | setting | torch threads | n | median s | min s | max s "
        "| CPU/wall | other procs' cores | vs same setting at load 0 | vs best at this load |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in cells:
        base = next(
            (b for b in cells if (b.workload, b.load, b.setting) == (c.workload, 0, c.setting)),
            None,
        )
        best = min(b.median for b in cells if (b.workload, b.load) == (c.workload, c.load))
        cpu_wall = sum(c.cpu) / sum(c.samples)
        vs_idle = fmt_ratio(c.median / base.median) if base else "-"
        rows.append(
            f"| {c.workload} | {c.load} | {c.setting} | {','.join(map(str, sorted(c.threads)))} "
            f"| {len(c.samples)} | {c.median:.3f} | {min(c.samples):.3f} | {max(c.samples):.3f} "
            f"| {cpu_wall:.2f} | {statistics.median(c.other):.2f} | {vs_idle} "
            f"| {fmt_ratio(c.median / best)} |"
        )
    return "\n".join(rows)


def run_switch(src: Path, loads: list[int], updates: int) -> str:
    rows = [
        "| busy procs | phase | runs in | get_num_threads there | median s/update "
        "| CPU/wall | OS threads working |",
        "|" + "---|" * 7,
    ]
    for load in loads:
        with busy(load):
            env = child_env(src, SETTINGS[0])
            _, _, stdout = run_child(child_args("switch", updates), env, src)
        for p in child_result(stdout)["phases"]:
            rows.append(
                f"| {load} | {p['phase']} | {p['where']} | {p['threads']} "
                f"| {statistics.median(p['wall']):.3f} | {sum(p['cpu']) / sum(p['wall']):.2f} "
                f"| {p['working']} |"
            )
    return "\n".join(rows)


@contextlib.contextmanager
def source_tree(src: str) -> Iterator[Path]:
    """The tree the children run: a path, or HEAD exported with `git archive` to a temp dir."""
    if src != "HEAD":
        yield Path(src).resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-threads-src-"))
    try:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True)
        archive.check_returncode()
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parent(args: argparse.Namespace) -> None:
    with source_tree(args.src) as src:
        print(
            f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, source {args.src} "
            f"({src}), repeat {args.repeat}, {args.updates} timed harvest updates per child",
            flush=True,
        )
        cells: dict[tuple[str, int, str], Cell] = {}
        measures: dict[str, Callable[[Cell, Setting], float]] = {
            "harvest": lambda c, s: measure_harvest(c, src, s, args.updates),
            "demo": lambda c, s: measure_demo(c, src, s),
        }
        t_start = time.perf_counter()
        for workload in args.workloads:
            for load in args.loads:
                for rep in range(args.repeat):
                    # Rotate the order each repeat so that no setting always runs first.
                    order = SETTINGS[rep % len(SETTINGS) :] + SETTINGS[: rep % len(SETTINGS)]
                    for s in order:
                        key = (workload, load, s.name)
                        cell = cells.setdefault(key, Cell(*key))
                        with busy(load) as window:
                            window.own_cpu_s = measures[workload](cell, s)
                        cell.other.append(window.other_cores)
                print(
                    f"  {workload} at load {load} done "
                    f"({time.perf_counter() - t_start:.0f}s elapsed)",
                    flush=True,
                )
        ordered = sorted(
            cells.values(),
            key=lambda c: (
                WORKLOADS.index(c.workload),
                c.load,
                [s.name for s in SETTINGS].index(c.setting),
            ),
        )
        print()
        print(table(ordered))
        if args.switch_loads:
            print()
            print(run_switch(src, args.switch_loads, args.updates))
        print(
            f"\ntotal {time.perf_counter() - t_start:.0f}s, "
            f"load average now {os.getloadavg()[0]:.2f} (includes the busy loops)"
        )
        if args.json:
            samples = [dataclasses.asdict(c) for c in ordered]
            Path(args.json).write_text(json.dumps(samples, default=sorted))


# --- the children ------------------------------------------------------------------------------


class HarvestRig:
    """A Harvester at bench/harvest.py's "small" shape and a few SPD-like batches to feed it."""

    def __init__(self, n_batches: int = 3) -> None:
        import torch

        from autointerp.harvest import Harvester
        from bench.harvest import EXAMPLES, SHAPES, WINDOW, firing_rates, spd_like_batch

        s = SHAPES["small"]
        layout = [(f"layers.{i}.mlp", s.components) for i in range(s.modules)]
        rate = firing_rates(torch.Generator().manual_seed(0), s.modules * s.components)
        self.batches = [
            spd_like_batch(torch.Generator().manual_seed(1000 + i), s, rate)
            for i in range(n_batches)
        ]
        self.harvester = Harvester(layout, s.vocab, 0.0, EXAMPLES, WINDOW, "cpu", 0)
        self.i = 0

    def update(self) -> tuple[float, float]:
        """One update: its wall and process CPU seconds."""
        batch = self.batches[self.i % len(self.batches)]
        self.i += 1
        t0, c0 = time.perf_counter(), time.process_time()
        self.harvester.update(*batch)
        return time.perf_counter() - t0, time.process_time() - c0


def emit(result: dict[str, Any]) -> None:
    print(RESULT + json.dumps(result), flush=True)


def harvest_child(updates: int, policy: bool) -> None:
    """`policy`: autointerp's CpuThreadPolicy decides (first before the warm-up, then between
    updates every 2 s, as the harvest pass does every 20 s)."""
    import torch

    from autointerp.harvest.threads import CpuThreadPolicy

    threads = CpuThreadPolicy(every_s=2.0) if policy else None
    if threads is not None:
        threads.start()
    rig = HarvestRig()
    rig.update()  # warm-up: page-faults the tables, starts the thread pool
    times = []
    for _ in range(updates):
        times.append(rig.update())
        if threads is not None:
            threads.tick()
    emit(
        {
            "threads": torch.get_num_threads(),
            "wall": [w for w, _ in times],
            "cpu": [c for _, c in times],
        }
    )


def thread_cpu_ticks() -> dict[int, int]:
    """User + system clock ticks of each OS thread of this process."""
    ticks = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is stat's 3rd field
            ticks[int(task.name)] = int(fields[11]) + int(fields[12])
    return ticks


def switch_child(updates: int) -> None:
    """Change torch.set_num_threads between updates; per phase, report whether the pool followed."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    rig = HarvestRig()
    # A long-lived worker, as asyncio.to_thread's executor thread is: it runs torch first while
    # the process still has its default thread count.
    worker = ThreadPoolExecutor(1)
    worker.submit(rig.update).result()
    rig.update()
    phases = []

    def phase(name: str, where: str, set_in: Callable[[], None] | None) -> None:
        runner: Callable[[Callable[[], Any]], Any] = (
            (lambda f: f()) if where == "main" else (lambda f: worker.submit(f).result())
        )
        if set_in is not None:
            set_in()
        before, t0 = thread_cpu_ticks(), time.perf_counter()
        times = [runner(rig.update) for _ in range(updates)]
        after, wall = thread_cpu_ticks(), time.perf_counter() - t0
        # A thread "worked" if it was on a CPU for at least a fifth of the phase.
        working = sum(1 for t, v in after.items() if (v - before.get(t, 0)) / HZ >= 0.2 * wall)
        phases.append(
            {
                "phase": name,
                "where": where,
                "threads": runner(torch.get_num_threads),
                "wall": [w for w, _ in times],
                "cpu": [c for _, c in times],
                "working": working,
            }
        )

    def set_here(n: int) -> Callable[[], None]:
        return lambda: torch.set_num_threads(n)

    def set_in_worker(n: int) -> Callable[[], None]:
        return lambda: worker.submit(torch.set_num_threads, n).result()

    phase("default", "main", None)
    phase("set 1 in main", "main", set_here(1))
    phase("set 2 in main", "main", set_here(2))
    phase("default (worker)", "worker", None)
    phase("set 1 in main", "worker", set_here(1))
    phase("set 1 in worker", "worker", set_in_worker(1))
    phase("set 2 in worker", "worker", set_in_worker(2))
    emit({"phases": phases})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--loads", nargs="+", type=int, default=[0, 1, 2], help="busy processes")
    parser.add_argument("--repeat", type=int, default=3, help="fresh children per cell")
    parser.add_argument("--updates", type=int, default=8, help="timed harvest updates per child")
    parser.add_argument(
        "--switch-loads",
        nargs="*",
        type=int,
        default=[0, 2],
        help="loads for the runtime set_num_threads check (none: skip it)",
    )
    parser.add_argument(
        "--src", default=str(REPO), help="source tree the children run, or HEAD (git archive)"
    )
    parser.add_argument("--json", help="also write the samples here")
    parser.add_argument("--child", choices=["harvest", "switch"], help=argparse.SUPPRESS)
    parser.add_argument("--policy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1 or args.updates < 1 or min(args.loads) < 0:
        parser.error("--repeat and --updates must be >= 1, --loads >= 0")
    if args.child == "harvest":
        harvest_child(args.updates, args.policy)
    elif args.child == "switch":
        switch_child(args.updates)
    else:
        parent(args)


if __name__ == "__main__":
    main()
