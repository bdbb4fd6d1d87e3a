"""The compact checkpoint payload (checkpoint format 2): a harvester's state as small pieces.

`torch.save` of the state wrote every table whole: at Pile shape 28.6 GiB, most of it zeros and
small counts, and it needed the whole state in host memory at once. This format streams:

    MAGIC (8 bytes) | header length (u64, little-endian) | header (JSON, `PayloadHeader`) | pieces

The header holds the scalars, the sampler's generator state and each section's name, dtype and
shape. Every section (a table or an example tensor) is cut by rows into pieces of at most
`chunk_entries` entries, in an order both sides derive from the header (`pieces.plan`), and only
the entries the engine uses are stored: the co-occurrence table's upper triangle (c <= d) and the
output-mass tiles' vocabulary columns (not the last tile's padding). Each piece is stored dense,
sparse or as a bitmap, with integers narrowed (`pieces.py`); nothing is rounded anywhere.
Writing moves one piece at a time to the CPU, so a write from device tables needs little host
memory; reading fills the harvester's tables piece by piece.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import torch

from autointerp.harvest.harvester import Harvester
from autointerp.harvest.pieces import (
    RECORD,
    PayloadError,
    Source,
    decode_piece,
    encode_piece,
    int_type,
    plan,
    read_exact,
    tensor_bytes,
)

MAGIC = b"AICKPT\x00\x02"
CHUNK_ENTRIES = 1 << 21
"""Entries per piece: the encoder's temporaries (a few bytes per entry) stay far below 32 MiB,
which glibc would hand back to the OS and page-fault afresh for every piece."""
_LENGTH = struct.Struct("<Q")
_DTYPES: dict[str, torch.dtype] = {
    "int32": torch.int32,
    "int64": torch.int64,
    "float32": torch.float32,
    "float64": torch.float64,
}
_KINDS = {"tables/cooc": "upper", "tables/output_tiles": "tiles"}


class SectionHeader(msgspec.Struct):
    name: str
    """`tables/<table>`, `examples/<tensor>`, `negatives/<tensor>` or
    `hard_negatives/<tensor>`."""
    dtype: str
    shape: list[int]
    kind: str
    """`rows` (every entry), `upper` (c <= d of a square table) or `tiles` (vocabulary columns
    of [tiles, C, tile])."""


class PayloadHeader(msgspec.Struct):
    state_version: int
    layout: list[tuple[str, int]]
    vocab_size: int
    ci_threshold: float
    examples_per_component: int
    context_tokens_per_side: int
    seed: int
    n_tokens: int
    n_batches: int
    block_positions: int
    output_tile: int
    generator_device: str
    generator_state: bytes
    chunk_entries: int
    byteorder: str
    sections: list[SectionHeader]
    negatives_per_component: int = 0
    negative_generator_state: bytes = b""
    hard_negatives_per_component: int = 0
    """0 in payloads written before hard negatives: they load with an empty sample."""
    hard_negative_generator_state: bytes = b""


@dataclass(frozen=True)
class StateView:
    """A harvester's state to be written: `state_meta()` and tensors by section name (on any
    device; read only while nothing updates them)."""

    meta: dict[str, Any]
    sections: dict[str, torch.Tensor]


def state_sections(harvester: Harvester) -> dict[str, torch.Tensor]:
    """The harvester's live tensors by section name."""
    tables = {f"tables/{k}": t for k, t in harvester.state_tables().items()}
    examples = {f"examples/{k}": t for k, t in harvester.examples.tensors().items()}
    negatives = {f"negatives/{k}": t for k, t in harvester.negatives.tensors().items()}
    hard = {f"hard_negatives/{k}": t for k, t in harvester.hard_negatives.tensors().items()}
    return (
        tables
        | examples
        | (negatives if harvester.negatives_per_component else {})
        | (hard if harvester.hard_negatives_per_component else {})
    )


def live_view(harvester: Harvester) -> StateView:
    """The harvester's state without copies (for a write while the harvester does not change)."""
    return StateView(harvester.state_meta(), state_sections(harvester))


class Sink(Protocol):
    def write(self, data: bytes | memoryview) -> int: ...


def header_for(view: StateView) -> PayloadHeader:
    meta = view.meta
    sections = [
        SectionHeader(name, str(t.dtype).removeprefix("torch."), list(t.shape), _kind(name))
        for name, t in view.sections.items()
    ]
    return PayloadHeader(
        state_version=int(meta["version"]),
        layout=[(str(m), int(n)) for m, n in meta["layout"]],
        vocab_size=int(meta["vocab_size"]),
        ci_threshold=float(meta["ci_threshold"]),
        examples_per_component=int(meta["examples_per_component"]),
        context_tokens_per_side=int(meta["context_tokens_per_side"]),
        seed=int(meta["seed"]),
        n_tokens=int(meta["n_tokens"]),
        n_batches=int(meta["n_batches"]),
        block_positions=int(meta["block_positions"]),
        output_tile=int(meta["output_tile"]),
        generator_device=str(meta["generator_device"]),
        generator_state=bytes(tensor_bytes(meta["generator_state"].contiguous())),
        chunk_entries=CHUNK_ENTRIES,
        byteorder=sys.byteorder,
        sections=sections,
        negatives_per_component=int(meta.get("negatives_per_component", 0)),
        negative_generator_state=_generator_bytes(meta, "negatives_per_component", "negative"),
        hard_negatives_per_component=int(meta.get("hard_negatives_per_component", 0)),
        hard_negative_generator_state=_generator_bytes(
            meta, "hard_negatives_per_component", "hard_negative"
        ),
    )


def _generator_bytes(meta: dict[str, Any], size: str, sampler: str) -> bytes:
    """A sampler's generator state, stored only where the sampler keeps anything."""
    if not int(meta.get(size, 0)):
        return b""
    return bytes(tensor_bytes(meta[f"{sampler}_generator_state"].contiguous()))


def _kind(name: str) -> str:
    return _KINDS.get(name, "rows")


def write_payload(view: StateView, sink: Sink) -> None:
    """Stream `view` into `sink`, piece by piece (each moved to the CPU only while encoded)."""
    header = header_for(view)
    encoded = msgspec.json.encode(header)
    sink.write(MAGIC + _LENGTH.pack(len(encoded)) + encoded)
    for section in header.sections:
        table = view.sections[section.name]
        _check_unstored(table, section, header.vocab_size)
        narrow = not table.dtype.is_floating_point
        for piece in plan(section.kind, section.shape, header.vocab_size, header.chunk_entries):
            x = piece.view(table).to("cpu").view(int_type(table.dtype))
            record, data = encode_piece(x, piece, narrow)
            sink.write(record)
            for t in data:
                sink.write(tensor_bytes(t))


def _check_unstored(table: torch.Tensor, section: SectionHeader, vocab_size: int) -> None:
    """The tiles' padding columns are not stored: they must be zero (the engine never writes
    them; the co-occurrence table's lower triangle is checked piece by piece)."""
    if section.kind == "tiles":
        n_tiles, _, tile = section.shape
        padding = table[n_tiles - 1, :, vocab_size - (n_tiles - 1) * tile :]
        if bool(padding.view(int_type(table.dtype)).ne(0).any()):
            raise RuntimeError("the output-mass table has mass beyond the vocabulary (a bug)")


# ---------------------------------------------------------------- reading


def read_header(source: Source) -> PayloadHeader:
    head = read_exact(source, len(MAGIC) + _LENGTH.size)
    if bytes(head[: len(MAGIC)]) != MAGIC:
        raise PayloadError("not a format 2 checkpoint payload (bad magic)")
    (length,) = _LENGTH.unpack(head[len(MAGIC) :])
    if length > 1 << 30:
        raise PayloadError(f"a header of {length} bytes")
    header = msgspec.json.decode(bytes(read_exact(source, length)), type=PayloadHeader)
    if header.byteorder != sys.byteorder:
        raise PayloadError(f"written on a {header.byteorder}-endian machine")
    return header


def read_payload(source: Source, device: torch.device | str) -> Harvester:
    """The harvester a payload describes, its tables filled piece by piece on `device`."""
    header = read_header(source)
    meta = msgspec.structs.asdict(header)
    meta["version"] = header.state_version
    meta["generator_state"] = torch.frombuffer(bytearray(header.generator_state), dtype=torch.uint8)
    for sampler in ("negative", "hard_negative"):
        saved = bytearray(meta[f"{sampler}_generator_state"])
        meta[f"{sampler}_generator_state"] = (
            torch.frombuffer(saved, dtype=torch.uint8) if saved else None
        )
    harvester = Harvester.from_state_meta(meta, device)
    examples = harvester.examples.tensors()
    negatives = harvester.negatives.tensors()
    hard = harvester.hard_negatives.tensors()
    for section in header.sections:
        dtype = _DTYPES.get(section.dtype)
        group, _, name = section.name.partition("/")
        if dtype is None or _kind(section.name) != section.kind:
            raise PayloadError(f"section {section.name}: {section.dtype} / {section.kind}")
        if group == "tables" and name in harvester.state_tables():
            table = harvester.table_for_loading(name, dtype)
        elif group == "examples" and name in examples:
            table = examples[name]
        elif group == "negatives" and name in negatives:
            table = negatives[name]
        elif group == "hard_negatives" and name in hard:
            table = hard[name]
        else:
            raise PayloadError(f"unknown section {section.name}")
        if list(table.shape) != section.shape or table.dtype != dtype:
            raise PayloadError(
                f"section {section.name} is {section.dtype} {section.shape}, the harvester's "
                f"is {table.dtype} {list(table.shape)}"
            )
        _fill(source, table, section, header)
    return harvester


def _fill(source: Source, table: torch.Tensor, section: SectionHeader, h: PayloadHeader) -> None:
    as_int = int_type(table.dtype)
    for piece in plan(section.kind, section.shape, h.vocab_size, h.chunk_entries):
        flat = decode_piece(source, piece.entries, as_int)
        piece.view(table).copy_(piece.scatter(flat).view(table.dtype))


def dense_bound(sections: dict[str, tuple[torch.dtype, list[int]]], vocab_size: int) -> int:
    """The most bytes a payload of these sections (dtype and shape by name) can take: every piece
    dense at full width (an encoding is only chosen when smaller), plus the headers."""
    total = len(MAGIC) + _LENGTH.size + 64 * 1024  # the JSON header (the generator state: 5 KiB)
    for name, (dtype, shape) in sections.items():
        pieces = list(plan(_kind(name), shape, vocab_size, CHUNK_ENTRIES))
        total += sum(p.entries for p in pieces) * dtype.itemsize + RECORD.size * len(pieces)
    return total
