"""`autointerp daemon <source>` (also `autointerp-daemon <source>`): harvest, finalize and label.

Startup order matters for safety: open the source (to learn the run id), take the run lock, then
check the configuration against the run directory before anything is written.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from rich.console import Console

from autointerp.daemon.config import HarvestConfig, reconcile_config
from autointerp.daemon.dashboard import Dashboard
from autointerp.daemon.logs import attach_file_log, flush_all, setup_console_log
from autointerp.daemon.options import add_daemon_arguments, choose_labeller, harvest_sizes
from autointerp.daemon.orchestrator import Orchestrator
from autointerp.daemon.producer import HarvestProducer
from autointerp.daemon.progress import SharedProgress
from autointerp.daemon.run_state import StateFile, load_state
from autointerp.daemon.shutdown import Shutdown
from autointerp.errors import UserError
from autointerp.harvest import check_fits
from autointerp.interpret.base import FatalLabellerError, Labeller
from autointerp.interpret.options import build_labeller
from autointerp.interpret.pool import LabellingPool
from autointerp.sources.base import Source
from autointerp.sources.open import open_source
from autointerp.store import RunDir, RunLock, data_dir_from

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_daemon_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_daemon(args, labelling=True)


def run_daemon(args: argparse.Namespace, *, labelling: bool) -> int:
    """Run the whole daemon; exit code 0 done or stopped, 1 runtime failure (2 via UserError)."""
    started_at = time.time()
    console = Console()
    plain = bool(args.plain) or not console.is_terminal
    setup_console_log(console, plain=plain)
    context = _Context(started_at)
    try:
        return _event_loop_run(_main(args, labelling, console, plain, context))
    except UserError:
        raise
    except Exception as e:
        log.error("runtime failure: %s", e, exc_info=True)
        where = f" (details in {context.log_path})" if context.log_path else ""
        print(f"autointerp: error: {e}{where}", file=sys.stderr)
        return 1


class _Context:
    """When the process started, and what the error path needs to know about how far it got."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.log_path: str | None = None


def _event_loop_run(coro) -> int:  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _main(
    args: argparse.Namespace, labelling: bool, console: Console, plain: bool, context: _Context
) -> int:
    shutdown = Shutdown()
    shutdown.install(asyncio.get_running_loop())
    labeller: Labeller | None = None
    try:
        name, why = choose_labeller(args.labeller if labelling else "none")
        labeller = _build_labeller(args, name)  # before a long download: a missing key fails fast
        log.info("opening source %s", args.source)
        source: Source = await asyncio.to_thread(
            open_source,
            args.source,
            device=args.device,
            cache_dir=args.cache_dir,
            dataset=args.dataset,
            tokenizer=args.tokenizer,
            text_column=args.text_column,
        )
        if shutdown.requested:
            return 0
        config = _config(args, source)
        run = RunDir.for_run(data_dir_from(args.data_dir), source.run_id)
        with RunLock(run):
            file_log = attach_file_log(run.log_path)
            context.log_path = str(run.log_path)
            try:
                return await _run_locked(
                    args, source, config, run, labeller, _describe(name, why, labeller),
                    console, plain, shutdown, context.started_at,
                )  # fmt: skip
            finally:
                file_log.close()
    finally:
        if labeller is not None:
            await labeller.aclose()
        shutdown.uninstall()


async def _run_locked(
    args: argparse.Namespace,
    source: Source,
    config: HarvestConfig,
    run: RunDir,
    labeller: Labeller | None,
    labeller_text: str,
    console: Console,
    plain: bool,
    shutdown: Shutdown,
    started_at: float,
) -> int:
    if args.force_new_harvest or not load_state(run).finalize_complete:
        _check_memory(config, source)  # before anything is written: nothing to undo
    backup = reconcile_config(run, config, force_new=args.force_new_harvest)
    if backup is not None:
        log.warning("--force-new-harvest: the previous run's files were moved to %s", backup)
    log.info("run %s in %s (source %s)", source.run_id, run.root, source.description)
    log.info("labeller: %s", labeller_text)
    state = StateFile(run)
    progress = SharedProgress(
        started_at=started_at,
        run_id=source.run_id,
        source=source.description,
        device=str(source.device),
        labeller=labeller_text,
        n_batches=config.n_batches,
    )
    pool = None
    if labeller is not None:
        pool = LabellingPool(
            labeller,
            source.architecture,
            run,
            max_concurrent=args.max_concurrent,
            budget_usd=args.budget_usd,
            retry_failed=not args.no_retry_failed,
        )
    producer = HarvestProducer(
        source,
        config,
        run,
        state,
        progress,
        shutdown.event,
        checkpoint_every=args.checkpoint_every,
        is_pending=pool.is_pending if pool is not None else lambda key: True,
    )
    orchestrator = Orchestrator(
        producer,
        pool,
        progress,
        state,
        shutdown,
        grace_period=args.grace_period,
        queue_size=2 * args.max_concurrent + 16 if pool is not None else 1,
    )
    dashboard = Dashboard(progress, console, plain=plain, status_every=args.status_every)

    def abort() -> None:
        dashboard.abort()
        flush_all()

    shutdown.set_abort(abort)
    dashboard.start()
    try:
        outcome = await orchestrator.run()
    finally:
        dashboard.stop()
    if outcome.error is not None:
        if isinstance(outcome.error, FatalLabellerError):
            print(f"autointerp: labelling stopped: {outcome.error}", file=sys.stderr)
            print(f"autointerp: progress is saved; see {run.log_path}", file=sys.stderr)
            return 1
        raise outcome.error
    if outcome.stopped:
        log.info("stopped on %s; restart the same command to resume", shutdown.reason)
    return 0


def _check_memory(config: HarvestConfig, source: Source) -> None:
    """Refuse (exit 2, with the breakdown) before a pass that would run out of device memory."""
    need = check_fits(
        source.device,
        config.layout,
        config.vocab_size,
        config.examples_per_component,
        config.context_tokens_per_side,
        config.batch_size,
        config.context_length,
        total_tokens=config.n_batches * config.batch_size * config.context_length,
    )
    log.info("harvest memory: %.2f GiB on %s", sum(need.values()) / 2**30, source.device)


def _build_labeller(args: argparse.Namespace, name: str) -> Labeller | None:
    if name == "none":
        return None
    args.labeller = name
    return build_labeller(args)


def _describe(name: str, why: str, labeller: Labeller | None) -> str:
    if labeller is None:
        return "none (harvest only)"
    model = getattr(labeller, "model", "")
    if name == "offline":
        return f"offline labeller ({why})"
    return f"claude {model} ({why})"


def _config(args: argparse.Namespace, source: Source) -> HarvestConfig:
    sizes = harvest_sizes(args, source, args.source)
    return HarvestConfig(
        run_id=source.run_id,
        source=source.description,
        source_fingerprint=dict(source.fingerprint()),
        layout=[(str(m), int(c)) for m, c in source.layout],
        vocab_size=int(source.vocab_size),
        n_batches=sizes["n_batches"],
        batch_size=sizes["batch_size"],
        context_length=sizes["context_length"],
        ci_threshold=float(args.ci_threshold),
        examples_per_component=args.examples_per_component,
        context_tokens_per_side=args.context_tokens,
        top_k=args.top_k,
        seed=args.seed,
        architecture=source.architecture,
    )
