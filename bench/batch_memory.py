"""What one request waiting in a batch keeps in memory: `python -m bench.batch_memory [RUN]`.

With `--batch`, up to 20,000 requests wait hours for their batch. Each waiting label keeps only
its request (the pool and the labeller drop the component once the prompt is rendered), and each
waiting scorer keeps only its plan (the windows it asks about; the component's held-out data is
dropped). This measures those sizes with `tracemalloc` on a run directory (default: the demo,
harvested into a temporary directory with the offline labeller, 40 batches).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autointerp.files import iter_jsonl
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.prompt import render_prompt
from autointerp.interpret.prompt_version import DEFAULT_PROMPT
from autointerp.interpret.response import response_schema
from autointerp.interpret.scoring.base import trial_rng
from autointerp.interpret.scoring.registry import SCORERS
from autointerp.schemas import ComponentData
from autointerp.store import HeldOutLookup, RunDir, RunReader

REPO = Path(__file__).resolve().parents[1]


def traced(build: Callable[[], list[Any]]) -> tuple[list[Any], float]:
    """What `build` returns and the bytes per item it allocated and kept."""
    gc.collect()
    tracemalloc.start()
    items = build()
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return items, kept / max(1, len(items))


def measure(run: RunDir) -> None:
    arch = RunReader(run).architecture()
    schema = response_schema(DEFAULT_PROMPT)
    comps, per_component = traced(
        lambda: [c for c in iter_jsonl(run.components_path, ComponentData) if c.firing_count > 0]
    )

    def requests() -> list[Request]:
        prompts = (render_prompt(c, arch, DEFAULT_PROMPT) for c in comps)
        return [Request(system=p.system, user=p.user, schema=schema) for p in prompts]

    _, per_request = traced(requests)
    lookup = HeldOutLookup(run.heldout_path)
    held, per_heldout = traced(lambda: [lookup.get(k) for k in sorted(lookup.keys())])
    print(f"{len(comps)} alive components in {run.root}")
    print("| kept while waiting | KiB each |")
    print("|---|---|")
    print(f"| a component (what the pool no longer keeps) | {per_component / 1024:.1f} |")
    print(f"| its label request (what it keeps) | {per_request / 1024:.1f} |")
    print(f"| a component's held-out data (no longer kept) | {per_heldout / 1024:.1f} |")
    for name, scorer_class in SCORERS.items():
        scorer = scorer_class()
        _, per_plan = traced(
            lambda s=scorer, n=name: [
                s.plan('fires on "the"', h, trial_rng(h.component_key, n)) for h in held
            ]
        )
        print(f"| the {name} plan (what scoring keeps) | {per_plan / 1024:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a run directory (default: a fresh demo harvest)")
    args = parser.parse_args()
    if args.run:
        measure(RunDir(Path(args.run)))
        return
    with tempfile.TemporaryDirectory() as data:
        daemon = [sys.executable, "-m", "autointerp", "daemon", "demo", "--labeller",
                  "offline", "--plain", "--device", "cpu", "--data-dir", data,
                  "--n-batches", "40"]  # fmt: skip
        subprocess.run(daemon, cwd=REPO, check=True, capture_output=True)
        measure(RunDir(Path(data) / "demo"))


if __name__ == "__main__":
    main()
