"""Checkpoints: exact resume in a new process, atomic replacement, corruption reported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest
import torch

from autointerp.errors import UserError
from autointerp.harvest import Harvester, finalize, load_checkpoint, save_checkpoint
from autointerp.schemas import ComponentData
from tests.harvest.helpers import decode, harvest, make_stream

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = [("a", 5), ("b", 3)]
STREAM_ARGS = (11, 8, 7, 6, 2, 9, 0.0)  # seed, C, V, batches, B, S, threshold


def _new() -> Harvester:
    return Harvester(LAYOUT, 7, 0.0, 3, 2, "cpu", 42)


def _run_child(script: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_resume_in_new_process_equals_one_pass(tmp_path: Path) -> None:
    stream = make_stream(*STREAM_ARGS)
    first = harvest(stream[:4], _new())
    save_checkpoint(tmp_path / "ckpt", first, {"batches_done": 4})
    out = tmp_path / "resumed.jsonl"
    child = _run_child(
        f"""
        import msgspec
        from autointerp.harvest import finalize, load_checkpoint
        from tests.harvest.helpers import decode, harvest, make_stream
        h, extra = load_checkpoint({str(tmp_path / "ckpt")!r}, "cpu")
        stream = make_stream(*{STREAM_ARGS!r})
        harvest(stream[extra["batches_done"]:], h)
        with open({str(out)!r}, "wb") as f:
            for record in finalize(h, decode, top_k=4):
                f.write(msgspec.json.encode(record) + b"\\n")
        """
    )
    assert child.returncode == 0, child.stderr
    resumed = [msgspec.json.decode(line, type=ComponentData) for line in out.read_bytes().split()]
    whole = list(finalize(harvest(stream, _new()), decode, top_k=4))
    assert resumed == whole
    assert sum(len(c.activation_examples) for c in whole) > 0


def test_state_dict_round_trip_is_exact_and_independent() -> None:
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:3], _new())
    copy = Harvester.from_state_dict(h.state_dict(), "cpu")
    harvest(stream[3:], h)
    assert copy.n_batches == 3 and h.n_batches == 6
    harvest(stream[3:], copy)
    assert list(finalize(copy, decode)) == list(finalize(h, decode))
    assert torch.equal(copy.cooc, h.cooc) and torch.equal(copy.output_tiles, h.output_tiles)


def test_version_1_state_with_one_output_table_loads_and_continues() -> None:
    """States written before the output-mass table was stored by vocabulary tile still resume."""
    stream = make_stream(*STREAM_ARGS)
    h = harvest(stream[:3], Harvester(LAYOUT, 7, 0.0, 3, 2, "cpu", 42, output_tile=3))
    old = h.state_dict()
    old["version"] = 1
    del old["output_tile"]
    old["tables"]["output_co"] = h.output_rows(0, h.n_components)
    del old["tables"]["output_tiles"]
    loaded = Harvester.from_state_dict(old, "cpu")
    assert loaded.output_tiles.shape == (1, 8, 7)  # the default tile, capped at the vocabulary
    assert torch.equal(loaded.output_rows(0, 8), h.output_rows(0, 8))
    harvest(stream[3:], loaded)
    assert list(finalize(loaded, decode)) == list(finalize(harvest(stream, _new()), decode))


def test_loading_a_state_holds_one_copy_of_each_table(tmp_path: Path) -> None:
    """Resuming must fit where the pass fitted: the saved tables are copied into the fresh ones,
    not allocated beside them. 256 MiB of co-occurrence; the child's peak RSS (Linux) grows by the
    fresh harvester's tables only (the state is loaded before the measurement starts)."""
    state = tmp_path / "state.pt"
    h = Harvester([("m", 8192)], 4, 0.0, 0, 0, "cpu", 0)
    h.cooc.fill_(1)
    torch.save(h.state_dict(), state)
    del h
    child = _run_child(
        f"""
        import torch
        from autointerp.harvest import Harvester

        def kib(field):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field))

        state = torch.load({str(state)!r}, weights_only=True)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # restart the peak (VmHWM) from the current RSS
        before = kib("VmRSS:")
        loaded = Harvester.from_state_dict(state, "cpu")
        grew = (kib("VmHWM:") - before) * 1024
        assert bool((loaded.cooc == 1).all())
        print(grew / (8192 * 8192 * 4))
        """
    )
    assert child.returncode == 0, child.stderr
    assert 0.5 < float(child.stdout) < 1.5  # one table's worth, not two


def test_crash_while_saving_keeps_previous_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    child = _run_child(
        f"""
        import os
        from autointerp.harvest import Harvester, save_checkpoint
        from autointerp.harvest import checkpoint
        from tests.harvest.helpers import harvest, make_stream
        stream = make_stream(*{STREAM_ARGS!r})
        h = harvest(stream[:2], Harvester({LAYOUT!r}, 7, 0.0, 3, 2, "cpu", 42))
        save_checkpoint({str(ckpt)!r}, h, {{"batches_done": 2}})
        harvest(stream[2:3], h)
        real_write = checkpoint._HashingWriter.write
        def dying_write(self, data):
            if self.size > 2000:
                os._exit(9)  # the process dies mid-write, like a kill -9 or power loss
            return real_write(self, data)
        checkpoint._HashingWriter.write = dying_write
        save_checkpoint({str(ckpt)!r}, h, {{"batches_done": 3}})
        """
    )
    assert child.returncode == 9, child.stderr
    assert any(p.name.endswith(".tmp") for p in ckpt.iterdir()), "the crash left a partial file"
    loaded = load_checkpoint(ckpt, "cpu")
    assert loaded is not None
    h, extra = loaded
    assert extra == {"batches_done": 2} and h.n_batches == 2
    want = harvest(make_stream(*STREAM_ARGS)[:2], _new())
    assert list(finalize(h, decode)) == list(finalize(want, decode))
    save_checkpoint(ckpt, h, {"batches_done": 2})
    assert not any(p.name.endswith(".tmp") for p in ckpt.iterdir()), "next save cleans up"


def _saved(tmp_path: Path) -> tuple[Path, Path]:
    ckpt = tmp_path / "ckpt"
    payload = save_checkpoint(ckpt, harvest(make_stream(*STREAM_ARGS)[:2], _new()), {"x": 1})
    return ckpt, payload


def test_flipped_byte_is_reported_not_loaded(tmp_path: Path) -> None:
    ckpt, payload = _saved(tmp_path)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        load_checkpoint(ckpt, "cpu")
    assert payload.exists(), "a corrupt checkpoint is reported, never deleted"


def test_truncated_payload_is_reported(tmp_path: Path) -> None:
    ckpt, payload = _saved(tmp_path)
    with open(payload, "r+b") as f:
        f.truncate(payload.stat().st_size // 3)
    with pytest.raises(UserError, match="bytes"):
        load_checkpoint(ckpt, "cpu")


def test_torn_manifest_is_reported(tmp_path: Path) -> None:
    ckpt, _ = _saved(tmp_path)
    manifest = ckpt / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:40])
    with pytest.raises(UserError, match=r"manifest\.json is corrupt"):
        load_checkpoint(ckpt, "cpu")


def test_no_checkpoint_is_none(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path / "missing", "cpu") is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".state-x.pt.tmp").write_bytes(b"partial")
    assert load_checkpoint(tmp_path / "empty", "cpu") is None
