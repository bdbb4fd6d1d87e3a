"""A slow API holds finalize back: at most a queue's worth of components waits for labelling."""

from __future__ import annotations

import time
from pathlib import Path

from tests.daemon.runner import child_env, spawn, tiny_run
from tests.interpret.fake_api import FakeMessagesServer


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_finalize_waits_for_labelling_when_the_queue_is_full(tmp_path: Path) -> None:
    concurrency = 1
    queue_size = 2 * concurrency + 16  # what the daemon uses
    env = child_env(ANTHROPIC_API_KEY="k", TINY_WIDE="1")
    run = tiny_run(tmp_path)
    gaps = []
    with FakeMessagesServer(latency=0.04) as server:
        proc = spawn(
            tmp_path,
            *("--labeller", "claude", "--base-url", server.base_url),
            *("--max-concurrent", str(concurrency)),
            env=env,
            log=tmp_path / "out.log",
        )
        while proc.poll() is None:
            written, labelled = _lines(run.components_path), _lines(run.results_path)
            if written:
                gaps.append(written - labelled)
            time.sleep(0.02)
    assert proc.returncode == 0, (tmp_path / "out.log").read_text()[-2000:]
    assert _lines(run.components_path) == 96 and _lines(run.results_path) == 95
    # Written but unlabelled: the queue, the request in flight, the one finalize is blocked on
    # handing over, and the dead component (written, never queued).
    assert max(gaps) <= queue_size + concurrency + 2
    assert max(gaps) >= queue_size  # finalize really was ahead and held back, not just slow
