"""How much device memory a harvest needs, checked before the pass starts.

Accumulators (C components, V vocabulary, k examples, W tokens per side, N tokens in the pass):

    input token counts   C·V·4   (int32; ·8 once N >= 2^31)
    output token mass    C·V'·8  (float64; V' = V rounded up to a whole tile: 64 columns on a
                                  CPU, 1,024 on a GPU)
    co-occurrence        C·C·4   (int32; ·8 once N >= 2^31)
    per component        C·16    (firing counts int64, CI sums float64)
    per token            V·16    (token counts int64, output mass float64)
    examples             C·k·(16 + (2W+1)·8)   (key, position, window token ids and CI)
    silent windows       C·n·(16 + (2W+1)·8)   (n: --negatives-per-component)
    hard negatives       C·h·(24 + (2W+1)·8)   (h: --hard-negatives-per-component; also the
                                                 partner that fired in each window)
    co-firing partners   C·8·8   (int64; only with hard negatives)

Per batch (P = batch·context positions) the inputs are P·(8 + 4C + 4V) bytes; the update works on
blocks of R positions (`sizing.py`: on a CPU R = max(64, 2^26 // C); on a GPU as many as half the
memory left beside the tables holds, at most P) and needs about R·(21·C + 8·V) bytes beyond them
(3 bytes of masks per entry, ~70 bytes of index lists per firing counted at 25% firing density,
far above SPD's 1–3%, and the float64 probabilities) plus one tile of probability sums per
component and three partial co-firing results (2^22 entries on a CPU, 2^26 on a GPU; the hard
negatives' partner refresh reads the co-occurrence table in chunks of half that, about 25
bytes an entry). Finalize
works on chunks of scores (2^21 on a CPU, 2^25 on a GPU; 64 bytes each in all); the larger
working set counts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from autointerp.errors import UserError
from autointerp.harvest.hard_negatives import PARTNERS
from autointerp.harvest.harvester import INT32_LIMIT
from autointerp.harvest.sizing import block_working_bytes, output_tile_for, sizing_for

GIB = 2**30
FINALIZE_BYTES_PER_ENTRY = 64


def state_shapes(
    layout: list[tuple[str, int]],
    vocab_size: int,
    examples_per_component: int,
    context_tokens_per_side: int,
    total_tokens: int | None = None,
    device: torch.device | str = "cpu",
    negatives_per_component: int = 0,
    hard_negatives_per_component: int = 0,
) -> dict[str, tuple[torch.dtype, list[int]]]:
    """Dtype and shape of each section of a harvester's state (`payload.state_sections`)."""
    c, v, k = sum(n for _, n in layout), vocab_size, examples_per_component
    count = torch.int64 if total_tokens is not None and total_tokens > INT32_LIMIT else torch.int32
    tile = max(1, min(output_tile_for(torch.device(device)), v))
    width = 2 * context_tokens_per_side + 1
    n = negatives_per_component
    negatives = {
        "negatives/keys": (torch.int64, [c, n]),
        "negatives/gpos": (torch.int64, [c, n]),
        "negatives/tokens": (torch.int32, [c, n, width]),
        "negatives/ci": (torch.float32, [c, n, width]),
    }
    h = hard_negatives_per_component
    hard = {
        "hard_negatives/keys": (torch.int64, [c, h]),
        "hard_negatives/gpos": (torch.int64, [c, h]),
        "hard_negatives/tokens": (torch.int32, [c, h, width]),
        "hard_negatives/ci": (torch.float32, [c, h, width]),
        "hard_negatives/partner": (torch.int64, [c, h]),
        "hard_negatives/partners": (torch.int64, [c, PARTNERS]),
    }
    samples = (negatives if n else {}) | (hard if h else {})
    return samples | {
        "tables/firing_count": (torch.int64, [c]),
        "tables/ci_sum": (torch.float64, [c]),
        "tables/token_count": (torch.int64, [v]),
        "tables/output_mass": (torch.float64, [v]),
        "tables/input_co": (count, [c, v]),
        "tables/output_tiles": (torch.float64, [-(-v // tile), c, tile]),
        "tables/cooc": (count, [c, c]),
        "examples/keys": (torch.int64, [c, k]),
        "examples/gpos": (torch.int64, [c, k]),
        "examples/tokens": (torch.int32, [c, k, width]),
        "examples/ci": (torch.float32, [c, k, width]),
    }


SECTION_GROUPS = {
    "tables/input_co": "input_token_counts",
    "tables/output_tiles": "output_token_mass",
    "tables/cooc": "cooccurrence",
    "tables/firing_count": "per_component",
    "tables/ci_sum": "per_component",
    "tables/token_count": "per_token",
    "tables/output_mass": "per_token",
}
"""How `check_fits` names the state's sections in its breakdown (the rest by their group)."""
GROUP_NAMES = {
    "examples": "examples",
    "negatives": "silent_windows",
    "hard_negatives": "hard_negatives",
}


def accumulator_bytes(
    layout: list[tuple[str, int]],
    vocab_size: int,
    examples_per_component: int,
    context_tokens_per_side: int,
    total_tokens: int | None = None,
    device: torch.device | str = "cpu",
    negatives_per_component: int = 0,
    hard_negatives_per_component: int = 0,
) -> dict[str, int]:
    """Bytes of each accumulator table on the harvest device (`examples_per_component`: the
    whole sample, shown and held out), summed from `state_shapes`."""
    shapes = state_shapes(
        layout,
        vocab_size,
        examples_per_component,
        context_tokens_per_side,
        total_tokens,
        device,
        negatives_per_component,
        hard_negatives_per_component,
    )
    out: dict[str, int] = {}
    for name, (dtype, shape) in shapes.items():
        group = SECTION_GROUPS.get(name) or GROUP_NAMES[name.partition("/")[0]]
        out[group] = out.get(group, 0) + math.prod(shape) * dtype.itemsize
    return out


def working_bytes(
    layout: list[tuple[str, int]],
    vocab_size: int,
    batch_size: int,
    context_length: int,
    device: torch.device | str = "cpu",
    tables_bytes: int = 0,
    total_bytes: int | None = None,
) -> dict[str, int]:
    """Bytes of one batch's inputs and of the update's (or finalize's) working set, with the
    device's sizes for a harvest whose tables take `tables_bytes` of the device's `total_bytes`
    (None: read from the device)."""
    c = sum(n for _, n in layout)
    v = vocab_size
    p = batch_size * context_length
    sizing = sizing_for(device, c, v, tables_bytes=tables_bytes, total_bytes=total_bytes)
    r = min(p, sizing.block_positions(c))
    tile = min(sizing.output_tile, v)
    update = block_working_bytes(r, c, v) + c * tile * 8 + 3 * sizing.chunk_entries * 8
    finalize = sizing.finalize_entries * FINALIZE_BYTES_PER_ENTRY
    return {"batch_inputs": p * (8 + 4 * c + 4 * v), "working_set": max(update, finalize)}


def free_bytes(device: torch.device | str) -> int:
    """Free memory on a CUDA device, or available RAM for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def check_fits(
    device: torch.device | str,
    layout: list[tuple[str, int]],
    vocab_size: int,
    examples_per_component: int,
    context_tokens_per_side: int,
    batch_size: int,
    context_length: int,
    total_tokens: int | None = None,
    available: int | None = None,
    negatives_per_component: int = 0,
    hard_negatives_per_component: int = 0,
) -> dict[str, int]:
    """Raise `UserError` unless accumulators + one batch's working set fit the free memory.

    Returns the breakdown. `available` overrides the measured free memory (tests, planning).
    """
    need = accumulator_bytes(
        layout,
        vocab_size,
        examples_per_component,
        context_tokens_per_side,
        total_tokens,
        device,
        negatives_per_component,
        hard_negatives_per_component,
    )
    tables = sum(need.values())
    need |= working_bytes(
        layout, vocab_size, batch_size, context_length, device, tables, total_bytes=available
    )
    total = sum(need.values())
    free = free_bytes(device) if available is None else available
    if total <= free:
        return need
    c = sum(n for _, n in layout)
    lines = "\n".join(f"  {name:<20} {_gib(n):>12}" for name, n in need.items())
    raise UserError(
        f"the harvest needs {_gib(total)} on {device} but only {_gib(free)} is free "
        f"({c} components, vocab {vocab_size}, batch {batch_size}x{context_length}):\n{lines}\n"
        "The C×C co-occurrence and C×V token tables dominate. Use a device with more free "
        "memory (free what else is using it), harvest a subset of modules, or lower "
        "--batch-size / examples per component / context tokens per side."
    )
