"""The one-line prompt (v1) against the both-sides prompt (v2), measured with the scorers.

    PYTHONPATH=. python -m bench.prompts RUN [--components 200] [--labeller claude|offline]
        [--answerer claude|offline] [--scorers detection,fuzzing,simulation,output]
        [--base-url URL] [--out DIR]

RUN is a harvested run directory with held-out windows (`harvest/heldout.jsonl`). A seeded
sample of its alive components is labelled twice into scratch runs under --out (default a
temporary directory), once per prompt, with the same model; every label is then scored by the
same answerer on the same held-out windows. Three arms:

- `v1`: the one-line label of the v1 prompt;
- `v2 line`: the one-line label of the v2 prompt;
- `v2 sides`: the v2 prompt's sides, each scorer reading the side it tests (`input_label` for
  detection, fuzzing and simulation; `output_label` for output).

For each scorer and arm: the mean over components with its 95% interval and n, then the paired
difference against v1 over the components scored in both (mean and normal 95% interval of the
per-component differences). With `--labeller offline` the two prompts give the same labels
(the offline labeller reads no prompt), so `v1` and `v2 line` agree and `v2 sides` measures
the offline labeller's sides against its line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from autointerp.errors import UserError
from autointerp.files import JsonlAppender
from autointerp.interpret.base import Labeller
from autointerp.interpret.llm.defaults import API_KEY_ENV, DEFAULT_MODEL
from autointerp.interpret.llm.options import ClientOptions
from autointerp.interpret.options import LabellingOptions, build_labeller
from autointerp.interpret.prompt_version import PromptVersion
from autointerp.interpret.scoring.asking import Answerer, ModelAnswerer, OfflineAnswerer
from autointerp.interpret.scoring.base import LabelRead
from autointerp.interpret.scoring.registry import SCORERS
from autointerp.interpret.scoring.runner import ScoringRun
from autointerp.interpret.scoring.summary import MeanScore, mean_score, score_range
from autointerp.schemas import ArchitectureInfo, ComponentData
from autointerp.store import RunDir, RunReader

ARMS: tuple[tuple[str, PromptVersion, LabelRead], ...] = (
    ("v1", "v1", "label"),
    ("v2 line", "v2", "label"),
    ("v2 sides", "v2", "sides"),
)
HARVEST_FILES = ("config.json", "summary.json", "state.json", "components.jsonl", "heldout.jsonl")


def scratch_run(source: RunDir, root: Path, name: str) -> RunDir:
    """A run directory sharing the source's harvest (linked, not copied) and nothing else."""
    run = RunDir(root / name)
    run.harvest_dir.mkdir(parents=True, exist_ok=True)
    run.results_path.parent.mkdir(parents=True, exist_ok=True)
    for file in HARVEST_FILES:
        target = source.harvest_dir / file
        if target.exists():
            (run.harvest_dir / file).symlink_to(target.resolve())
    return run


def sample(reader: RunReader, n: int, seed: int) -> list[ComponentData]:
    with_heldout = reader.heldout_keys()
    alive = list(reader.pending_components(with_heldout.__contains__))  # alive ones only
    random.Random(seed).shuffle(alive)
    return sorted(alive[:n], key=lambda c: c.component_key)


async def label_all(
    labeller: Labeller, components: list[ComponentData], arch: ArchitectureInfo, run: RunDir
) -> int:
    """Label every component into `run`'s results; returns how many failed."""
    limit = asyncio.Semaphore(max(1, labeller.max_concurrent))
    failed = 0
    with JsonlAppender(run.results_path) as out:

        async def one(component: ComponentData) -> None:
            nonlocal failed
            async with limit:
                try:
                    result = await labeller.label(component, arch)
                except Exception as e:  # a failed label is left out of the comparison
                    failed += 1
                    print(f"  could not label {component.component_key}: {e}", file=sys.stderr)
                    return
            out.append(result)

        await asyncio.gather(*(one(c) for c in components))
    return failed


def labelling(name: str, prompt: PromptVersion, args: argparse.Namespace) -> LabellingOptions:
    client = ClientOptions(
        model=args.model, base_url=args.base_url, max_concurrent=args.max_concurrent
    )
    return LabellingOptions(labeller=name, client=client, prompt=prompt)  # type: ignore[arg-type]


def answerer_for(args: argparse.Namespace) -> Answerer:
    if args.answerer == "offline":
        return OfflineAnswerer()
    from autointerp.interpret.llm.options import build_client

    options = ClientOptions(
        model=args.model, base_url=args.base_url, max_concurrent=args.max_concurrent
    )
    return ModelAnswerer(build_client(options))


async def run_arm(
    source: RunDir,
    root: Path,
    arm: tuple[str, PromptVersion, LabelRead],
    components: list[ComponentData],
    args: argparse.Namespace,
) -> RunDir:
    name, prompt, read = arm
    labelled = root / f"labels-{prompt}"
    run = RunDir(labelled)
    if not run.results_path.exists():
        run = scratch_run(source, root, f"labels-{prompt}")
        labeller = build_labeller(labelling(args.labeller, prompt, args))
        arch = RunReader(source).architecture()
        try:
            failed = await label_all(labeller, components, arch, run)
        finally:
            await labeller.aclose()
        print(f"labelled {len(components) - failed} components with prompt {prompt}")
    scored = scratch_run(source, root, f"scores-{name.replace(' ', '-')}")
    shutil.copyfile(run.results_path, scored.results_path)
    answerer = answerer_for(args)
    scorers = [SCORERS[n]() for n in args.scorers.split(",")]
    scoring = ScoringRun(scored, scorers, answerer, workers=args.max_concurrent, read=read)
    try:
        scoring.submit_backlog(RunReader(scored).labels())
        scoring.finish()
        await scoring.run()
    finally:
        await answerer.aclose()
    return scored


def _cell(m: MeanScore) -> str:
    if m.mean is None:
        return "— (n=0)"
    interval = "" if m.ci_low is None else f" [{m.ci_low:.3f}, {m.ci_high:.3f}]"
    return f"{m.mean:.3f}{interval} n={m.n}"


def _scores(run: RunDir, scorer: str) -> dict[str, float]:
    records = RunReader(run).scores(scorer).items()
    return {key: r.score for key, r in records if r.score is not None}


def table(runs: dict[str, RunDir], scorers: list[str]) -> list[str]:
    names = list(runs)
    lines = [
        "| scorer | " + " | ".join(names) + " | "
        + " | ".join(f"{n} − v1 (paired)" for n in names[1:]) + " |",
        "|---" * (2 * len(names)) + "|",
    ]  # fmt: skip
    for scorer in scorers:
        scores = {
            arm: {
                k: r.score for k, r in RunReader(run).scores(scorer).items() if r.score is not None
            }
            for arm, run in runs.items()
        }
        low, high = score_range(scorer)
        cells = [_cell(mean_score(list(s.values()), bounds=(low, high))) for s in scores.values()]
        base = scores[names[0]]
        for arm in names[1:]:
            both = sorted(set(base) & set(scores[arm]))
            diffs = [scores[arm][k] - base[k] for k in both]
            cells.append(_cell(mean_score(diffs, bounds=(low - high, high - low))))
        lines.append(f"| {scorer} | " + " | ".join(cells) + " |")
    return lines


async def main_async(args: argparse.Namespace) -> int:
    source = RunDir(Path(args.run))
    if not source.heldout_path.exists():
        raise UserError(f"{source.heldout_path} is missing: harvest with held-out windows first")
    components = sample(RunReader(source), args.components, args.seed)
    print(f"{len(components)} components sampled from {source.root}")
    root = Path(args.out or tempfile.mkdtemp(prefix="autointerp-prompts-"))
    runs = {arm[0]: await run_arm(source, root, arm, components, args) for arm in ARMS}
    model = f" ({args.model})"
    who = (
        f"labeller {args.labeller}{model if args.labeller == 'claude' else ''}, "
        f"answerer {args.answerer}{model if args.answerer == 'claude' else ''}"
    )
    print(f"\n{len(components)} components; {who}; scratch runs in {root}\n")
    print("\n".join(table(runs, args.scorers.split(","))))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a harvested run directory with held-out windows")
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labeller", choices=["claude", "offline"], default="claude")
    parser.add_argument("--answerer", choices=["claude", "offline"], default="claude")
    parser.add_argument("--scorers", default="detection,fuzzing,simulation,output")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--max-concurrent", type=int, default=8)
    parser.add_argument("--out", default=None, help="scratch directory (default: a new temp)")
    args = parser.parse_args()
    if "claude" in (args.labeller, args.answerer) and not os.environ.get(API_KEY_ENV):
        print(f"{API_KEY_ENV} is not set (or use --labeller/--answerer offline)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(main_async(args))
    except UserError as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
