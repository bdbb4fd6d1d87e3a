"""How large the engine's blocks, chunks and tiles are, chosen for the device.

The sizes trade memory for fewer, larger kernels. They never change a result (the tests run the
engine at several sizes against the reference), only its speed and working memory:
- on a CPU every fresh allocation page-faults and glibc hands allocations of 32 MiB or more back
  to the OS when freed, so temporaries stay small enough to be reused, and a 64-column
  vocabulary tile keeps a block's probabilities in a core's cache (bench/harvest.py's figures);
- on a GPU a kernel launch and a host round trip cost more than memory does: whole batches per
  block, 2^26-entry co-firing chunks and 1,024-column tiles, as large as the free memory left
  after the tables allows. Measured on an H200 by the issue that asked for this, these sizes
  alone took the SimpleStories update from 121k to 260k tokens/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_BLOCK_POSITIONS = 2**24 - 1
"""The int8 GEMM's inner size (positions of a block) must stay below 2^24."""
MIN_BLOCK_POSITIONS = 64


@dataclass(frozen=True)
class Sizing:
    block_entries: int
    """Entries of a block's [positions, components] firing masks: the tables are read and written
    once per block, so blocks are as large as the working memory allows."""
    chunk_entries: int
    """Entries of one int32 partial co-firing result inside a block (float64 temporaries take
    half as many)."""
    output_tile: int
    """Vocabulary columns per tile of the output-mass table ([tiles, C, tile])."""
    finalize_entries: int
    """Entries of one [components, vocab or components] float64 score table in finalize."""

    def block_positions(self, n_components: int) -> int:
        """Positions per block for `n_components` components."""
        per = self.block_entries // max(1, n_components)
        return min(MAX_BLOCK_POSITIONS, max(MIN_BLOCK_POSITIONS, per))


CPU_SIZING = Sizing(
    block_entries=2**26, chunk_entries=2**22, output_tile=64, finalize_entries=2**21
)
"""Tuned on a 2-core CPU (bench/harvest.py): temporaries below 32 MiB, cache-sized tiles."""

ACCELERATOR_CHUNK_ENTRIES = 2**26
ACCELERATOR_OUTPUT_TILE = 1024
ACCELERATOR_FINALIZE_ENTRIES = 2**25
WORKING_SHARE = 0.5
"""At most this share of the memory free after the tables goes to one block's working set."""
BYTES_PER_BLOCK_ENTRY = 21
"""Working bytes per (position, component) of a block; plus 8 per (position, token)."""


def block_working_bytes(positions: int, n_components: int, vocab: int) -> int:
    """One block's temporaries: masks, firing lists, float64 tiles (see `memory.py`)."""
    return positions * (n_components * BYTES_PER_BLOCK_ENTRY + vocab * 8)


def accelerator_sizing(n_components: int, vocab: int, free_bytes: int) -> Sizing:
    """Blocks as large as `WORKING_SHARE` of `free_bytes` holds (never fewer than
    `MIN_BLOCK_POSITIONS` positions); a batch smaller than that is one block."""
    per_position = block_working_bytes(1, n_components, vocab)
    fit = int(free_bytes * WORKING_SHARE) // max(1, per_position)
    block = max(MIN_BLOCK_POSITIONS, min(fit, MAX_BLOCK_POSITIONS))
    return Sizing(
        block_entries=block * max(1, n_components),
        chunk_entries=ACCELERATOR_CHUNK_ENTRIES,
        output_tile=ACCELERATOR_OUTPUT_TILE,
        finalize_entries=ACCELERATOR_FINALIZE_ENTRIES,
    )


def output_tile_for(device: torch.device | str) -> int:
    return CPU_SIZING.output_tile if torch.device(device).type == "cpu" else ACCELERATOR_OUTPUT_TILE


def sizing_for(
    device: torch.device | str,
    n_components: int,
    vocab: int,
    *,
    tables_bytes: int = 0,
    total_bytes: int | None = None,
) -> Sizing:
    """The sizes for `device`, whose `total_bytes` of memory (on CUDA read from the device) hold
    `tables_bytes` of accumulators. Taken from the total, not from what happens to be free, so
    that the same run on the same kind of device always gets the same blocks (the block size
    decides which firing draws which example key)."""
    device = torch.device(device)
    if device.type == "cpu":
        return CPU_SIZING
    if total_bytes is None:
        cuda = device.type == "cuda"
        total_bytes = torch.cuda.get_device_properties(device).total_memory if cuda else 2**34
    return accelerator_sizing(n_components, vocab, max(0, total_bytes - tables_bytes))
