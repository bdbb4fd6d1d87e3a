"""The harvest on a GPU, at SimpleStories and Pile shapes, on the synthetic SPD-shaped source.

    PYTHONPATH=. python -m bench.gpu                                 # both shapes, on cuda
    PYTHONPATH=. python -m bench.gpu --shapes simplestories --batches 20
    PYTHONPATH=. python -m bench.gpu --device cpu --shapes tiny      # a smoke run without a GPU

Per shape (the source `synthetic:<shape>`: a Llama-like model whose q/k/v/o/up/down maps carry
gated rank-one components, made at run time, no downloads):
1. `update` alone: tokens/s over `--batches` timed batches (after `--warmup`), each timed with a
   device synchronisation; the model's forward and CI (`source.step`) timed the same way; the
   ratio update ÷ forward; peak device memory.
2. Where one update goes: a second pass over a few batches with the engine's stage timer on (it
   synchronises at every stage boundary, so it is kept apart from the throughput figure).
3. `finalize` of everything, and one checkpoint as a pass takes it (`CheckpointWriter`): how long
   it holds the harvest (on CUDA a snapshot to pinned memory), and how long the write then runs.
4. The whole daemon (`autointerp daemon synthetic:<shape> --labeller offline`) in a subprocess:
   harvest tokens/s from its first batch to its last (its state and log), and the checkpoint
   durations it logged.

With `--profile DIR`, one more update per shape runs under torch's profiler and its table of
operators and kernels by time goes to `DIR/<shape>.txt`; on CUDA another runs in torch's sync
debug mode, and the lines of our code where the host waited for the GPU are listed after it.

Prints a markdown table; figures are for the device it ran on (named in the first line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from autointerp.harvest import Harvester, finalize
from autointerp.harvest.stages import StageTimer
from autointerp.harvest.writer import CheckpointWriter
from autointerp.sources.open import open_source

REPO = Path(__file__).resolve().parents[1]
SHAPES = ("simplestories", "pile")
CHECKPOINT_LINE = re.compile(r"checkpoint at batch (\d+) \((\d+\.\d+)s\)")
HARVEST_START = "harvest: starting at batch"


@dataclass
class Row:
    shape: str
    components: int
    vocab: int
    batch: str
    update_tokens_per_s: float
    forward_tokens_per_s: float
    update_over_forward: float
    peak_gib: float
    finalize_s: float
    checkpoint_held_s: float
    checkpoint_write_s: float
    checkpoint_gib: float
    stages: dict[str, float] = field(default_factory=dict)
    daemon_tokens_per_s: float | None = None
    daemon_checkpoints_s: list[float] = field(default_factory=list)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Any, *args: Any) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn(*args)
    sync(device)
    return out, time.perf_counter() - t0


def measure_engine(shape: str, device: torch.device, args: argparse.Namespace) -> Row:
    source = open_source(f"synthetic:{shape}", device=str(device))
    batch = args.batch_size or source.harvest_defaults["batch_size"]
    context = args.context_length or source.harvest_defaults["context_length"]
    layout, vocab = source.layout, source.vocab_size
    h = Harvester(layout, vocab, 0.0, 20, 10, device, 0)
    batches = source.batches(batch, context)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    forward: list[float] = []
    update: list[float] = []
    for i in range(args.warmup + args.batches):
        tokens = next(batches)
        (ci, probs), f_s = timed(device, source.step, tokens)
        _, u_s = timed(device, h.update, tokens, ci, probs)
        if i >= args.warmup:
            forward.append(f_s)
            update.append(u_s)
        del ci, probs
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    h.timer = StageTimer(device)
    for _ in range(args.stage_batches):
        tokens = next(batches)
        ci, probs = source.step(tokens)
        h.update(tokens, ci, probs)
    per_batch = {k: v / args.stage_batches for k, v in h.timer.seconds.items()}
    h.timer = None
    if args.profile:
        try:  # a profile that fails must not cost the shape's figures
            profile_update(h, source, next(batches), device, Path(args.profile) / f"{shape}.txt")
        except Exception as e:
            print(f"profile of one update failed: {e!r}", flush=True)
    records, finalize_s = timed(device, lambda: sum(1 for _ in finalize(h, source.decode)))
    assert records == h.n_components
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        writer = CheckpointWriter.for_harvest(Path(d), h)
        writer.save(h, {"batches_done": 0})  # the first one also waits for the buffers
        writer.wait()
        held = writer.save(h, {"batches_done": 1})
        (commit,) = writer.wait()
        writer.close()
        size = sum(p.stat().st_size for p in Path(d).iterdir()) / 2**30
    tokens_per_batch = batch * context
    med_u = sorted(update)[len(update) // 2]
    med_f = sorted(forward)[len(forward) // 2]
    return Row(
        shape=shape,
        components=h.n_components,
        vocab=vocab,
        batch=f"{batch}×{context}",
        update_tokens_per_s=tokens_per_batch / med_u,
        forward_tokens_per_s=tokens_per_batch / med_f,
        update_over_forward=med_u / med_f,
        peak_gib=peak,
        finalize_s=finalize_s,
        checkpoint_held_s=held,
        checkpoint_write_s=commit.write_s,
        checkpoint_gib=size,
        stages=per_batch,
    )


def profile_update(
    h: Harvester, source: Any, tokens: torch.Tensor, device: torch.device, out: Path
) -> None:
    """One update under torch's profiler: the operators (and on CUDA the kernels) that take
    its time, as a table in `out`, so that one run on a lent GPU says where to work next."""
    from torch.profiler import ProfilerActivity, profile

    ci, probs = source.step(tokens)
    sync(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        h.update(tokens, ci, probs)
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    text = prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=60)
    if device.type == "cuda":
        text += "\n" + host_syncs(h, source, tokens, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"profile of one update: {out}", flush=True)


def host_syncs(h: Harvester, source: Any, tokens: torch.Tensor, device: torch.device) -> str:
    """Where one update waits for the GPU (torch's sync debug mode), by line of our code."""
    ci, probs = source.step(tokens)
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            h.update(tokens, ci, probs)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    where = Counter(
        f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)
    )
    lines = [f"host synchronisations in one update: {sum(where.values())}"]
    lines += [f"  {n:5d}  {place}" for place, n in where.most_common()]
    return "\n".join(lines) + "\n"


def measure_daemon(row: Row, device: torch.device, args: argparse.Namespace) -> None:
    """The whole daemon on the same source: harvest tokens/s and the checkpoints it logged."""
    batch, context = (int(x) for x in row.batch.split("×"))
    with tempfile.TemporaryDirectory(dir=args.tmp) as data:
        command = [
            sys.executable, "-m", "autointerp", "daemon", f"synthetic:{row.shape}",
            "--labeller", "offline", "--plain", "--status-every", "600", "--data-dir", data,
            "--device", str(device), "--n-batches", str(args.daemon_batches),
            "--batch-size", str(batch), "--context-length", str(context),
            "--checkpoint-every", str(args.checkpoint_every),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True)
        (run,) = [p for p in Path(data).iterdir() if p.is_dir()]
        state = json.loads((run / "harvest" / "state.json").read_text())
        log = (run / "autointerp.log").read_text()
    started = next(line for line in log.splitlines() if HARVEST_START in line)
    t0 = time.mktime(time.strptime(started[:19], "%Y-%m-%d %H:%M:%S")) + int(started[20:23]) / 1e3
    seconds = state["last_batch_at"] - t0
    row.daemon_tokens_per_s = args.daemon_batches * batch * context / seconds
    row.daemon_checkpoints_s = [float(s) for _, s in CHECKPOINT_LINE.findall(log)]


def table(rows: list[Row], device: str) -> str:
    lines = [
        f"device: {device}",
        "",
        "| shape | components | vocab | batch | update tok/s | update ÷ forward | peak GiB "
        "| finalize | checkpoint: harvest held, write | daemon tok/s | daemon checkpoints held |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        daemon = f"{r.daemon_tokens_per_s:,.0f}" if r.daemon_tokens_per_s else "-"
        ckpts = ", ".join(f"{s:.1f} s" for s in r.daemon_checkpoints_s) or "-"
        lines.append(
            f"| {r.shape} | {r.components:,} | {r.vocab:,} | {r.batch} "
            f"| {r.update_tokens_per_s:,.0f} | {r.update_over_forward:.2f}× | {r.peak_gib:.1f} "
            f"| {r.finalize_s:.2f} s | {r.checkpoint_held_s:.2f} s, {r.checkpoint_write_s:.2f} s "
            f"({r.checkpoint_gib:.2f} GiB) "
            f"| {daemon} | {ckpts} |"
        )
    lines.append("")
    for r in rows:
        total = sum(r.stages.values())
        parts = ", ".join(
            f"{k} {v * 1e3:.1f} ms" for k, v in sorted(r.stages.items(), key=lambda kv: -kv[1])
        )
        lines.append(f"- {r.shape}: one update with stage timing {total * 1e3:.1f} ms: {parts}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, default=10, help="timed update batches")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--stage-batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="default: the source's suggestion")
    parser.add_argument("--context-length", type=int, help="default: the source's suggestion")
    parser.add_argument("--daemon-batches", type=int, default=40, help="0: skip the daemon run")
    parser.add_argument("--checkpoint-every", type=float, default=60.0)
    parser.add_argument("--tmp", default=None, help="where checkpoints are written")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--profile", help="write a profile of one update per shape here")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows = []
    for shape in args.shapes:
        row = measure_engine(shape, device, args)
        if args.daemon_batches:
            measure_daemon(row, device, args)
        print(f"{shape}: {row.update_tokens_per_s:,.0f} update tok/s", flush=True)
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(table(rows, f"{name}, torch {torch.__version__}"))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
