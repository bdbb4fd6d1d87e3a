"""One piece of a checkpoint payload: which entries it holds, and their encodings.

A table is cut by rows into pieces (`plan`); each piece is stored as a 24-byte record (encoding,
stored type, count, offset) and its data, in whichever encoding is smallest:

- dense: every entry;
- sparse: the int32 indices of the nonzero entries, then their values;
- bitmap: one bit per entry (set where nonzero), then the nonzero values.

Integer values are stored less the record's offset, in the narrowest type that holds the range of
the stored values (counts after a few thousand tokens fit a byte; up to 65,535, two). Float
sections come as their bits (an integer view) and are never narrowed, so "nonzero" means nonzero
bits and -0.0 and NaN payloads come back exactly. Each encoding is a few vectorised passes over a
piece: no general-purpose compressor, which would turn a 30 GiB write into minutes of CPU.
"""

from __future__ import annotations

import ctypes
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

DENSE, SPARSE, BITMAP = 0, 1, 2
RECORD = struct.Struct("<BB6xQq")
"""Encoding, stored type, count, offset (a stored value v means v + offset)."""
STORED_TYPES = (torch.uint8, torch.int16, torch.int32, torch.int64)
"""Value types of stored integers, narrowest first (the index is the record's type code)."""
_BITS_MAGIC = sum(1 << (56 - 7 * i) for i in range(8))
"""Multiplying eight 0/1 bytes (one int64) by this puts byte i's bit at bit 56 + i, carry-free."""


class PayloadError(ValueError):
    """The payload is not a well-formed format 2 checkpoint."""


class Source(Protocol):
    def readinto(self, buffer: bytearray | memoryview) -> int: ...


@dataclass(frozen=True)
class Piece:
    """Rows [r0, r1) and columns [c0, c1) of a section seen as 2-D (of tile `tile` for tiles);
    `upper`: only the entries with column >= row."""

    tile: int | None
    r0: int
    r1: int
    c0: int
    c1: int
    upper: bool

    @property
    def entries(self) -> int:
        h, w = self.r1 - self.r0, self.c1 - self.c0
        return h * w - (h * (h - 1) // 2 if self.upper else 0)

    def view(self, table: torch.Tensor) -> torch.Tensor:
        if self.tile is not None:
            return table[self.tile, self.r0 : self.r1, self.c0 : self.c1]
        return as_2d(table)[self.r0 : self.r1, self.c0 : self.c1]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The stored entries of the piece's CPU view `x`, row by row, as one flat tensor (an
        upper piece's row i starts at column i: `c0` is `r0`)."""
        if not self.upper:
            return x.reshape(-1)
        return torch.cat([x[i, i:] for i in range(x.shape[0])])

    def scatter(self, flat: torch.Tensor) -> torch.Tensor:
        """The piece's [rows, columns] block from its stored entries (zeros elsewhere)."""
        h, w = self.r1 - self.r0, self.c1 - self.c0
        if not self.upper:
            return flat.view(h, w)
        block = flat.new_zeros(h, w)
        start = 0
        for i in range(h):
            block[i, i:] = flat[start : start + w - i]
            start += w - i
        return block


def as_2d(table: torch.Tensor) -> torch.Tensor:
    """A view of a contiguous section as [rows, columns] (1-D: one entry per row)."""
    return table.view(table.shape[0], math.prod(table.shape[1:]))


def plan(kind: str, shape: list[int], vocab_size: int, chunk_entries: int) -> Iterator[Piece]:
    """The pieces of a section, in file order."""
    if kind == "tiles":
        n_tiles, rows, tile = shape
        for t in range(n_tiles):
            width = min(tile, vocab_size - t * tile)
            step = max(1, chunk_entries // max(1, width))
            for r0 in range(0, rows, step):
                yield Piece(t, r0, min(rows, r0 + step), 0, width, upper=False)
    elif kind == "upper":
        n = shape[0]
        r0 = 0
        while r0 < n:
            step = max(1, min(n - r0, chunk_entries // (n - r0)))
            yield Piece(None, r0, r0 + step, r0, n, upper=True)
            r0 += step
    else:
        rows, cols = shape[0], math.prod(shape[1:])
        step = max(1, chunk_entries // max(1, cols))
        for r0 in range(0, rows, step):
            yield Piece(None, r0, min(rows, r0 + step), 0, cols, upper=False)


def int_type(dtype: torch.dtype) -> torch.dtype:
    """The integer type whose values are `dtype`'s bits."""
    return {4: torch.int32, 8: torch.int64}[dtype.itemsize]


def narrowest(values: torch.Tensor) -> tuple[torch.dtype, int]:
    """The narrowest stored type for integer `values`, and the offset to subtract first: counts
    in [0, 60000] fit int16 less 32768, positions in [10^6, 10^6 + 200] a byte less 10^6."""
    if values.numel() == 0:
        return torch.uint8, 0
    lo, hi = (int(v) for v in torch.aminmax(values))
    limits = torch.iinfo(values.dtype)
    for dtype in STORED_TYPES:
        info = torch.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype, 0
        offset = lo - info.min
        if hi - lo <= info.max - info.min and limits.min <= offset <= limits.max:
            return dtype, offset
    raise AssertionError("int64 holds every int64")


def _stored(values: torch.Tensor, dtype: torch.dtype, offset: int) -> torch.Tensor:
    """`values` less `offset`, as `dtype` (wrapping arithmetic: the result is in range)."""
    return (values - offset if offset else values).to(dtype).contiguous()


def _pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """bool [n] → uint8 [ceil(n/8)], entry i at bit i % 8 of byte i // 8."""
    pad = -mask.numel() % 8
    b = mask.view(torch.uint8)
    if pad:
        b = torch.cat([b, b.new_zeros(pad)])
    return ((b.view(torch.int64) * _BITS_MAGIC) >> 56).to(torch.uint8)


def _unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.uint8)
    return ((packed.unsqueeze(1) >> shifts) & 1).view(-1)[:n].bool()


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, without a copy (valid while `t` lives)."""
    if not (t.device.type == "cpu" and t.is_contiguous()):
        raise ValueError("tensor_bytes needs a contiguous CPU tensor")
    if t.nbytes == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_char * t.nbytes).from_address(t.data_ptr())).cast("B")


def encode_piece(x: torch.Tensor, piece: Piece, narrow: bool) -> tuple[bytes, list[torch.Tensor]]:
    """The record header and data tensors of one piece; `x` is its CPU view, integer-typed."""
    flat = piece.gather(x)
    n = flat.numel()
    nonzero = flat != 0
    nnz = int(torch.count_nonzero(nonzero))
    if piece.upper and int(torch.count_nonzero(x)) != nnz:
        raise RuntimeError("the co-occurrence table has counts below its diagonal (a bug)")
    stored, offset = narrowest(flat) if narrow else (flat.dtype, 0)
    width = stored.itemsize
    sizes = {DENSE: n * width, SPARSE: nnz * (4 + width), BITMAP: (n + 7) // 8 + nnz * width}
    encoding = min(sizes, key=sizes.__getitem__)
    if encoding == DENSE:
        data = [_stored(flat, stored, offset)]
    else:
        # Only the nonzero values are stored: their own range may be narrower.
        index = torch.nonzero(nonzero).squeeze(1) if encoding == SPARSE else nonzero
        values = flat[index]
        stored, offset = narrowest(values) if narrow else (stored, 0)
        head = index.to(torch.int32) if encoding == SPARSE else _pack_bits(nonzero)
        data = [head, _stored(values, stored, offset)]
    count = n if encoding == DENSE else nnz
    return RECORD.pack(encoding, STORED_TYPES.index(stored), count, offset), data


# ---------------------------------------------------------------- reading


def read_exact(source: Source, n_bytes: int) -> bytearray:
    buffer = bytearray(n_bytes)
    view = memoryview(buffer)
    got = 0
    while got < n_bytes:
        step = source.readinto(view[got:])
        if not step:
            raise PayloadError(f"the payload ends early ({got} of {n_bytes} bytes of a field)")
        got += step
    return buffer


def read_tensor(source: Source, count: int, dtype: torch.dtype) -> torch.Tensor:
    if count == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(read_exact(source, count * dtype.itemsize), dtype=dtype)


def decode_piece(source: Source, n: int, dtype: torch.dtype) -> torch.Tensor:
    """The `n` entries of the next piece as `dtype` (an integer type)."""
    encoding, code, count, offset = RECORD.unpack(read_exact(source, RECORD.size))
    if encoding not in (DENSE, SPARSE, BITMAP) or code >= len(STORED_TYPES):
        raise PayloadError(f"unknown piece encoding {encoding} / value type {code}")
    if count > n or (encoding == DENSE and count != n):
        raise PayloadError(f"a piece of {n} entries claims {count}")
    limits = torch.iinfo(dtype)
    if not limits.min <= offset <= limits.max:
        raise PayloadError(f"a piece's offset {offset} does not fit {dtype}")
    stored = STORED_TYPES[code]

    def values(count: int) -> torch.Tensor:
        wide = read_tensor(source, count, stored).to(dtype)
        return wide + offset if offset else wide

    if encoding == DENSE:
        return values(n)
    out = torch.zeros(n, dtype=dtype)
    if encoding == SPARSE:
        index = read_tensor(source, count, torch.int32).long()
        if count and (int(index.min()) < 0 or int(index.max()) >= n):
            raise PayloadError("a sparse piece has an index out of range")
        out[index] = values(count)
    else:
        mask = _unpack_bits(read_tensor(source, (n + 7) // 8, torch.uint8), n)
        if int(torch.count_nonzero(mask)) != count:
            raise PayloadError("a bitmap piece's bit count does not match its values")
        out[mask] = values(count)
    return out
