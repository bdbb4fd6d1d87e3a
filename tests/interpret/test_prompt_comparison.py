"""`bench/prompts.py`, the v1-against-v2 comparison, end to end against the loopback API: both
prompts are sent as asked, every arm is scored on the same components, and the table pairs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.daemon.runner import REPO, child_env, run_inprocess, tiny_run
from tests.interpret.fake_api import FakeMessagesServer, asked_fields, default_answer
from tests.interpret.test_scorers import oracle


def answer(body: dict[str, Any]) -> str:
    system = "".join(block["text"] for block in body["system"])
    return oracle(body) if system.startswith("You test an interpretation") else default_answer(body)


def test_both_prompts_are_labelled_and_scored_on_the_same_components(tmp_path: Path) -> None:
    assert run_inprocess(tmp_path, "--labeller", "offline", "--context-tokens", "3") == 0
    out = tmp_path / "compare"
    with FakeMessagesServer(answer=answer) as srv:
        done = subprocess.run(
            [sys.executable, "-m", "bench.prompts", str(tiny_run(tmp_path).root),
             "--components", "6", "--base-url", srv.base_url, "--scorers", "detection,output",
             "--out", str(out)],
            cwd=REPO, env=child_env(ANTHROPIC_API_KEY="sk-ant-compare-1"), capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        labelling = [r.body for r in srv.requests if "Component:" in str(r.body["messages"])]
    assert done.returncode == 0, done.stderr
    # Six components, once per prompt: the v2 requests ask for the sides, the v1 ones do not.
    sides = [("input_label" in asked_fields(b)) for b in labelling]
    assert sides.count(True) == sides.count(False) == 6
    rows = [line for line in done.stdout.splitlines() if line.startswith("| detection")]
    assert len(rows) == 1 and rows[0].count("n=") == 5  # three arms, two paired differences
    assert re.search(r"\| output \|", done.stdout)
