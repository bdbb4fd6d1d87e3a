"""Benchmark the harvest engine against the slow reference, at shapes from real SPD runs.

    python -m bench.harvest                        # tiny, small and simplestories, one table
    python -m bench.harvest --shape simplestories  # 24 modules x 704 components, vocab 4019
    python -m bench.harvest --shape small --threads 1 --batch 8

Times `Harvester.update` against dense one-hot float64 accumulation (`tests/harvest/reference.py`)
and `finalize` against its per-component Python loop, checks that both give equal tables and
records, and prints the ratios and peak memory. Updates are timed in steady state: each side first
updates one untimed batch (page-faulting its tables, warming its kernels); each side's time is the
median over its timed batches, as this shared machine stalls a batch now and then. The reference
updates `--ref-batches` timed batches (the shape's default: fewer for larger shapes) and finalizes
`--ref-components` components, extrapolated to all; at the full shape it is too slow to do more.
Both finalizes run from a collected heap with the cyclic GC paused (as finalize pauses it) and
keep only the records that are compared, as a consumer writing records to disk would.

The engine does more than the reference in both phases: its update also samples activation
examples and its finalize also builds them (the reference's example sampler is a Python loop per
firing, far too slow at these shapes); the ratios include that extra work. `--negatives 20
--hard-negatives 10` (a new run's held-out windows for scoring) add the silent windows and the
hard negatives to the engine's update as well; with hard negatives the update figure is the
median of the batches that do not begin with a partner refresh (give `--batches 12` or more:
most of a short run's batches do).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import resource
import statistics
import time
from collections.abc import Callable

import msgspec
import torch

from autointerp.harvest import Harvester, accumulator_bytes, finalize
from autointerp.harvest.hard_negatives import refresh_due
from autointerp.schemas import ComponentData
from tests.harvest.helpers import assert_components_equal
from tests.harvest.reference import ReferenceAccumulator, reference_components

TOP_K = 20
EXAMPLES, WINDOW = 20, 15


@dataclasses.dataclass
class Shape:
    modules: int
    components: int
    vocab: int
    batch: int
    context: int
    batches: int
    ref_batches: int


SHAPES = {
    # Below any real run (SPEC: SimpleStories runs have 4k-17k components): where fixed
    # per-position costs weigh most against the reference's C-proportional work.
    "tiny": Shape(4, 256, vocab=4019, batch=2, context=512, batches=9, ref_batches=4),
    # The low end of real SimpleStories runs, CPU-sized.
    "small": Shape(6, 704, vocab=4019, batch=2, context=512, batches=7, ref_batches=3),
    # A large SimpleStories run.
    "simplestories": Shape(24, 704, vocab=4019, batch=4, context=512, batches=5, ref_batches=1),
}


@dataclasses.dataclass
class Result:
    shape: str
    components: int
    positions: int
    threads: int
    update: float
    ref_update: float
    finalize: float
    ref_finalize: float
    peak_rss_gib: float


def spd_like_batch(
    g: torch.Generator, s: Shape, rate: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CI like a real SPD run: most exactly 0, ~2% firing with heavy-tailed per-component rates,
    a fifth of firing values exactly 1.0, the rest log-uniform down to 3e-8."""
    c = rate.numel()
    tokens = torch.randint(0, s.vocab, (s.batch, s.context), generator=g)
    fires = torch.rand(s.batch, s.context, c, generator=g) < rate
    value = torch.exp(torch.empty(s.batch, s.context, c).uniform_(-17.3, 0.0, generator=g))
    ones = torch.rand(s.batch, s.context, c, generator=g) < 0.2
    ci = torch.where(fires, torch.where(ones, 1.0, value), 0.0)
    logits = torch.randn(s.batch, s.context, s.vocab, generator=g) * 2.5
    return tokens, ci, torch.softmax(logits, dim=-1)


def firing_rates(g: torch.Generator, c: int) -> torch.Tensor:
    """Per-component firing probability: log-normal, mean about 2%, a fifth of components dead."""
    rate = torch.exp(torch.randn(c, generator=g) * 1.5 - 5.0).clamp(max=0.5)
    rate[torch.rand(c, generator=g) < 0.2] = 0.0
    return rate


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def decode(token_id: int) -> str:
    return f"tok{token_id}"


def without_examples(record: ComponentData) -> ComponentData:
    """The reference builds no examples (see the module docstring): drop the engine's."""
    return msgspec.structs.replace(record, activation_examples=[])


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn` takes, from a collected heap, with the cyclic GC paused as finalize pauses it:
    otherwise the reference's time per component grows with the number of records it holds."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def run_shape(name: str, args: argparse.Namespace) -> Result:
    s = SHAPES[name]
    if args.batch:
        s = dataclasses.replace(s, batch=args.batch)
    n_batches = args.batches or s.batches
    layout = [(f"layers.{i}.mlp", s.components) for i in range(s.modules)]
    c = s.modules * s.components
    rate = firing_rates(torch.Generator().manual_seed(0), c)

    def batch(i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch i, regenerated on demand so that long runs do not hold every batch."""
        return spd_like_batch(torch.Generator().manual_seed(1000 + i), s, rate)

    def engine() -> Harvester:
        return Harvester(
            layout,
            s.vocab,
            0.0,
            EXAMPLES,
            WINDOW,
            args.device,
            0,
            negatives_per_component=args.negatives,
            hard_negatives_per_component=args.hard_negatives,
        )

    density = float((batch(0)[1] > 0).float().mean())
    held_out = {
        "negatives_per_component": args.negatives,
        "hard_negatives_per_component": args.hard_negatives,
    }
    tables = sum(accumulator_bytes(layout, s.vocab, EXAMPLES, WINDOW, **held_out).values())
    tables /= 2**30
    print(
        f"\n{name}: {s.modules} modules x {s.components} = {c} components, vocab {s.vocab}, "
        f"batch {s.batch}x{s.context}, firing density {density:.2%}, engine tables {tables:.2f} "
        f"GiB, threads {torch.get_num_threads()}, silent windows {args.negatives}, hard "
        f"negatives {args.hard_negatives} per component"
    )

    def update_time(acc: Harvester | ReferenceAccumulator, i: int) -> float:
        inputs = batch(i)
        return timed(lambda: acc.update(*inputs))

    h = engine()
    times = [update_time(h, i) for i in range(n_batches)]
    # Batch i starts with a partner refresh when refresh_due(i) (hard negatives only): a few a
    # pass, but most of a short bench's batches; the update figure leaves them out.
    steady = [t for i, t in enumerate(times) if i and not (args.hard_negatives and refresh_due(i))]
    update = statistics.median(steady or times[1:])
    print(
        f"  engine update: first batch {times[0]:.3f}s, then median {update:.3f}s per batch "
        f"(min {min(times[1:]):.3f}s, max {max(times[1:]):.3f}s); peak RSS {peak_rss_gib():.1f} GiB"
    )
    refreshes = [t for i, t in enumerate(times) if i and args.hard_negatives and refresh_due(i)]
    if refreshes:
        print(
            f"  of these, {len(refreshes)} batches began with a partner refresh (median "
            f"{statistics.median(refreshes):.3f}s; after batches 1, 2, 4, ..., 256, then every "
            f"256th); the median above is of the {len(steady)} others"
        )
    del h

    ref_batches = args.ref_batches or s.ref_batches
    n_ref = 1 + ref_batches
    ref = ReferenceAccumulator(c, s.vocab, 0.0)
    ref.update(*batch(0))
    ref_times = [update_time(ref, i) for i in range(1, n_ref)]
    ref_update = statistics.median(ref_times)
    print(f"  reference update: median {ref_update:.3f}s per batch of {len(ref_times)}")

    h = engine()
    for i in range(n_ref):
        h.update(*batch(i))
    assert torch.equal(h.input_co.double(), ref.input_co), "input token counts differ"
    assert torch.equal(h.cooc_rows(0, c).double(), ref.cooc), "co-occurrence counts differ"
    assert torch.equal(h.firing_count.double(), ref.firing), "firing counts differ"
    torch.testing.assert_close(h.output_rows(0, c), ref.output_co, rtol=1e-9, atol=1e-9)

    subset = range(0, c, max(1, c // args.ref_components))
    kept: dict[int, ComponentData] = {}

    def stream_records() -> None:
        for i, record in enumerate(finalize(h, decode, top_k=TOP_K)):
            if i in subset:
                kept[i] = without_examples(record)

    fin = timed(stream_records)
    want: list[ComponentData] = []
    ref_fin = timed(
        lambda: want.extend(reference_components(layout, ref, None, decode, TOP_K, only=subset))
    )
    ref_fin *= c / len(subset)
    assert_components_equal([kept[i] for i in subset], want)
    print(
        f"  finalize: engine {fin:.2f}s for all {c}; reference {ref_fin:.1f}s extrapolated from "
        f"{len(subset)} components. Tables and records equal (counts exact)."
    )
    return Result(
        name,
        c,
        s.batch * s.context,
        torch.get_num_threads(),
        update,
        ref_update,
        fin,
        ref_fin,
        peak_rss_gib(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--batches", type=int, help="engine batches, >= 2 (default: the shape's)")
    parser.add_argument("--batch", type=int, help="sequences per batch (default: the shape's)")
    parser.add_argument("--ref-batches", type=int, help="timed reference batches")
    parser.add_argument("--ref-components", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--negatives", type=int, default=0, help="silent windows per component")
    parser.add_argument(
        "--hard-negatives", type=int, default=0, help="hard negatives per component"
    )
    args = parser.parse_args()
    if args.batches is not None and args.batches < 2:
        parser.error("--batches must be >= 2: the first batch is a warm-up")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(SHAPES) if args.shape == "all" else [args.shape]
    results = [run_shape(name, args) for name in names]
    print(
        f"\n{'shape':<14}{'C':>7}{'P':>6}{'thr':>4}{'update':>9}{'ref':>9}{'ratio':>7}"
        f"{'finalize':>10}{'ref':>9}{'ratio':>7}{'peak RSS':>10}"
    )
    for r in results:
        print(
            f"{r.shape:<14}{r.components:>7}{r.positions:>6}{r.threads:>4}{r.update:>8.3f}s{r.ref_update:>8.2f}s"
            f"{r.ref_update / r.update:>6.1f}x{r.finalize:>9.2f}s{r.ref_finalize:>8.1f}s"
            f"{r.ref_finalize / r.finalize:>6.1f}x{r.peak_rss_gib:>8.1f}GiB"
        )
    print("targets: update >= 10x, finalize >= 20x (peak RSS is the process's, cumulative)")


if __name__ == "__main__":
    main()
