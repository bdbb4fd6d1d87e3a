"""Device-aware sizes: the CPU keeps its tuned constants, an accelerator gets whole-batch blocks,
wide tiles and big chunks within its memory, and no size changes a result."""

from __future__ import annotations

import torch

from autointerp.harvest import Harvester, check_fits, finalize
from autointerp.harvest.memory import accumulator_bytes, working_bytes
from autointerp.harvest.sizing import (
    ACCELERATOR_OUTPUT_TILE,
    CPU_SIZING,
    MIN_BLOCK_POSITIONS,
    WORKING_SHARE,
    accelerator_sizing,
    block_working_bytes,
    sizing_for,
)
from tests.harvest.helpers import assert_components_equal, decode, harvest, make_stream, reference

GIB = 2**30


def test_the_cpu_keeps_the_sizes_bench_harvest_was_tuned_with() -> None:
    assert sizing_for("cpu", 16_896, 4019) == CPU_SIZING
    assert (CPU_SIZING.block_entries, CPU_SIZING.chunk_entries) == (2**26, 2**22)
    assert (CPU_SIZING.output_tile, CPU_SIZING.finalize_entries) == (64, 2**21)
    assert CPU_SIZING.block_positions(16_896) == 2**26 // 16_896
    assert CPU_SIZING.block_positions(10**9) == MIN_BLOCK_POSITIONS


def test_an_accelerator_takes_whole_batches_within_its_memory() -> None:
    c, v = 16_896, 4019  # SimpleStories
    tables = sum(accumulator_bytes([("m", c)], v, 20, 10, device="cuda").values())
    h200 = sizing_for("cuda", c, v, tables_bytes=tables, total_bytes=141 * 10**9)
    assert h200.output_tile == ACCELERATOR_OUTPUT_TILE and h200.chunk_entries == 2**26
    positions = h200.block_positions(c)
    assert positions >= 256 * 512  # even SPD's 256x512 batches are one block
    assert block_working_bytes(positions, c, v) <= WORKING_SHARE * (141 * 10**9 - tables)
    small = accelerator_sizing(c, v, free_bytes=2 * GIB)
    assert block_working_bytes(small.block_positions(c), c, v) <= GIB
    assert accelerator_sizing(c, v, free_bytes=0).block_positions(c) == MIN_BLOCK_POSITIONS
    # The same device and run always get the same blocks (they decide the example keys).
    again = sizing_for("cuda", c, v, tables_bytes=tables, total_bytes=141 * 10**9)
    assert again == h200


def test_check_fits_counts_the_accelerator_sizes() -> None:
    c, v = 39_936, 50_277  # Pile-like
    layout = [("m", c)]
    gpu = accumulator_bytes(layout, v, 20, 10, device="cuda")
    cpu = accumulator_bytes(layout, v, 20, 10, device="cpu")
    assert gpu["output_token_mass"] == c * 51_200 * 8  # 1,024-column tiles
    assert cpu["output_token_mass"] == c * 50_304 * 8  # 64-column tiles
    tables = sum(gpu.values())
    work = working_bytes(layout, v, 16, 512, "cuda", tables, total_bytes=141 * 10**9)
    assert work["working_set"] >= block_working_bytes(16 * 512, c, v)  # the whole batch
    breakdown = check_fits("cuda", layout, v, 20, 10, 16, 512, available=141 * 10**9)
    assert sum(breakdown.values()) < 141 * 10**9


def test_the_engine_at_accelerator_sizes_equals_the_reference_on_the_cpu() -> None:
    """Whole-batch blocks, wide tiles and big chunks, run on the CPU against the reference."""
    layout = [("layers.0.mlp", 7), ("layers.1.mlp", 5)]
    vocab = 70
    stream = make_stream(3, 12, vocab, 3, 4, 9, 0.0, fire_rate=0.3)
    sizing = accelerator_sizing(12, vocab, free_bytes=GIB)
    h = Harvester(layout, vocab, 0.0, 3, 2, "cpu", 3, sizing=sizing)
    assert h.block_positions >= 36 and h.output_tile == vocab  # one block per batch, one tile
    got = list(finalize(harvest(stream, h), decode, top_k=5))
    want = reference(stream, layout, vocab, 0.0, 3, 2, 3, 5, block=h.block_positions)
    assert_components_equal(got, want)
    assert torch.equal(h.input_co.sum(), torch.tensor(sum(c.firing_count for c in got)))
