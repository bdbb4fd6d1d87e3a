"""The compact checkpoint format: every encoding round-trips bit for bit; old formats still load."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import msgspec
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autointerp.errors import UserError
from autointerp.files import write_json_atomic
from autointerp.harvest import Harvester, finalize, load_checkpoint, save_checkpoint
from autointerp.harvest.checkpoint import FORMAT, MANIFEST, CheckpointManifest, read_manifest
from autointerp.harvest.harvester import INT32_LIMIT
from autointerp.harvest.payload import dense_bound, live_view, state_sections, write_payload
from autointerp.harvest.pieces import (
    BITMAP,
    DENSE,
    SPARSE,
    Piece,
    decode_piece,
    encode_piece,
    narrowest,
    plan,
    tensor_bytes,
)
from tests.harvest.helpers import decode, harvest, make_stream
from tests.harvest.legacy_checkpoint import save_checkpoint_format_1
from tests.harvest.same_state import assert_same_state

LAYOUT = [("a", 5), ("b", 3)]
STREAM_ARGS = (11, 8, 7, 6, 2, 9, 0.0)


def _new(**kwargs: object) -> Harvester:
    return Harvester(LAYOUT, 7, 0.0, 3, 2, "cpu", 42, **kwargs)  # type: ignore[arg-type]


def _round_trip_piece(x: torch.Tensor, narrow: bool) -> tuple[int, torch.Tensor]:
    """Encode a 1-row piece of `x` (integer-typed) and decode it: (encoding, entries)."""
    piece = Piece(None, 0, 1, 0, x.numel(), upper=False)
    record, data = encode_piece(x.view(1, -1), piece, narrow)
    stream = io.BytesIO(record + b"".join(bytes(tensor_bytes(t)) for t in data))
    out = decode_piece(stream, x.numel(), x.dtype)
    assert stream.read() == b"", "the decoder read the whole piece and nothing more"
    return record[0], out


@pytest.mark.parametrize(
    ("density", "expected"), [(0.0, SPARSE), (0.01, SPARSE), (0.3, BITMAP), (1.0, DENSE)]
)
def test_each_encoding_round_trips_counts(density: float, expected: int) -> None:
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 300, (4096,), generator=g, dtype=torch.int32)
    counts[torch.rand(4096, generator=g) >= density] = 0
    encoding, out = _round_trip_piece(counts, narrow=True)
    assert encoding == expected
    assert torch.equal(out, counts)


@pytest.mark.parametrize(
    "values",
    [[0, 255], [-1, 5], [-129, 40_000], [0, INT32_LIMIT], [-(2**62), 2**62], [3, 2**40]],
)
def test_narrowed_values_come_back_exactly(values: list[int]) -> None:
    x = torch.zeros(1000, dtype=torch.int64)
    x[::7] = values[0]
    x[3::7] = values[1]
    _, out = _round_trip_piece(x, narrow=True)
    assert torch.equal(out, x)


@pytest.mark.parametrize(
    ("lo", "hi", "stored", "offset"),
    [
        (0, 255, torch.uint8, 0),
        (-1, 100, torch.uint8, -1),
        (-100, 100, torch.uint8, -100),
        (-200, 200, torch.int16, 0),
        (0, 60_000, torch.int16, 32_768),
        (10**6, 10**6 + 200, torch.uint8, 10**6),
        (0, 2**32 - 1, torch.int32, 2**31),
        (-(2**62), 2**62, torch.int64, 0),
    ],
)
def test_values_are_stored_in_the_narrowest_type_less_an_offset(
    lo: int, hi: int, stored: torch.dtype, offset: int
) -> None:
    x = torch.tensor([lo, hi, (lo + hi) // 2], dtype=torch.int64)
    assert narrowest(x) == (stored, offset)
    _, out = _round_trip_piece(x, narrow=True)
    assert torch.equal(out, x)


def test_sparse_values_are_narrowed_by_their_own_range() -> None:
    """Counts in [1150, 1200) among zeros: the zeros are not stored, so a byte holds the rest."""
    x = torch.zeros(5000, dtype=torch.int32)
    x[::100] = torch.arange(1150, 1200, dtype=torch.int32)
    piece = Piece(None, 0, 1, 0, x.numel(), upper=False)
    record, data = encode_piece(x.view(1, -1), piece, narrow=True)
    assert record[0] == SPARSE and data[1].dtype == torch.uint8
    _, out = _round_trip_piece(x, narrow=True)
    assert torch.equal(out, x)


def test_float_bits_come_back_exactly() -> None:
    """-0.0, NaN payloads, infinities and subnormals: compared as bits, not as numbers."""
    x = torch.zeros(64, dtype=torch.float64)
    x[1], x[2], x[3], x[4], x[5] = -0.0, float("inf"), float("-inf"), 5e-324, 0.1
    bits = x.view(torch.int64)
    bits[6] = 0x7FF8_0000_DEAD_BEEF  # a NaN with a payload
    for narrow in (False, True):
        _, out = _round_trip_piece(bits.clone(), narrow=narrow)
        assert torch.equal(out, bits)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["rows", "upper", "tiles"]),
    st.integers(1, 40),
    st.integers(1, 70),
    st.integers(1, 300),
)
def test_pieces_cover_every_stored_entry_once(kind: str, n: int, vocab: int, chunk: int) -> None:
    """The plan visits each entry the format stores exactly once: all of a table, the upper
    triangle of a square one, the vocabulary columns of tiles (not the padding)."""
    tile = max(1, min(16, vocab))
    shape = {"rows": [n, vocab], "upper": [n, n], "tiles": [-(-vocab // tile), n, tile]}[kind]
    seen = torch.zeros(shape, dtype=torch.int32)
    for piece in plan(kind, shape, vocab, chunk):
        assert piece.entries <= max(chunk, piece.c1 - piece.c0)
        block = piece.view(seen)
        block += piece.scatter(torch.ones(piece.entries, dtype=torch.int32))
    if kind == "upper":
        want = torch.ones(n, n, dtype=torch.int32).triu()
    elif kind == "tiles":
        want = torch.zeros(shape, dtype=torch.int32)
        for t in range(shape[0]):
            want[t, :, : min(tile, vocab - t * tile)] = 1
    else:
        want = torch.ones(shape, dtype=torch.int32)
    assert torch.equal(seen, want)


def test_checkpoint_round_trips_every_table_generator_and_examples(tmp_path: Path) -> None:
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:3], _new())
    save_checkpoint(tmp_path, h, {"batches_done": 3})
    assert read_manifest(tmp_path).format == FORMAT  # type: ignore[union-attr]
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None and loaded[1] == {"batches_done": 3}
    assert_same_state(loaded[0], h)
    assert int((h.examples.keys != torch.iinfo(torch.int64).max).sum()) > 0
    harvest(stream[3:], loaded[0])
    assert list(finalize(loaded[0], decode)) == list(finalize(harvest(stream, _new()), decode))


def test_int64_promoted_tables_round_trip(tmp_path: Path) -> None:
    """Past 2^31 tokens the count tables are int64; they load as int64, counts above 2^31
    included, and the pass continues exactly."""
    stream = make_stream(8, 9, 6, 3, 2, 7, 0.0, fire_rate=0.6)
    layout = [("a", 5), ("b", 4)]

    def fresh() -> Harvester:
        h = Harvester(layout, 6, 0.0, 2, 1, "cpu", 0)
        h.n_tokens = INT32_LIMIT - 20  # the second batch crosses 2^31 tokens
        return h

    h = harvest(stream[:2], fresh())
    assert h.input_co.dtype == h.cooc.dtype == torch.int64
    with torch.inference_mode():  # the promoted tables were made in the update's
        h.input_co[0, 0] += 2**40
        h.cooc[1, 2] += 2**33
    save_checkpoint(tmp_path, h, {"batches_done": 2})
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None
    assert loaded[0].input_co.dtype == loaded[0].cooc.dtype == torch.int64
    assert_same_state(loaded[0], h)
    harvest(stream[2:], loaded[0])
    harvest(stream[2:], h)
    assert_same_state(loaded[0], h)


def test_format_1_checkpoint_loads_and_continues(tmp_path: Path) -> None:
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:3], _new())
    save_checkpoint_format_1(tmp_path, h, {"batches_done": 3})
    assert read_manifest(tmp_path).format == 1  # type: ignore[union-attr]
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None and loaded[1] == {"batches_done": 3}
    assert_same_state(loaded[0], h)
    save_checkpoint(tmp_path, loaded[0], {"batches_done": 3})  # replaces it with format 2
    assert [p.suffix for p in tmp_path.iterdir() if p.name.startswith("state-")] == [".ckpt"]


def test_format_1_checkpoint_of_a_version_1_state_loads(tmp_path: Path) -> None:
    """The oldest checkpoints: format 1 manifest, state version 1 (one [C, V] output table)."""
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:3], _new(output_tile=3))
    old = h.state_dict()
    old["version"] = 1
    del old["output_tile"]
    old["tables"]["output_co"] = h.output_rows(0, h.n_components)
    del old["tables"]["output_tiles"]
    save_checkpoint_format_1(tmp_path, h, {"batches_done": 3}, state=old)
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None
    assert torch.equal(loaded[0].output_rows(0, 8), h.output_rows(0, 8))
    harvest(stream[3:], loaded[0])
    assert list(finalize(loaded[0], decode)) == list(finalize(harvest(stream, _new()), decode))


def test_undecodable_payload_with_a_matching_hash_is_reported(tmp_path: Path) -> None:
    """A payload that hashes right but does not decode (a bug, not the disk) is a clear error."""
    data = b"AICKPT\x00\x02" + (10).to_bytes(8, "little") + b"{not json}" + b"\x00" * 100
    (tmp_path / "state-000000001-deadbeef.ckpt").write_bytes(data)
    manifest = CheckpointManifest(
        format=FORMAT,
        payload="state-000000001-deadbeef.ckpt",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        n_tokens=1,
        n_batches=1,
        saved_at=time.time(),
        extra={},
    )
    write_json_atomic(tmp_path / MANIFEST, manifest)
    with pytest.raises(UserError, match="could not be read"):
        load_checkpoint(tmp_path, "cpu")


def test_counts_below_the_diagonal_are_refused_not_dropped() -> None:
    h = harvest(make_stream(*STREAM_ARGS)[:1], _new())
    h.cooc[5, 2] = 1  # the engine never writes there; the format does not store it
    with pytest.raises(RuntimeError, match="below its diagonal"):
        write_payload(live_view(h), io.BytesIO())


def test_dense_bound_holds_when_every_entry_is_nonzero(tmp_path: Path) -> None:
    h = harvest(make_stream(*STREAM_ARGS)[:2], _new())
    g = torch.Generator().manual_seed(1)
    for t in (h.input_co, h.cooc, h.firing_count, h.token_count):
        t.copy_(torch.randint(2**20, 2**30, t.shape, generator=g, dtype=t.dtype))
    h.cooc.triu_()
    path = save_checkpoint(tmp_path, h, {})
    sections = {k: (t.dtype, list(t.shape)) for k, t in state_sections(h).items()}
    assert path.stat().st_size <= dense_bound(sections, h.vocab_size)
    loaded = load_checkpoint(tmp_path, "cpu")
    assert loaded is not None
    assert_same_state(loaded[0], h)


def test_manifest_of_format_2_is_json_with_the_payload_size(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, _new(), {"x": 1})
    manifest = msgspec.json.decode((tmp_path / MANIFEST).read_bytes(), type=CheckpointManifest)
    assert manifest.format == 2 and manifest.bytes == path.stat().st_size
