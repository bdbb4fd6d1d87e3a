"""`autointerp score <run>`: score a run's labels on its held-out windows.

Scorers: detection, fuzzing, intruder, simulation and output (`--scorers`, default all). The
answers come from Claude when `ANTHROPIC_API_KEY` is set, else from the offline simulator that
reads the label's words (`--answerer`), and the command says which. Resumable and exactly once per
component and scorer; the first Ctrl-C (or SIGTERM) lets components in flight finish and be
written, a second exits at once (130).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import TYPE_CHECKING

from autointerp.commands.arguments import (
    add_client_arguments,
    add_data_dir,
    client_from,
    parse_scorers,
)
from autointerp.errors import UserError
from autointerp.interpret.llm.defaults import API_KEY_ENV
from autointerp.interpret.llm.providers import check_budget, key_available, key_from_env, spec
from autointerp.store import RunDir, data_dir_from, resolve_run

if TYPE_CHECKING:  # the scorers import the client: only once the command runs
    from autointerp.interpret.scoring.asking import Answerer
    from autointerp.interpret.scoring.base import Scorer
    from autointerp.interpret.scoring.runner import ScoringRun

PROGRESS_EVERY_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory, or a run id under --data-dir")
    add_data_dir(parser)
    g = parser.add_argument_group("scoring")
    g.add_argument(
        "--scorers",
        default="all",
        help="comma-separated scorers: detection, fuzzing, intruder, simulation, output "
        "(default: all)",
    )
    g.add_argument(
        "--answerer",
        choices=["claude", "offline"],
        default=None,
        help=f"claude (the model of --provider; default when {API_KEY_ENV} is set, or "
        "OPENAI_API_KEY with --provider openai, or the base URL is a local server) or offline (a "
        "simulator that reads the label's words; no network)",
    )
    g.add_argument(
        "--read",
        choices=["sides", "label"],
        default="sides",
        help="sides: each scorer reads the side of the label it tests (what the component "
        "responds to, or what it does), the one-line label where there is none; label: every "
        "scorer reads the one-line label (default: %(default)s)",
    )
    add_client_arguments(g)


def run(args: argparse.Namespace) -> int:
    from autointerp.interpret.scoring.registry import SCORERS

    names = parse_scorers("--scorers", args.scorers)
    run_dir = resolve_run(args.run, data_dir_from(args.data_dir))
    if not run_dir.heldout_path.exists():
        raise UserError(
            f"{run_dir.heldout_path} is missing: this run was harvested without held-out windows "
            "(a harvest before scoring existed, or --heldout-per-component 0 and "
            "--negatives-per-component 0); harvest again with them to score its labels"
        )
    if not run_dir.results_path.exists():
        raise UserError(f"{run_dir.results_path} is missing: label the run first")
    answerer, why = _answerer(args)
    who = answerer.name if answerer.name == answerer.model else f"{answerer.name} {answerer.model}"
    print(f"autointerp: scoring with {who} ({why})", file=sys.stderr)
    scorers = [SCORERS[n]() for n in names]
    from autointerp.daemon.runtime import run_async

    return run_async(_score(run_dir, scorers, answerer, args))


def _answerer(args: argparse.Namespace) -> tuple[Answerer, str]:
    from autointerp.interpret.scoring.asking import ModelAnswerer, OfflineAnswerer

    usable, because = key_available(args.provider, args.base_url)
    name = args.answerer or ("claude" if usable else "offline")
    why = f"--answerer {name}" if args.answerer else because
    if name == "offline":
        if args.batch:
            raise UserError(
                f"--batch asks the API, but the answerer is offline ({why}): drop --batch, or "
                "score with --answerer claude"
            )
        return OfflineAnswerer(), why
    key_from_env(args.provider, args.base_url, instead="--answerer offline")
    options = client_from(args)
    check_budget(options, args.budget_usd)
    from autointerp.interpret.llm.options import build_client

    return ModelAnswerer(build_client(options), spec(options.provider).labeller), why


def _workers(answerer: Answerer, args: argparse.Namespace) -> int:
    """Components scored at once: `--max-concurrent`, or with `--batch` as many as the batch
    client keeps waiting (each waits hours for its batch, not seconds)."""
    from autointerp.interpret.scoring.asking import ModelAnswerer

    if args.batch and isinstance(answerer, ModelAnswerer):
        return answerer.client.max_concurrent
    return int(args.max_concurrent)


async def _score(
    run_dir: RunDir, scorers: list[Scorer], answerer: Answerer, args: argparse.Namespace
) -> int:
    from autointerp.interpret.llm.errors import FatalAPIError
    from autointerp.interpret.scoring.runner import ScoringRun
    from autointerp.store import RunLock, RunReader

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    with RunLock(run_dir):
        scoring = ScoringRun(
            run_dir,
            scorers,
            answerer,
            budget_usd=args.budget_usd,
            workers=_workers(answerer, args),
            read=args.read,
        )
        labels = RunReader(run_dir).labels()
        todo = await asyncio.to_thread(scoring.submit_backlog, labels)
        scoring.finish()
        print(f"autointerp: {todo} (component, scorer) pairs to score in {run_dir.root}",
              file=sys.stderr)  # fmt: skip
        main = asyncio.current_task()
        interrupts = 0

        def on_signal() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                print("stopping: finishing components in flight (again to abort)", file=sys.stderr)
                scoring.stop("stopped")
            elif main is not None:
                main.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

        async def report() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                print(_progress_line(scoring), file=sys.stderr, flush=True)

        reporter = asyncio.ensure_future(report())
        try:
            await scoring.run()
        except FatalAPIError as e:
            print(f"autointerp: scoring stopped: {e}", file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            print("autointerp: aborted; components in flight were not written", file=sys.stderr)
            return 130
        finally:
            reporter.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(sig)
            await answerer.aclose()
    print(_progress_line(scoring), file=sys.stderr)
    for summary in scoring.summaries():
        o = summary.overall
        interval = "" if o.ci_low is None else f" [{o.ci_low:.3f}, {o.ci_high:.3f}]"
        mean = "-" if o.mean is None else f"{o.mean:.3f}"
        print(f"{summary.scorer:<11} mean {mean}{interval} over {o.n} components"
              f" ({o.unscored} unscored), cost ${summary.cost_usd:.4f}")  # fmt: skip
    took = time.monotonic() - started
    reason = scoring.progress.stop_reason
    print(f"finished ({reason}) in {took:.0f}s: scores in {run_dir.scores_dir}")
    if reason == "budget":
        print("the budget is spent: raise --budget-usd and run the same command again to go on")
    return 0


def _progress_line(scoring: ScoringRun) -> str:
    p = scoring.progress
    means = ", ".join(f"{name} {m.mean:.3f}" for name, m in p.means().items() if m.mean is not None)
    return f"scored {p.scored}/{p.todo}, failed {p.failed}, cost ${p.cost_usd:.4f}" + (
        f", means: {means}" if means else ""
    )
