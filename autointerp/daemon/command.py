"""`autointerp daemon <source>` (also `autointerp-daemon <source>`): harvest, finalize and label.

Startup order matters for safety: build the labeller (a missing key fails before a long
download), open the source (to learn the run id), check every option against it, take the run
lock, then reconcile the configuration with the run directory before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import time

from autointerp.daemon.logs import attach_file_log
from autointerp.daemon.options import DaemonOptions
from autointerp.daemon.orchestrator import Outcome
from autointerp.daemon.progress import SharedProgress
from autointerp.daemon.runtime import Terminal, end_state, exit_code, run_command, supervise
from autointerp.daemon.shutdown import Shutdown
from autointerp.errors import UserError
from autointerp.harvest import HarvestPass, HarvestProgress, check_fits
from autointerp.harvest.config import harvest_config, reconcile_config
from autointerp.harvest.disk import check_disk
from autointerp.harvest.threads import CpuThreadPolicy
from autointerp.interpret.base import Labeller
from autointerp.interpret.options import build_labeller, build_scoring
from autointerp.interpret.pool import LabellingPool
from autointerp.schemas import HarvestConfig
from autointerp.sources.base import Source
from autointerp.store import RunDir, RunLock, RunReader, StateFile

log = logging.getLogger(__name__)


def run_daemon(options: DaemonOptions) -> int:
    """Exit code 0 done or stopped, 1 runtime failure (2 via UserError)."""
    started_at = time.time()
    return run_command(lambda terminal: _main(options, terminal, started_at), options.display)


async def _main(options: DaemonOptions, terminal: Terminal, started_at: float) -> int:
    shutdown = Shutdown()
    shutdown.install(asyncio.get_running_loop())
    labeller: Labeller | None = None
    try:
        if options.labelling is not None:
            labeller = build_labeller(options.labelling)
        log.info("opening source %s", options.source.spec)
        source: Source = await asyncio.to_thread(options.source.open)
        if shutdown.requested:
            return 0
        run = RunDir.for_run(options.data_dir, source.run_id)
        config = harvest_config(source, options.harvest, previous=RunReader(run).config())
        with RunLock(run):
            file_log = attach_file_log(run.log_path)
            terminal.log_path = str(run.log_path)
            try:
                return await _run_locked(
                    options, source, config, run, labeller, terminal, shutdown, started_at
                )
            finally:
                file_log.close()
    finally:
        if labeller is not None:
            await labeller.aclose()
        shutdown.uninstall()


async def _run_locked(
    options: DaemonOptions,
    source: Source,
    config: HarvestConfig,
    run: RunDir,
    labeller: Labeller | None,
    terminal: Terminal,
    shutdown: Shutdown,
    started_at: float,
) -> int:
    force_new = options.harvest.force_new
    if force_new or not RunReader(run).state().finalize_complete:
        _check_memory(config, source)  # before anything is written: nothing to undo
        check_disk(run, config, source.device, force_new=force_new)
    backup = reconcile_config(run, config, force_new=force_new)
    if backup is not None:
        log.warning("--force-new-harvest: the previous run's files were moved to %s", backup)
    where = run.root.absolute()
    labeller_text = (
        options.labelling.describe() if options.labelling is not None else "none (harvest only)"
    )
    log.info("run %s in %s (source %s)", source.run_id, where, source.description)
    log.info("labeller: %s", labeller_text)
    state = StateFile(run)
    progress = SharedProgress(
        started_at=started_at,
        run_id=source.run_id,
        run_dir=str(where),
        source=source.description,
        device=str(source.device),
        labeller=labeller_text,
        n_batches=config.n_batches,
    )
    pool = None
    if labeller is not None and options.labelling is not None:
        if options.labelling.scorers and not config.has_heldout:
            raise UserError(
                f"--score needs held-out windows, and run {source.run_id} was harvested without "
                "them (--heldout-per-component 0 and --negatives-per-component 0, or a harvest "
                "from before scoring existed)"
            )
        pool = LabellingPool(
            labeller,
            source.architecture,
            run,
            budget_usd=options.labelling.budget_usd,
            retry_failed=options.labelling.retry_failed,
            scoring=build_scoring(options.labelling, labeller, run),
        )

    def on_progress(harvest: HarvestProgress) -> None:
        progress.update(**vars(harvest))

    harvest = HarvestPass(
        source,
        config,
        run,
        state,
        checkpoint_every_s=options.harvest.checkpoint_every_s,
        stop=shutdown.event,
        on_progress=on_progress,
        emit_written=pool.is_pending if pool is not None else lambda key: True,
        cpu_threads=(CpuThreadPolicy(options.cpu_threads) if source.device.type == "cpu" else None),
    )

    def on_end(outcome: Outcome) -> None:
        settled = _settle(outcome, state, progress, pool)
        phase, note = end_state(outcome, settled)
        if pool is None and settled == "label":
            phase = "done (harvest only)"
            note = f"label it with: autointerp interpret {where}"
        progress.update(phase=phase, end_note=note)

    outcome = await supervise(
        harvest.run, pool, progress, shutdown, run, terminal, options.display, on_end=on_end
    )
    if outcome.stopped and outcome.error is None:
        log.info("stopped on %s; run the same command again to resume", shutdown.reason)
    return exit_code(outcome, run)


def _settle(
    outcome: Outcome, state: StateFile, progress: SharedProgress, pool: LabellingPool | None
) -> str:
    """Record in `state.json` that labelling is complete when it is; return the run's phase."""
    complete = outcome.error is None and not outcome.stopped and state.get().finalize_complete
    if complete and pool is not None:
        snap = pool.snapshot()
        alive = progress.snapshot().alive_total
        if snap.stop_reason == "done" and alive is not None and snap.done >= alive:
            state.update(labelling_complete=True, labelling_completed_at=time.time())
    return state.get().phase


def _check_memory(config: HarvestConfig, source: Source) -> None:
    """Refuse (exit 2, with the breakdown) before a pass that would run out of device memory."""
    need = check_fits(
        source.device,
        config.layout,
        config.vocab_size,
        config.sampled_per_component,
        config.context_tokens_per_side,
        config.batch_size,
        config.context_length,
        total_tokens=config.n_batches * config.batch_size * config.context_length,
        negatives_per_component=config.negatives_per_component,
        hard_negatives_per_component=config.hard_negatives_per_component,
    )
    log.info("harvest memory: %.2f GiB on %s", sum(need.values()) / 2**30, source.device)
