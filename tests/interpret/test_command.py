"""`autointerp interpret <run>` as a real subprocess: resume, lock, user errors, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autointerp.files import read_jsonl
from autointerp.schemas import InterpretationResult
from autointerp.store import RunLock
from tests.interpret.fake_api import FakeMessagesServer, Fault
from tests.interpret.runs import components, make_run

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-ant-cli-test-key-0f9e"


def interpret(
    *args: str, key: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "AUTOINTERP_"))}
    env["PYTHONPATH"] = str(ROOT)
    if key is not None:
        env["ANTHROPIC_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "tests.interpret.interpret_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_offline_labels_every_alive_component_by_run_id(tmp_path: Path) -> None:
    comps = components(12, dead_every=4)
    run = make_run(tmp_path / "data" / "run42", comps)
    done = interpret("run42", "--data-dir", str(tmp_path / "data"), "--labeller", "offline")
    assert done.returncode == 0, done.stderr
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    assert len(results) == 9
    assert all(r.labeller == "offline" and r.model == "offline" and r.label for r in results)
    assert "labelled 9/12" in done.stderr
    again = interpret(str(run.root), "--labeller", "offline")
    assert again.returncode == 0
    assert len(read_jsonl(run.results_path, InterpretationResult)[0]) == 9


def test_second_process_on_the_same_run_is_refused_with_the_pid(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", components(3))
    with RunLock(run):
        refused = interpret(str(run.root), "--labeller", "offline")
    assert refused.returncode == 2
    assert f"pid {os.getpid()}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not run.results_path.exists()


def test_user_mistakes_are_one_clear_message(tmp_path: Path) -> None:
    missing = interpret(str(tmp_path / "nope"), "--labeller", "offline")
    assert missing.returncode == 2 and "no run found" in missing.stderr
    unfinished = make_run(tmp_path / "half", components(3), complete=False)
    half = interpret(str(unfinished.root), "--labeller", "offline")
    assert half.returncode == 2 and "not complete" in half.stderr
    done = make_run(tmp_path / "done", components(3))
    no_key = interpret(str(done.root))
    assert no_key.returncode == 2
    assert "ANTHROPIC_API_KEY" in no_key.stderr and "--labeller offline" in no_key.stderr
    bad = interpret(str(done.root), "--max-concurrent", "0")
    assert bad.returncode == 2 and "at least 1" in bad.stderr
    unpriced = interpret(str(done.root), "--model", "claude-x-1", "--budget-usd", "5", key="k")
    assert unpriced.returncode == 2 and "price is not in the table" in unpriced.stderr
    for p in (missing, half, no_key, bad, unpriced):
        assert "Traceback" not in p.stderr


def test_claude_run_records_cost_and_never_writes_the_key(tmp_path: Path) -> None:
    comps = components(10)
    run = make_run(tmp_path / "run", comps)
    with FakeMessagesServer(faults=[Fault.OVERLOADED, Fault.DROP]) as srv:
        done = interpret(str(run.root), "--base-url", srv.base_url, "--timeout", "5", key=SECRET)
        assert done.returncode == 0, done.stderr
        assert len(srv.requests) == 12
    results, _ = read_jsonl(run.results_path, InterpretationResult)
    assert len(results) == 10
    assert all(r.cost_usd > 0 and r.cost_known for r in results)
    assert "cost $0.0" in done.stderr
    with FakeMessagesServer(faults=[Fault.AUTH] * 10) as srv:
        other = make_run(tmp_path / "other", comps)
        failed = interpret(str(other.root), "--base-url", srv.base_url, key=SECRET)
    assert failed.returncode == 1 and "rejected the key" in failed.stderr
    for proc in (done, failed):
        assert SECRET not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_interpret_package_never_imports_torch() -> None:
    modules = [
        f"autointerp.interpret.{p.stem}"
        for p in (ROOT / "autointerp" / "interpret").glob("*.py")
        if p.stem != "__init__"
    ]
    code = f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "assert 'torch' not in sys.modules, 'torch was imported'"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_interpret_on_a_terminal_shows_the_live_dashboard(tmp_path: Path) -> None:
    """The daemon's runtime: a rich Live dashboard when stdout is a terminal (a pty here)."""
    import pty

    run = make_run(tmp_path / "run", components(12, dead_every=4))
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "AUTOINTERP_"))}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.interpret.interpret_cli", str(run.root), "--labeller",
         "offline"],
        cwd=ROOT, env=env, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in screen  # drawn with terminal escapes, not printed as plain lines
    assert "latest labels" in screen and "labelling" in screen and "━" in screen
    assert "run=" not in screen  # no plain status lines
    assert f"run dir   {run.root.absolute()}" in screen  # the summary
    assert "labelled 9/12" in screen
