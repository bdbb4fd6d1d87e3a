"""What the daemon adds on top of the harvest engine and the labeller, measured end to end.

    PYTHONPATH=. python -m bench.daemon [--source py:tests.daemon.tiny_source:make] [--batches 40]

1. harvest overhead: the same batches through a bare `source.step` + `Harvester.update` loop, and
   through the daemon (`--labeller none`, checkpoints every 2 s), timed from the daemon's own
   state records (its start to the last batch);
2. time to first label: from the end of the last batch to the first result written, labelling
   through the real SDK against the loopback Messages API (`tests/interpret/fake_api.py`, fixed
   latency);
3. restart cost: from process start to the first batch after a resume (state records), i.e.
   imports + source load + checkpoint load, after a SIGKILL mid-harvest.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autointerp.files import read_json, read_jsonl
from autointerp.harvest import Harvester
from autointerp.schemas import InterpretationResult, RunState
from autointerp.sources.open import open_source
from autointerp.store import RunDir
from tests.interpret.fake_api import FakeMessagesServer

REPO = Path(__file__).resolve().parents[1]


def _daemon(source: str, data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "autointerp", "daemon", source, "--data-dir", str(data),
            "--plain", "--status-every", "600", *args]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def _run_dir(data: Path) -> RunDir:
    (only,) = [p for p in data.iterdir() if p.is_dir()]
    return RunDir(only)


def bare_harvest_seconds(source_spec: str, batches: int, batch_size: int, context: int) -> float:
    source = open_source(source_spec, device="cpu")
    h = Harvester(source.layout, source.vocab_size, 0.0, 20, 10, source.device, 0)
    it = source.batches(batch_size, context)
    t0 = time.perf_counter()
    for _ in range(batches):
        tokens = next(it)
        ci, probs = source.step(tokens)
        h.update(tokens, ci, probs)
    return time.perf_counter() - t0


def daemon_harvest_seconds(source: str, sizes: list[str], tmp: Path) -> float:
    data = tmp / "harvest"
    subprocess.run(_daemon(source, data, *sizes, "--labeller", "none", "--checkpoint-every", "2"),
                   env=_env(), check=True, capture_output=True, cwd=REPO)  # fmt: skip
    state = read_json(_run_dir(data).state_path, RunState)
    assert state.last_batch_at is not None
    return state.last_batch_at - _harvest_starts(_run_dir(data))[0]


def _harvest_starts(run: RunDir) -> list[float]:
    """When each start's harvest loop began (the log line `harvest: starting at batch`)."""
    starts = []
    for line in run.log_path.read_text().splitlines():
        if "harvest: starting at batch" in line:
            day, clock = line[:19], line[20:23]
            starts.append(time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(clock) / 1e3)
    return starts


def first_label_latency(source: str, sizes: list[str], tmp: Path, latency: float) -> float:
    data = tmp / "label"
    with FakeMessagesServer(latency=latency) as server:
        subprocess.run(
            _daemon(source, data, *sizes, "--labeller", "claude", "--base-url", server.base_url),
            env=_env(ANTHROPIC_API_KEY="bench-key"),
            check=True,
            capture_output=True,
            cwd=REPO,
        )
    run = _run_dir(data)
    state = read_json(run.state_path, RunState)
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    assert state.last_batch_at is not None
    return min(r.timestamp for r in results) - state.last_batch_at


def restart_seconds(source: str, sizes: list[str], tmp: Path, env: dict[str, str]) -> float:
    data = tmp / "restart"
    args = _daemon(source, data, *sizes, "--labeller", "none", "--checkpoint-every", "0.5")
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    while True:
        time.sleep(0.05)
        if data.exists() and any(data.iterdir()):
            run = _run_dir(data)
            if run.state_path.exists() and read_json(run.state_path, RunState).batches_done > 0:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    again = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    again.wait()
    resumed = read_json(run.state_path, RunState).starts[-1]
    assert resumed.batches_done > 0
    return _harvest_starts(run)[-1] - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="py:tests.daemon.tiny_source:make")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--context-length", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TINY_WIDE", "1")
    sizes = ["--n-batches", str(args.batches), "--batch-size", str(args.batch_size),
             "--context-length", str(args.context_length)]  # fmt: skip
    bare, daemon, first, restart = [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            bare.append(bare_harvest_seconds(args.source, args.batches, args.batch_size,
                                             args.context_length))  # fmt: skip
            daemon.append(daemon_harvest_seconds(args.source, sizes, tmp))
            first.append(first_label_latency(args.source, sizes, tmp, args.latency))
            restart.append(restart_seconds(args.source, sizes, tmp, _env()))
    med = statistics.median
    tokens = args.batches * args.batch_size * args.context_length
    print(f"source {args.source}, {args.batches} batches x {args.batch_size}x{args.context_length}"
          f" ({tokens:,} tokens), median of {args.repeat}")  # fmt: skip
    print(f"bare harvest loop          {med(bare):7.2f} s  ({tokens / med(bare):,.0f} tok/s)")
    print(f"daemon harvest phase       {med(daemon):7.2f} s  ({tokens / med(daemon):,.0f} tok/s)")
    print(f"last batch -> first label  {med(first):7.2f} s  (API latency {args.latency} s)")
    print(f"restart -> harvest resumes {med(restart):7.2f} s  (imports, source, checkpoint)")


if __name__ == "__main__":
    main()
