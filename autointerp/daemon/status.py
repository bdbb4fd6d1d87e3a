"""`autointerp status <run>`: a run's phase, progress, counts and cost, read from its files only.

Takes no lock and writes nothing (not even the log), so it is safe while a daemon works on the
run: it reads the lock file's pid and asks the kernel whether that process is alive.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import msgspec

from autointerp.daemon.config import HarvestConfig
from autointerp.daemon.run_state import RunState
from autointerp.errors import UserError
from autointerp.store import RunDir, data_dir_from, iter_jsonl, read_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", help="run directory, or a run id under --data-dir / $AUTOINTERP_DATA_DIR"
    )
    parser.add_argument("--data-dir", help="where run directories live")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


class _Component(msgspec.Struct):
    component_key: str
    firing_count: int = 0


class _Result(msgspec.Struct):
    component_key: str
    cost_usd: float = 0.0


class RunStatus(msgspec.Struct):
    run_dir: str
    phase: str
    daemon_pid: int | None
    n_batches: int
    batches_done: int
    n_tokens: int
    components_written: int
    components_total: int
    alive: int
    labelled: int
    failed: int
    remaining: int
    cost_usd: float
    resumed_from: list[int]
    last_checkpoint_at: float | None


def resolve_run(text: str, data_dir: str | None) -> RunDir:
    path = Path(text).expanduser()
    candidates = [path, data_dir_from(data_dir) / text]
    for candidate in candidates:
        if (candidate / "harvest").is_dir():
            return RunDir(candidate)
    raise UserError(
        f"no run directory at {text!r} (looked in {', '.join(str(c) for c in candidates)}); "
        "give the run directory or its run id"
    )


def running_pid(run: RunDir) -> int | None:
    """The pid recorded by the daemon holding the run lock, if that process is alive."""
    try:
        pid = int(run.lock_path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def collect(run: RunDir) -> RunStatus:
    state = read_json(run.state_path, RunState) if run.state_path.exists() else RunState()
    config = read_json(run.config_path, HarvestConfig) if run.config_path.exists() else None
    written = alive = 0
    alive_keys: set[str] = set()
    for c in iter_jsonl(run.components_path, _Component):
        written += 1
        if c.firing_count > 0:
            alive += 1
            alive_keys.add(c.component_key)
    labelled: set[str] = set()
    cost = 0.0
    for r in iter_jsonl(run.results_path, _Result):
        if r.component_key not in labelled:
            labelled.add(r.component_key)
            cost += r.cost_usd
    failed = {f.component_key for f in iter_jsonl(run.failures_path, _Component)} - labelled
    total = sum(c for _, c in config.layout) if config else state.n_components
    remaining = len(alive_keys - labelled)
    phase = state.phase
    if phase == "label" and remaining == 0 and not failed:
        phase = "done"  # labelled by `autointerp interpret`, or by a start that was then stopped
    return RunStatus(
        run_dir=str(run.root),
        phase=phase,
        daemon_pid=running_pid(run),
        n_batches=config.n_batches if config else state.n_batches,
        batches_done=state.batches_done,
        n_tokens=state.n_tokens,
        components_written=written,
        components_total=total,
        alive=alive,
        labelled=len(labelled),
        failed=len(failed),
        remaining=remaining,
        cost_usd=cost,
        resumed_from=[s.batches_done for s in state.starts],
        last_checkpoint_at=state.last_checkpoint_at,
    )


def describe(s: RunStatus) -> str:
    daemon = f"running (pid {s.daemon_pid})" if s.daemon_pid else "not running"
    lines = [
        f"run        {s.run_dir}",
        f"phase      {s.phase}  (daemon {daemon})",
        f"harvest    {s.batches_done}/{s.n_batches} batches checkpointed, {s.n_tokens:,} tokens",
        f"finalize   {s.components_written}/{s.components_total} components, {s.alive} alive",
        f"labelling  {s.labelled} labelled, {s.failed} failed, {s.remaining} remaining"
        + (" (of those finalized)" if s.phase in ("harvest", "finalize") else ""),
        f"cost       ${s.cost_usd:,.4f}",
        f"starts     {len(s.resumed_from)} (resumed at batch "
        + ", ".join(map(str, s.resumed_from))
        + ")",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # A running daemon may be mid-append: a partial last line is expected here, not a crash.
    logging.getLogger("autointerp.store").setLevel(logging.ERROR)
    status = collect(resolve_run(args.run, args.data_dir))
    if args.json:
        print(msgspec.json.encode(status).decode())
    else:
        print(describe(status))
    return 0
