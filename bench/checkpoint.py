"""How long a checkpoint holds the harvest, how large it is, and how long it takes to load.

    PYTHONPATH=. python -m bench.checkpoint                       # CPU, SimpleStories shape
    PYTHONPATH=. python -m bench.checkpoint --device cuda --batches 8

At bench/harvest.py's "simplestories" shape (24 x 704 components, vocab 4019, its SPD-like CI),
after `--batches` batches, it compares:

- *format 1, synchronous*: `torch.save` of the state dict, as checkpoints were written before
  (the harvest waits for the whole write);
- *format 2, synchronous*: the compact payload written from the live tables (what the pass does
  when no snapshot fits in host memory);
- *format 2, background*: a host snapshot, then the write in a background thread while updates
  go on. The harvest is held for the snapshot; the updates that run beside the write are timed
  against updates without one, and their extra time counts as the checkpoint's cost too.

Each row reports the time the harvest was held, the extra update time beside a background write,
the write's own time, the bytes on disk and the load time, and checks that the loaded harvester
equals the saved state bit for bit. A last row fills every count with nonzero values (late in a
very long pass, when sparse encodings stop paying) for the format's worst-case size and speed.
Loads read a file just written, so from the page cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from autointerp.harvest import Harvester, accumulator_bytes, load_checkpoint, save_checkpoint
from autointerp.harvest.writer import CheckpointWriter
from bench.harvest import EXAMPLES, SHAPES, WINDOW, firing_rates, spd_like_batch
from tests.harvest.legacy_checkpoint import save_checkpoint_format_1
from tests.harvest.same_state import state_differences

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclasses.dataclass
class Row:
    name: str
    held_s: float
    slowdown_s: float
    write_s: float
    gib: float
    load_s: float
    equal: bool


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_update(h: Harvester, batch: Batch) -> float:
    t0 = time.perf_counter()
    h.update(*batch)
    sync(h.device)
    return time.perf_counter() - t0


def size_gib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name != "manifest.json") / 2**30


def load_and_compare(directory: Path, saved: Harvester) -> tuple[float, bool]:
    t0 = time.perf_counter()
    loaded = load_checkpoint(directory, saved.device)
    sync(saved.device)
    seconds = time.perf_counter() - t0
    assert loaded is not None
    differences = state_differences(loaded[0], saved)
    if differences:
        print("  DIFFERENT:", differences)
    return seconds, not differences


def synchronous(
    name: str, h: Harvester, root: Path, save: Callable[[Path, Harvester], object]
) -> Row:
    directory = root / name.replace(" ", "-").replace(",", "")
    t0 = time.perf_counter()
    save(directory, h)
    held = time.perf_counter() - t0
    load_s, equal = load_and_compare(directory, h)
    row = Row(name, held, 0.0, held, size_gib(directory), load_s, equal)
    shutil.rmtree(directory)
    return row


def background(h: Harvester, root: Path, batches: list[Batch], baseline: float) -> Row:
    """Snapshot, then keep updating while the write runs; the state at the snapshot is kept (a
    copy, untimed) to compare the loaded checkpoint with."""
    directory = root / "background"
    writer = CheckpointWriter.for_harvest(directory, h, background=True)
    assert writer.snapshot is not None, "no room for a snapshot in host memory"
    writer.snapshot.wait_ready()
    at_snapshot = Harvester.from_state_dict(h.state_dict(), h.device)
    held = writer.save(h, {"batches_done": h.n_batches})
    beside = []
    i = 0
    while writer.in_flight:
        beside.append(timed_update(h, batches[i % len(batches)]))
        i += 1
    (commit,) = writer.wait()
    writer.close()
    # What the updates beside the write took beyond what they take alone (the part of the last
    # one after the commit runs at full speed and adds nothing).
    slowdown = max(0.0, sum(beside) - baseline * len(beside))
    load_s, equal = load_and_compare(directory, at_snapshot)
    row = Row(
        "format 2, background", held, slowdown, commit.write_s, size_gib(directory), load_s, equal
    )
    print(f"  {len(beside)} updates beside the write: {', '.join(f'{t:.2f}' for t in beside)} s")
    shutil.rmtree(directory)
    return row


def fill_dense(h: Harvester, seed: int) -> None:
    """Every count nonzero (random 1..60000, so 2-byte values), every sum nonzero."""
    g = torch.Generator().manual_seed(seed)
    for t in (h.input_co, h.cooc, h.firing_count, h.token_count):
        t.copy_(torch.randint(1, 60_000, t.shape, generator=g, dtype=t.dtype))
    h.cooc.triu_()
    for t in (h.output_tiles, h.ci_sum, h.output_mass):
        t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype))
    h.output_tiles[-1, :, h.vocab_size - (h.output_tiles.shape[0] - 1) * h.output_tile :] = 0


def density(h: Harvester) -> str:
    c = h.n_components
    upper = c * (c + 1) // 2
    alive = float((h.firing_count > 0).double().mean())
    return (
        f"input_co nonzero {float((h.input_co != 0).double().mean()):.2%}, co-occurrence upper "
        f"triangle nonzero {int(torch.count_nonzero(h.cooc)) / upper:.2%}, alive components "
        f"{alive:.2%}, largest count {int(h.input_co.max())} / {int(h.cooc.max())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="simplestories", choices=sorted(SHAPES))
    parser.add_argument("--batches", type=int, default=5, help="batches before the checkpoint")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--skip-worst-case", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    s = SHAPES[args.shape]
    layout = [(f"layers.{i}.mlp", s.components) for i in range(s.modules)]
    c = s.modules * s.components
    rate = firing_rates(torch.Generator().manual_seed(0), c)
    batches = [spd_like_batch(torch.Generator().manual_seed(1000 + i), s, rate) for i in range(4)]
    h = Harvester(layout, s.vocab, 0.0, EXAMPLES, WINDOW, device, 0)
    for i in range(args.batches):
        h.update(*batches[i % len(batches)])
    sync(device)
    baseline = statistics.median(timed_update(h, b) for b in batches[:3])
    tables = sum(accumulator_bytes(layout, s.vocab, EXAMPLES, WINDOW, device=device).values())
    print(
        f"{args.shape}: {c} components, vocab {s.vocab}, {h.n_batches} batches of "
        f"{s.batch}x{s.context} seen, tables {tables / 2**30:.2f} GiB on {device}, "
        f"torch threads {torch.get_num_threads()}, update {baseline:.2f} s/batch\n  {density(h)}"
    )
    root = Path(tempfile.mkdtemp(prefix="bench-checkpoint-", dir=args.dir))
    try:
        rows = [
            synchronous(
                "format 1, synchronous",
                h,
                root,
                lambda d, h: save_checkpoint_format_1(d, h, {"batches_done": h.n_batches}),
            ),
            synchronous(
                "format 2, synchronous",
                h,
                root,
                lambda d, h: save_checkpoint(d, h, {"batches_done": h.n_batches}),
            ),
            background(h, root, batches, baseline),
        ]
        if not args.skip_worst_case:
            fill_dense(h, 0)
            rows.append(
                synchronous(
                    "format 2, synchronous, every count nonzero",
                    h,
                    root,
                    lambda d, h: save_checkpoint(d, h, {"batches_done": h.n_batches}),
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        "\n| checkpoint | harvest held | extra update time beside the write | write | on disk "
        "| load | loaded = saved |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r.name} | {r.held_s:.2f} s | {r.slowdown_s:.2f} s | {r.write_s:.2f} s | "
            f"{r.gib:.3f} GiB | {r.load_s:.2f} s | {'yes' if r.equal else 'NO'} |"
        )


if __name__ == "__main__":
    main()
