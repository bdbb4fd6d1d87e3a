"""What scoring costs: tokens and dollars per 1,000 components, per scorer, counted on the
loopback Messages API (`tests/interpret/fake_api.py`) that answers as an oracle.

    PYTHONPATH=. python -m bench.scoring [--batches 40] [--batch]

It harvests the embedded demo with the offline labeller into a temporary directory, then runs
`autointerp score` with `--answerer claude` against the loopback server and adds up the usage
each record reports. The server counts tokens as characters / 4 (it has no tokenizer), so the
figures are estimates of what the real API would bill; the price is Haiku 4.5's ($1 / $5 per
million input / output tokens, cache reads at 0.1x). With `--batch` the questions go through
the loopback Message Batches server (`tests/interpret/fake_batches.py`) at the batch price.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from autointerp.store import RunDir, RunReader
from tests.interpret.fake_api import FakeMessagesServer
from tests.interpret.fake_batches import FakeBatchServer
from tests.interpret.test_scorers import oracle

REPO = Path(__file__).resolve().parents[1]
SCORERS = ("detection", "fuzzing", "intruder", "simulation", "output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="demo harvest batches")
    parser.add_argument("--batch", action="store_true", help="score with --batch")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    server = FakeBatchServer(answer=oracle) if args.batch else FakeMessagesServer(answer=oracle)
    batching = ["--batch", "--batch-max-wait-s", "1", "--batch-poll-s", "0.2"] if args.batch else []
    with tempfile.TemporaryDirectory() as data, server as srv:
        daemon = [sys.executable, "-m", "autointerp", "daemon", "demo", "--labeller", "offline",
                  "--plain", "--device", "cpu", "--data-dir", data, "--n-batches",
                  str(args.batches)]  # fmt: skip
        subprocess.run(daemon, env=env, cwd=REPO, check=True, capture_output=True)
        score = [sys.executable, "-m", "autointerp", "score", "demo", "--data-dir", data,
                 "--answerer", "claude", "--base-url", srv.base_url,
                 "--max-concurrent", "16", *batching]  # fmt: skip
        subprocess.run(score, env={**env, "ANTHROPIC_API_KEY": "bench-key"}, cwd=REPO,
                       check=True, capture_output=True)  # fmt: skip
        reader = RunReader(RunDir(Path(data) / "demo"))
        asked = _asked(srv)
        print(f"demo, {args.batches} batches; loopback server, {sum(asked.values())} requests"
              + (" in batches" if args.batch else ""))  # fmt: skip
        print(
            "| scorer | components scored | requests / component | input tokens / 1k "
            "| output tokens / 1k | cost / 1k components (Haiku 4.5) |"
        )
        print("|---|---|---|---|---|---|")
        for scorer in SCORERS:
            records = [r for r in reader.scores(scorer).values() if r.n > 0]
            n = len(records)
            if n == 0:
                continue
            tokens_in = sum(
                r.input_tokens + r.cache_creation_input_tokens + r.cache_read_input_tokens
                for r in records
            )
            tokens_out = sum(r.output_tokens for r in records)
            cost = sum(r.cost_usd for r in records)
            print(f"| {scorer} | {n} | {asked[scorer] / n:.1f} | {tokens_in / n * 1000:,.0f} "
                  f"| {tokens_out / n * 1000:,.0f} | ${cost / n * 1000:.2f} |")  # fmt: skip


def _asked(srv: FakeMessagesServer) -> Counter[str]:
    """Requests per scorer: batch entries are named by their tag (`detection_<key>-…`)."""
    if isinstance(srv, FakeBatchServer):
        return Counter(cid.split("_")[0] for s in srv.submissions for cid in s.custom_ids)
    return Counter(_scorer_of(q.body) for q in srv.requests)


def _scorer_of(body: dict[str, Any]) -> str:
    text = body["messages"][0]["content"]
    if '"intruders"' in text:
        return "intruder"
    if '"windows"' in text:
        return "simulation"
    if "just before the marked token" in text:
        return "output"
    if "marked token" in text:
        return "fuzzing"
    return "detection"


if __name__ == "__main__":
    main()
