"""How fast the report's index becomes usable at 40k components, in headless Chromium.

    PYTHONPATH=. python -m bench.report_load [--components 40000] [--runs 3] [--keep DIR [--reuse]]

Writes a synthetic run directory (`tests/report/runs.py`: 40k components over 48 modules, 20
examples each, all labelled and scored by four scorers), writes its report with
`autointerp report`, then opens `index.html` from file:// and reads the page's own performance
marks, in ms from navigation start:
- first rows: the first component rows are in the DOM (search and filters work from here on,
  over the rows loaded so far);
- all rows: every shard has loaded and is searchable;
- search: from typing a query to the narrowed list.
Prints each figure per run and the median; also the report's size and its writing time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.report import browser
from tests.report.runs import RunSpec, write_run

PROBE = """
const at = name => {
  const e = performance.getEntriesByName(name);
  return e.length ? e[0].startTime : null;
};
return await new Promise(resolve => {
  const t = performance.now();
  (function tick() {
    const first = at("autointerp:first-rows"), all = at("autointerp:all-rows");
    if ((first !== null && all !== null) || performance.now() - t > 30000) resolve({first, all});
    else requestAnimationFrame(tick);
  })();
});
"""
SEARCH = """
const q = arguments[0], input = document.querySelector("input[type=search]");
const rows = document.getElementById("rows"), before = rows.getAttribute("data-shown");
const t = performance.now();
input.value = q;
input.dispatchEvent(new Event("input", {bubbles: true}));
return await new Promise(resolve => {
  function tick() {
    if (rows.getAttribute("data-shown") !== before) resolve(performance.now() - t);
    else if (performance.now() - t > 10000) resolve(null);
    else requestAnimationFrame(tick);
  }
  tick();
});
"""


def spec_for(n: int) -> RunSpec:
    layers = 8
    per_layer = (*(f"attn.{p}_proj" for p in "qkvo"), "mlp.up_proj", "mlp.down_proj")
    return RunSpec(
        n_components=n,
        modules_per_layer=per_layer,
        n_layers=layers,
        dead_every=0,
        examples=20,
        heldout=0,
        window=10,
    )


def measure(index: Path, runs: int) -> list[dict[str, float]]:
    """Each run in a newly started browser (nothing of the page cached but the OS's files)."""
    results = []
    for _ in range(runs):
        driver = browser.start()
        if driver is None:
            sys.exit(f"cannot measure: {browser.missing()}")
        try:
            driver.set_script_timeout(60)
            started = time.perf_counter()
            driver.get(index.as_uri())  # returns after the load event
            got = driver.execute_script(PROBE)
            wall = time.perf_counter() - started
            searched = driver.execute_script(SEARCH, "girl park")
        finally:
            driver.quit()
        nan = float("nan")
        results.append(
            {
                "first rows (ms)": nan if got["first"] is None else got["first"],
                "all rows (ms)": nan if got["all"] is None else got["all"],
                "search (ms)": nan if searched is None else searched,
                "wall incl. driver (s)": wall,
            }
        )
    return results


def write(root: Path, n: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    written = write_run(root, spec_for(n))
    print(f"run: {len(written.labelled):,} labelled components in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "autointerp", "report", str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t
    size = sum(p.stat().st_size for p in (root / "report").rglob("*") if p.is_file())
    data = sum(p.stat().st_size for p in (root / "report" / "data").glob("*.js"))
    print(done.stdout.strip().splitlines()[0])
    print(
        f"report: {seconds:.1f} s wall (autointerp report, {os.cpu_count()} CPUs), "
        f"{size / 2**20:,.0f} MiB in all, index data {data / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write the run here and keep it")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the report already under --keep"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="report-load-"))
    root = (args.keep or tmp) / "synthetic-40k"
    try:
        if not (args.reuse and (root / "report" / "index.html").exists()):
            write(root, args.components)
        print(f"load average before measuring: {os.getloadavg()[0]:.2f}")
        results = measure(root / "report" / "index.html", args.runs)
        for i, r in enumerate(results, 1):
            print(f"load {i} (fresh browser): " + ", ".join(f"{k} {v:,.1f}" for k, v in r.items()))
        medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print("median: " + ", ".join(f"{k} {v:,.1f}" for k, v in medians.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
