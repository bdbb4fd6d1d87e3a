"""`autointerp interpret <run>`: label the components of a finished harvest.

Resumable: components that already have a result are skipped, failures are retried (unless
`--no-retry-failed`), and a second process on the same run is refused. Ctrl-C stops taking new
components and lets requests in flight finish and be recorded; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TextIO

import msgspec

from autointerp.errors import UserError
from autointerp.interpret.base import FatalLabellerError, Labeller
from autointerp.interpret.options import add_labelling_arguments, build_labeller
from autointerp.interpret.pool import LabellingPool, PoolSnapshot
from autointerp.schemas import ArchitectureInfo, ComponentData
from autointerp.store import RunDir, RunLock, data_dir_from, iter_jsonl, read_keys

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory, or a run id under --data-dir")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where run ids live (default: $AUTOINTERP_DATA_DIR, else .data/autointerp)",
    )
    add_labelling_arguments(parser)


def resolve_run(run: str, data_dir: str | None) -> RunDir:
    """A run directory path, else `<data-dir>/<run>`; a UserError when neither exists."""
    as_path = Path(run).expanduser()
    if (as_path / "harvest").is_dir():
        return RunDir(as_path)
    under = data_dir_from(data_dir) / run
    if (under / "harvest").is_dir():
        return RunDir(under)
    looked = str(as_path) if under == as_path else f"{as_path} or {under}"
    raise UserError(
        f"no run found at {looked} (a run directory has a harvest/ folder); "
        "give a run directory or a run id under --data-dir"
    )


def read_architecture(run: RunDir) -> ArchitectureInfo:
    """`harvest/config.json` key "architecture", as written by the daemon."""
    path = run.config_path
    if not path.exists():
        raise UserError(f"{path} is missing: this run has no harvest config")
    try:
        config = msgspec.json.decode(path.read_bytes())
        return msgspec.convert(config["architecture"], ArchitectureInfo)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as e:
        raise UserError(
            f'{path} has no valid "architecture" entry ({type(e).__name__}: {e})'
        ) from None


def check_harvest_complete(run: RunDir) -> None:
    if not run.summary_path.exists() or not run.components_path.exists():
        raise UserError(
            f"the harvest in {run.root} is not complete (no {run.summary_path.name}); "
            "finish it first (run autointerp-daemon on the same source), then label it"
        )


def progress_line(snap: PoolSnapshot, total: int) -> str:
    cost = f"${snap.cost_usd:.4f}" + ("" if snap.cost_known else " (+unknown)")
    if snap.budget_usd is not None:
        cost += f" of ${snap.budget_usd:.2f}"
    return (
        f"labelled {snap.done}/{total} ({snap.done_this_run} this run), failed {snap.failed}, "
        f"skipped {snap.skipped} ({snap.skipped_dead} dead), in flight {snap.in_flight}, "
        f"{snap.labels_per_minute:.0f}/min, cost {cost}"
    )


def _feed(
    path: Path,
    queue: asyncio.Queue[ComponentData | None],
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
) -> None:
    """Read components.jsonl in this thread and hand them to the loop, waiting when it is full."""

    def put(item: ComponentData | None) -> bool:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while True:
            try:
                future.result(timeout=0.2)
                return True
            except FutureTimeout:
                if stop.is_set():
                    future.cancel()
                    return False

    for component in iter_jsonl(path, ComponentData):
        if stop.is_set() or not put(component):
            return
    put(None)


async def label_run(
    run: RunDir,
    architecture: ArchitectureInfo,
    labeller: Labeller,
    *,
    max_concurrent: int,
    budget_usd: float | None,
    retry_failed: bool,
    progress: TextIO = sys.stderr,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> PoolSnapshot:
    """Label every pending component of `run`; returns the final snapshot.

    Raises FatalLabellerError when labelling cannot go on (bad key, spend limit).
    """
    total = len(read_keys(run.components_path)[0])
    pool = LabellingPool(
        labeller,
        architecture,
        run,
        max_concurrent=max_concurrent,
        budget_usd=budget_usd,
        retry_failed=retry_failed,
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[ComponentData | None] = asyncio.Queue(maxsize=4 * max_concurrent)
    stop_feeding = threading.Event()
    feeder = asyncio.ensure_future(
        asyncio.to_thread(_feed, run.components_path, queue, loop, stop_feeding)
    )
    main = asyncio.current_task()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("stopping: finishing requests in flight (again to abort)", file=progress)
            pool.stop("interrupted")
        elif main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)

    async def report() -> None:
        while True:
            await asyncio.sleep(progress_every_s)
            print(progress_line(pool.snapshot(), total), file=progress, flush=True)

    reporter = asyncio.ensure_future(report())
    try:
        await pool.run(queue)
    finally:
        reporter.cancel()
        stop_feeding.set()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await labeller.aclose()
        print(progress_line(pool.snapshot(), total), file=progress, flush=True)
    return pool.snapshot()


def _run_async(coro: object) -> PoolSnapshot:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not available on Windows
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "anthropic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_dir = resolve_run(args.run, args.data_dir)
    check_harvest_complete(run_dir)
    architecture = read_architecture(run_dir)
    labeller = build_labeller(args)
    started = time.monotonic()
    with RunLock(run_dir):
        try:
            snap = _run_async(
                label_run(
                    run_dir,
                    architecture,
                    labeller,
                    max_concurrent=args.max_concurrent,
                    budget_usd=args.budget_usd,
                    retry_failed=not args.no_retry_failed,
                )
            )
        except FatalLabellerError as e:
            print(f"autointerp: labelling stopped: {e}", file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            print("autointerp: aborted; requests in flight were not recorded", file=sys.stderr)
            return 130
    took = time.monotonic() - started
    print(f"finished ({snap.stop_reason}) in {took:.0f}s: results in {run_dir.results_path}")
    if snap.stop_reason == "budget":
        print(f"the budget of ${args.budget_usd:.2f} is spent; raise --budget-usd to go on")
    if snap.failed:
        print(
            f"{snap.failed} component(s) failed (see {run_dir.failures_path}); "
            "run the same command again to retry them"
        )
    return 130 if snap.stop_reason == "interrupted" else 0
