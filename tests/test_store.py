"""The run directory store: durable appends, torn-line tolerance, atomic JSON, the run lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from autointerp.errors import RunLocked, UserError
from autointerp.files import JsonlAppender, read_json, read_jsonl, write_json_atomic
from autointerp.schemas import ActivationExample, HeldOutData, LabelFailure
from autointerp.store import HeldOutLookup, ResultHead, RunDir, RunLock


def _failure(i: int) -> LabelFailure:
    return LabelFailure(component_key=f"layers.0.mlp:{i}", reason="r", attempts=1)


def test_append_then_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path) as w:
        for i in range(5):
            w.append(_failure(i))
    records, report = read_jsonl(path, LabelFailure)
    assert records == [_failure(i) for i in range(5)]
    assert report.describe() is None


def test_torn_last_line_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path) as w:
        for i in range(3):
            w.append(_failure(i))
    with open(path, "ab") as f:
        f.write(b'{"component_key": "layers.0.mlp:3", "rea')
    records, report = read_jsonl(path, LabelFailure)
    assert records == [_failure(i) for i in range(3)]
    assert report.torn_tail
    assert "torn" in (report.describe() or "")


def test_append_after_torn_line_does_not_glue_records(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path) as w:
        w.append(_failure(0))
    with open(path, "ab") as f:
        f.write(b'{"component_key": "torn')
    with JsonlAppender(path) as w:
        w.append(_failure(1))
    records, report = read_jsonl(path, LabelFailure)
    assert records == [_failure(0), _failure(1)]
    assert report.describe() is None


def test_corrupt_middle_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    good = msgspec.json.encode(_failure(0)).decode()
    path.write_text(f"{good}\nnot json\n{good}\n")
    records, report = read_jsonl(path, ResultHead)  # only the key is decoded
    keys = {r.component_key for r in records}
    assert keys == {"layers.0.mlp:0"}
    assert report.bad_lines == [2]


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    records, report = read_jsonl(tmp_path / "absent.jsonl", LabelFailure)
    assert records == [] and report.records == 0


def test_atomic_json_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert read_json(path, dict) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_corrupt_json_is_a_user_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{")
    with pytest.raises(UserError, match=r"state\.json"):
        read_json(path, dict)


def test_lock_refuses_second_holder_with_pid(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from autointerp.store import ResultHead, RunDir, RunLock;"
            f"l = RunLock(RunDir(Path({str(run.root)!r}))).acquire();"
            "print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: a restart after kill -9 is never blocked.
    with RunLock(run):
        pass


def test_lock_on_an_unusable_directory_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match=r"cannot use .* as the run directory"):
        RunLock(RunDir(blocker / "run")).acquire()


def test_held_out_lookup_follows_a_growing_file_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    """The daemon scores components while finalize still appends their held-out lines."""
    path = tmp_path / "heldout.jsonl"

    def line(key: str) -> bytes:
        example = ActivationExample([" a", " b"], [0.0, 1.0], 1, 1.0, stream_pos=7)
        return msgspec.json.encode(HeldOutData(key, [example], [])) + b"\n"

    lookup = HeldOutLookup(path)
    assert lookup.get("m:0") is None  # no file yet
    path.write_bytes(line("m:0") + line("m:1"))
    got = lookup.get("m:1")
    assert got is not None and got.component_key == "m:1" and got.activating[0].stream_pos == 7
    third = line("m:2")
    with open(path, "ab") as f:
        f.write(third[:10])  # a torn append: not a line yet
    assert lookup.get("m:2") is None
    with open(path, "ab") as f:
        f.write(third[10:])
    assert lookup.get("m:2") is not None
    with open(path, "ab") as f:
        f.write(line("m:0").replace(b'"stream_pos":7', b'"stream_pos":9'))  # a repeat
    assert lookup.keys() == {"m:0", "m:1", "m:2"}
    first = lookup.get("m:0")
    assert first is not None and first.activating[0].stream_pos == 7  # the first line wins
