"""Benchmark the harvest engine against the slow reference, at shapes from real SPD runs.

    python -m bench.harvest --shape small          # CPU-sized
    python -m bench.harvest --shape simplestories  # 24 modules x 704 components, vocab 4019

Times `Harvester.update` against dense one-hot float64 accumulation and `finalize` against a
per-component Python loop, checks that both give the same tables and records, and prints ratios
and peak memory. The reference runs on the first `--ref-batches` batches (and its finalize on
`--ref-components` components, extrapolated to all) because at full shape it is too slow here.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time

import msgspec
import torch

from autointerp.harvest import Harvester, accumulator_bytes, finalize
from autointerp.schemas import ComponentData
from tests.harvest.helpers import assert_components_equal
from tests.harvest.reference import ReferenceAccumulator, reference_components


@dataclasses.dataclass
class Shape:
    modules: int
    components: int
    vocab: int
    batch: int
    context: int
    batches: int


SHAPES = {
    "small": Shape(modules=4, components=256, vocab=4019, batch=2, context=512, batches=4),
    "simplestories": Shape(modules=24, components=704, vocab=4019, batch=4, context=512, batches=5),
}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--batches", type=int, help="engine batches (default: the shape's)")
    parser.add_argument("--ref-batches", type=int, default=1)
    parser.add_argument("--ref-components", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 is steadier on a shared machine)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    s = SHAPES[args.shape]
    n_batches = args.batches or s.batches
    layout = [(f"layers.{i}.mlp", s.components) for i in range(s.modules)]
    c = s.modules * s.components
    rate = firing_rates(torch.Generator().manual_seed(0), c)

    def batch(i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch i, regenerated on demand so that long runs do not hold every batch."""
        return spd_like_batch(torch.Generator().manual_seed(1000 + i), s, rate)

    density = float((batch(0)[1] > 0).float().mean())
    print(
        f"shape {args.shape}: {s.modules} modules x {s.components} = {c} components, vocab "
        f"{s.vocab}, batch {s.batch}x{s.context}, {n_batches} batches; firing density "
        f"{density:.2%}; threads {torch.get_num_threads()}"
    )
    mem = accumulator_bytes(layout, s.vocab, 20, 15)
    print(f"accumulators: {sum(mem.values()) / 2**30:.2f} GiB " + str(mem))
    base_rss = peak_rss_gib()

    h = Harvester(layout, s.vocab, 0.0, 20, 15, args.device, 0)
    times = []
    for i in range(n_batches):
        tokens, ci, probs = batch(i)
        t0 = time.perf_counter()
        h.update(tokens, ci, probs)
        times.append(time.perf_counter() - t0)
    fast_update = sum(times) / len(times)
    if h.n_batches > args.ref_batches:
        h_check = Harvester(layout, s.vocab, 0.0, 20, 15, args.device, 0)
        for i in range(args.ref_batches):
            h_check.update(*batch(i))
    else:
        h_check = h
    t0 = time.perf_counter()
    records = list(finalize(h_check, decode, top_k=args.top_k))
    fast_finalize = time.perf_counter() - t0
    engine_rss = peak_rss_gib()

    ref = ReferenceAccumulator(c, s.vocab, 0.0)
    t0 = time.perf_counter()
    for i in range(args.ref_batches):
        ref.update(*batch(i))
    ref_update = (time.perf_counter() - t0) / args.ref_batches
    assert torch.equal(h_check.input_co.double(), ref.input_co), "input token counts differ"
    assert torch.equal(h_check.cooc_rows(0, c).double(), ref.cooc), "co-occurrence counts differ"
    assert torch.equal(h_check.firing_count.double(), ref.firing), "firing counts differ"
    torch.testing.assert_close(h_check.output_rows(0, c), ref.output_co, rtol=1e-9, atol=1e-9)
    subset = range(0, c, max(1, c // args.ref_components))
    t0 = time.perf_counter()
    want = reference_components(layout, ref, None, decode, args.top_k, only=subset)
    ref_finalize = (time.perf_counter() - t0) / len(subset) * c
    got = [without_examples(records[i]) for i in subset]
    assert_components_equal(got, want)

    steady = sum(times[1:]) / max(1, len(times) - 1)
    print(f"engine update per batch: first {times[0]:.3f}s, later batches {steady:.3f}s")
    print(f"{'':<10}{'engine':>12}{'reference':>12}{'speedup':>10}")
    print(
        f"{'update':<10}{fast_update:>11.3f}s{ref_update:>11.3f}s{ref_update / fast_update:>9.1f}x"
    )
    print(
        f"{'finalize':<10}{fast_finalize:>11.3f}s{ref_finalize:>11.3f}s"
        f"{ref_finalize / fast_finalize:>9.1f}x"
    )
    print(
        f"update: per batch, engine over {n_batches} batches, reference (dense one-hot float64) "
        f"over {args.ref_batches}; finalize: engine all {c} components, reference "
        f"{len(subset)} components extrapolated to {c}. Results equal (counts exact)."
    )
    print(
        f"peak RSS: start {base_rss:.2f} GiB, after engine {engine_rss:.2f} GiB, "
        f"after reference {peak_rss_gib():.2f} GiB"
    )


def without_examples(record: ComponentData) -> ComponentData:
    """The bench's reference has no examples (its sampler is Python per firing): drop ours."""
    return msgspec.structs.replace(record, activation_examples=[])


if __name__ == "__main__":
    main()
