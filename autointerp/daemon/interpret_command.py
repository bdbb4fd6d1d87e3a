"""`autointerp interpret <run>`: label a finished harvest with the daemon's own runtime.

The feeder reads `components.jsonl` and hands on the alive components that still need a label;
everything else (dashboard or plain lines, signals, the pool, the summary) is the daemon's.
Resumable: components that already have a result are skipped, failures are retried (unless
`--no-retry-failed`), and a second process on the same run is refused.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

from autointerp.daemon.logs import attach_file_log
from autointerp.daemon.options import InterpretOptions
from autointerp.daemon.orchestrator import Emit, Outcome
from autointerp.daemon.progress import SharedProgress
from autointerp.daemon.runtime import Terminal, end_state, exit_code, run_command, supervise
from autointerp.daemon.shutdown import Shutdown
from autointerp.errors import UserError
from autointerp.interpret.options import build_labeller, build_scoring
from autointerp.interpret.pool import LabellingPool, PoolSnapshot
from autointerp.store import RunDir, RunLock, RunReader, resolve_run

log = logging.getLogger(__name__)


def run_interpret(options: InterpretOptions) -> int:
    started_at = time.time()
    return run_command(lambda terminal: _main(options, terminal, started_at), options.display)


def check_harvest_complete(reader: RunReader) -> None:
    if not reader.harvest_is_complete():
        run = reader.run
        raise UserError(
            f"the harvest in {run.root} is not complete (no {run.summary_path.name}); "
            "finish it first (run autointerp-daemon on the same source), then label it"
        )


async def _main(options: InterpretOptions, terminal: Terminal, started_at: float) -> int:
    run = resolve_run(options.run, options.data_dir)
    reader = RunReader(run)
    check_harvest_complete(reader)
    if options.labelling.scorers and not run.heldout_path.exists():
        raise UserError(
            f"--score needs held-out windows, and {run.heldout_path} is missing (a harvest "
            "without them, or from before scoring existed)"
        )
    architecture = reader.architecture()
    labeller = build_labeller(options.labelling)
    shutdown = Shutdown()
    shutdown.install(asyncio.get_running_loop())
    try:
        with RunLock(run):
            file_log = attach_file_log(run.log_path)
            terminal.log_path = str(run.log_path)
            try:
                pool = LabellingPool(
                    labeller,
                    architecture,
                    run,
                    budget_usd=options.labelling.budget_usd,
                    retry_failed=options.labelling.retry_failed,
                    scoring=build_scoring(options.labelling, labeller, run),
                )
                return await _label(options, run, pool, terminal, shutdown, started_at)
            finally:
                file_log.close()
    finally:
        await labeller.aclose()
        shutdown.uninstall()


async def _label(
    options: InterpretOptions,
    run: RunDir,
    pool: LabellingPool,
    terminal: Terminal,
    shutdown: Shutdown,
    started_at: float,
) -> int:
    reader = RunReader(run)
    counts = reader.component_counts()
    state = reader.state()
    where = run.root.absolute()
    labeller_text = options.labelling.describe()
    log.info("labelling run %s (%s)", where, labeller_text)
    progress = SharedProgress(
        started_at=started_at,
        run_id=run.root.name,
        run_dir=str(where),
        source=_source_of(reader),
        labeller=labeller_text,
        phase="label",
        n_batches=state.batches_done,
        batches_done=state.batches_done,
        n_tokens=state.n_tokens,
        n_components=counts.written,
        components_written=counts.written,
        alive_written=counts.alive,
        alive_total=counts.alive,
    )

    def feed(emit: Emit | None) -> None:
        _feed(reader, pool, emit, shutdown.event)

    def on_end(outcome: Outcome) -> None:
        settled = "done" if pool.snapshot().done >= counts.alive else "label"
        phase, note = end_state(outcome, settled)
        progress.update(phase=phase, end_note=note)

    outcome = await supervise(
        feed, pool, progress, shutdown, run, terminal, options.display, on_end=on_end
    )
    snap = pool.snapshot()
    print(progress_line(snap, counts.written, counts.alive), file=sys.stderr, flush=True)
    code = exit_code(outcome, run)
    if code == 0 and not outcome.stopped:
        took = time.time() - started_at
        print(f"finished ({snap.stop_reason}) in {took:.0f}s: results in {run.results_path}")
        if snap.failed:
            print(
                f"{snap.failed} component(s) failed (see {run.failures_path}); "
                "run the same command again to retry them"
            )
    return code


def _feed(reader: RunReader, pool: LabellingPool, emit: Emit | None, stop: threading.Event) -> None:
    """Hand on every alive component that still needs a label, in file order."""
    if emit is None:
        return
    for component in reader.pending_components(pool.is_pending):
        if stop.is_set() or not emit(component):
            return


def _source_of(reader: RunReader) -> str:
    try:
        config = reader.config()
    except UserError:  # a config from another tool: the architecture was enough to label
        return "harvest config"
    return config.source if config is not None else "harvest config"


def progress_line(snap: PoolSnapshot, total: int, alive: int) -> str:
    """The closing line on stderr (the summary above it is the dashboard's)."""
    cost = f"${snap.cost_usd:.4f}" + ("" if snap.cost_known else " (+unknown)")
    if snap.budget_usd is not None:
        cost += f" of ${snap.budget_usd:.2f}"
    return (
        f"labelled {snap.done}/{total} ({snap.done_this_run} this run, {total - alive} never "
        f"fired), failed {snap.failed}, {snap.labels_per_minute:.0f}/min, cost {cost}"
    )
