"""What the daemon and `autointerp interpret` share: one process's event loop, console, logs,
signals, dashboard, live progress file, labelling pool and final summary.

A command supplies the feeder (the harvest pass, or a reader of `components.jsonl`) and the
labeller; `supervise` runs them under the dashboard until done or stopped. `run_command` turns
what escapes into exit codes: a `UserError` is the CLI's (exit 2), a `FatalAPIError` is one
message (exit 1), anything else is a bug: its traceback goes to the log, one line to stderr,
exit 1.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console

from autointerp.daemon.dashboard import Dashboard
from autointerp.daemon.live_file import LiveProgressFile
from autointerp.daemon.logs import flush_all, setup_console_log
from autointerp.daemon.options import DisplayOptions
from autointerp.daemon.orchestrator import Feeder, Orchestrator, Outcome
from autointerp.daemon.progress import SharedProgress
from autointerp.daemon.shutdown import Shutdown
from autointerp.errors import UserError
from autointerp.interpret.llm.errors import FatalAPIError
from autointerp.interpret.pool import LabellingPool
from autointerp.store import RunDir

log = logging.getLogger(__name__)

T = TypeVar("T")

RESUME_NOTE = "stopped: run the same command again to resume"
BUDGET_NOTE = "the budget is spent: raise --budget-usd and run the same command again to go on"


@dataclass
class Terminal:
    """The console the dashboard draws on, whether it is live, and where the log file is."""

    console: Console
    plain: bool
    log_path: str | None = None


def run_command(
    main: Callable[[Terminal], Coroutine[Any, Any, int]], display: DisplayOptions
) -> int:
    """Run `main` on a fresh event loop (uvloop where available) and map failures to exits."""
    console = Console()
    plain = display.plain or not console.is_terminal
    setup_console_log(console, plain=plain)
    terminal = Terminal(console, plain)
    try:
        return run_async(main(terminal))
    except UserError:
        raise
    except FatalAPIError as e:
        print(f"autointerp: labelling stopped: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        log.error("runtime failure: %s", e, exc_info=True)
        where = f" (details in {terminal.log_path})" if terminal.log_path else ""
        print(f"autointerp: error: {e}{where}", file=sys.stderr)
        return 1


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


async def supervise(
    feeder: Feeder,
    pool: LabellingPool | None,
    progress: SharedProgress,
    shutdown: Shutdown,
    run: RunDir,
    terminal: Terminal,
    display: DisplayOptions,
    *,
    on_end: Callable[[Outcome], None],
) -> Outcome:
    """Run `feeder` and `pool` under the dashboard until both end or a signal stops them.

    `on_end` puts the final phase and note into `progress` before the summary is printed.
    """
    orchestrator = Orchestrator(
        feeder, pool, progress, shutdown, grace_period=display.grace_period_s
    )
    dashboard = Dashboard(
        progress, terminal.console, plain=terminal.plain, status_every=display.status_every_s
    )
    live_file = LiveProgressFile(run, progress)

    def abort() -> None:
        dashboard.abort()
        flush_all()

    shutdown.set_abort(abort)
    dashboard.start()
    live_file.start()
    outcome: Outcome | None = None
    try:
        outcome = await orchestrator.run()
    finally:
        live_file.stop()
        if outcome is not None:
            on_end(outcome)
        dashboard.stop()
    return outcome


def end_state(outcome: Outcome, settled_phase: str) -> tuple[str, str | None]:
    """(phase shown at the end, note for the summary) of a run that ended as `outcome`."""
    if isinstance(outcome.error, FatalAPIError):
        return "stopped", "fix the problem above, then run the same command again to go on"
    if outcome.stopped or outcome.error is not None:
        return "stopped", RESUME_NOTE
    if outcome.labelling_ended == "budget":
        return settled_phase, BUDGET_NOTE
    return settled_phase, None


def exit_code(outcome: Outcome, run: RunDir) -> int:
    """0 done or stopped on request, 1 a fatal labelling error (said on stderr); a feeder's
    failure is raised (a UserError keeps its exit 2, anything else is a bug)."""
    if isinstance(outcome.error, FatalAPIError):
        print(f"autointerp: labelling stopped: {outcome.error}", file=sys.stderr)
        print(f"autointerp: progress is saved; see {run.log_path}", file=sys.stderr)
        return 1
    if outcome.error is not None:
        raise outcome.error
    return 0
