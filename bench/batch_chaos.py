"""`--batch` under `kill -9` at random moments: `python -m bench.batch_chaos`.

Each round harvests the tiny test model (wide layout: 95 alive components) once, then runs the
daemon with `--labeller claude --batch` against the loopback Message Batches server and kills it
(`SIGKILL`) at a random moment, again and again, before a last start that runs to the end. The
server injects entry faults (errored, expired: resubmitted; refusals in the first batch: asked
again), HTTP faults on the batch endpoints, answers dropped after a batch was created (orphans)
and a slow `create` (a window in which the batch exists but the client has no id yet).

Where each kill landed is read from the run directory just before it: `submission` (a batch
record of this start without an id yet), `results` (labels of this start written), `polling`
(a batch open, or an earlier orphan being looked up), `other` (start-up, grouping).
Reported, from the server's own accounting: batches created, entries paid twice (resubmitted
while an earlier copy had succeeded or was still running), components lost or labelled twice,
and the recorded cost over the list price of what the server billed (0.5 is half price).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

from autointerp.interpret.llm.pricing import HAIKU_4_5, Usage, cost_usd
from tests.daemon.runner import child_env, components, results, run_inprocess, spawn, tiny_run
from tests.daemon.test_batch_daemon import KEY, batch_args, lines, records, refused_once
from tests.interpret.fake_batches import FakeBatchServer


def where(run_dir: Path, labelled_before: int, known: set[str]) -> str:
    """What the daemon was doing: records and labels new since it started say."""
    run = tiny_run(run_dir)
    recs = records(run)
    if any(r.status == "submitting" and r.local_id not in known for r in recs):
        return "submission"
    if lines(run.results_path) > labelled_before:
        return "results"
    if any(r.status in ("in_progress", "submitting") for r in recs):
        return "polling"  # an open batch, or an earlier orphan being looked up
    return "other"


def one_round(seed: int, kills: int, workdir: Path) -> dict[str, object]:
    rng = random.Random(seed)
    data = workdir / f"round{seed}"
    os.environ["TINY_WIDE"] = "1"
    assert run_inprocess(data, "--labeller", "none", "--plain") == 0
    run = tiny_run(data)
    alive = {c.component_key for c in components(run) if c.firing_count > 0}
    log = workdir / f"round{seed}.log"
    hits: Counter[str] = Counter()
    with FakeBatchServer(
        seed=seed,
        process_s=0.8,
        create_latency_s=0.15,
        entry_fault_rate=0.2,
        entry_fault_kinds=["errored_transient", "expired", "canceled"],
        entry_outcome=refused_once,
        http_fault_rate=0.05,
        create_drop_after_record_rate=0.1,
    ) as srv:
        env = child_env(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=srv.base_url)
        started = time.monotonic()
        for _ in range(kills):
            before = lines(run.results_path)
            known = {r.local_id for r in records(run)}
            proc = spawn(data, *batch_args(), env=env, log=log)
            deadline = time.monotonic() + rng.uniform(1.0, 4.0)  # ~1 s of it is start-up
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.poll() is not None:
                hits["exited"] += 1
                break
            hits[where(data, before, known)] += 1
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        final = spawn(data, *batch_args(), env=env, log=log)
        code = final.wait(timeout=600)
        seconds = time.monotonic() - started
        paid_twice = srv.paid_twice()
        billed = Usage(**srv.billed_usage())
        created = len(srv.batches_created())
    labels = results(run)
    counts = Counter(r.component_key for r in labels)
    recorded = sum(r.cost_usd for r in labels)
    notes = Counter(r.note.split(":")[0] for r in records(run) if r.note)
    return {
        "seed": seed,
        "exit": code,
        "kills": dict(hits),
        "batches_created": created,
        "orphans_adopted": notes.get("adopted", 0),
        "records_abandoned": sum(n for k, n in notes.items() if k != "adopted"),
        "paid_twice": len(paid_twice),
        "alive": len(alive),
        "lost": len(alive - set(counts)),
        "labelled_twice": sum(n - 1 for n in counts.values()),
        "cost_over_list_price": recorded / cost_usd(HAIKU_4_5, billed),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kills", type=int, default=10, help="kills per round")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.rounds):
            row = one_round(seed, args.kills, Path(tmp))
            rows.append(row)
            print(row, flush=True)
    kills: Counter[str] = Counter()
    for row in rows:
        kills.update(row["kills"])  # type: ignore[arg-type]
    print(
        f"{len(rows)} rounds, {sum(kills.values()) - kills['exited']} kills "
        f"({dict(kills)}); batches created {sum(r['batches_created'] for r in rows)}; "  # type: ignore[misc]
        f"orphans adopted {sum(r['orphans_adopted'] for r in rows)}; "  # type: ignore[misc]
        f"paid twice {sum(r['paid_twice'] for r in rows)}; "  # type: ignore[misc]
        f"lost {sum(r['lost'] for r in rows)}; labelled twice "  # type: ignore[misc]
        f"{sum(r['labelled_twice'] for r in rows)}; cost / list price "  # type: ignore[misc]
        + ", ".join(f"{r['cost_over_list_price']:.4f}" for r in rows)
    )


if __name__ == "__main__":
    main()
