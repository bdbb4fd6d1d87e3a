"""`autointerp daemon <source>` / `autointerp-daemon <source>`: harvest, finalize and label."""

from __future__ import annotations

import argparse

from autointerp.commands.arguments import (
    add_data_dir,
    add_display_arguments,
    add_labelling_arguments,
    add_source_arguments,
    display_from,
    labelling_from,
    non_negative_float,
    non_negative_int,
    positive_int,
)
from autointerp.daemon.options import DaemonOptions
from autointerp.errors import UserError
from autointerp.interpret.llm.defaults import API_KEY_ENV
from autointerp.interpret.llm.providers import DEFAULT_PROVIDER, key_available
from autointerp.interpret.options import LabellingOptions
from autointerp.sources.open import SourceOptions
from autointerp.store import data_dir_from

SOURCE_HELP = (
    "wandb run path (entity/project/run_id, URL), local SPD run dir, `demo`, "
    "`synthetic[:simplestories|:pile|:tiny]`, or py:package.module:factory"
)
LABELLER_CHOICE_HELP = (
    f"claude (the model of --provider; default when {API_KEY_ENV} is set, or OPENAI_API_KEY "
    "with --provider openai, or the base URL is a local server), offline (default otherwise: "
    "labels from the statistics, no API) or none (harvest only)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_harvest_arguments(parser)
    add_labelling_arguments(
        parser, choices=["claude", "offline", "none"], default=None, help=LABELLER_CHOICE_HELP
    )
    add_display_arguments(parser)


def add_harvest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help=SOURCE_HELP)
    add_source_arguments(parser)
    g = parser.add_argument_group("harvest")
    g.add_argument("--n-batches", type=positive_int, help="batches to harvest (default: source)")
    g.add_argument("--batch-size", type=positive_int, help="sequences per batch")
    g.add_argument("--context-length", type=positive_int, help="tokens per sequence")
    g.add_argument(
        "--ci-threshold",
        type=non_negative_float,
        default=0.0,
        help="a component fires where CI > this (default 0)",
    )
    g.add_argument(
        "--examples-per-component",
        type=positive_int,
        default=20,
        help="activation examples sampled per component (default 20)",
    )
    g.add_argument(
        "--context-tokens",
        type=non_negative_int,
        default=10,
        help="tokens on each side of an activation example (default 10)",
    )
    g.add_argument(
        "--heldout-per-component",
        type=non_negative_int,
        default=None,
        help="firings sampled beside the examples and never shown to the labeller, for scoring "
        "(default 40 for a new run; a run keeps its own)",
    )
    g.add_argument(
        "--negatives-per-component",
        type=non_negative_int,
        default=None,
        help="windows where the component fires nowhere (checked on the CI), for scoring "
        "(default 20 for a new run; a run keeps its own)",
    )
    g.add_argument(
        "--hard-negatives-per-component",
        type=non_negative_int,
        default=None,
        help="windows where the component fires nowhere but one of its 8 most co-firing "
        "components fires at the centre, for scoring (default 10 for a new run; a run keeps "
        "its own)",
    )
    g.add_argument(
        "--top-k", type=positive_int, default=10, help="entries per statistics list (default 10)"
    )
    g.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the example sampling (default 0)"
    )
    g.add_argument(
        "--checkpoint-every",
        type=non_negative_float,
        default=300.0,
        help="seconds between harvest checkpoints (default 300)",
    )
    add_data_dir(g)
    g.add_argument(
        "--force-new-harvest",
        action="store_true",
        help="start over when the options differ from the run's (old files are "
        "moved to a backup folder)",
    )


def choose_labeller(
    requested: str | None, provider: str = DEFAULT_PROVIDER, base_url: str | None = None
) -> tuple[str, str]:
    """(labeller, why) for the dashboard: an explicit choice, else by the presence of the
    provider's API key (or a local server, which needs none)."""
    if requested is not None:
        return requested, f"--labeller {requested}"
    usable, why = key_available(provider, base_url)
    return ("claude" if usable else "offline"), why


def daemon_options(args: argparse.Namespace, labelling: LabellingOptions | None) -> DaemonOptions:
    from autointerp.harvest.config import HarvestOptions  # imports torch: only once it runs

    return DaemonOptions(
        source=SourceOptions(
            spec=args.source,
            device=args.device,
            cache_dir=args.cache_dir,
            dataset=args.dataset,
            tokenizer=args.tokenizer,
            text_column=args.text_column,
        ),
        data_dir=data_dir_from(args.data_dir),
        harvest=HarvestOptions(
            n_batches=args.n_batches,
            batch_size=args.batch_size,
            context_length=args.context_length,
            ci_threshold=args.ci_threshold,
            examples_per_component=args.examples_per_component,
            context_tokens=args.context_tokens,
            top_k=args.top_k,
            seed=args.seed,
            checkpoint_every_s=args.checkpoint_every,
            force_new=args.force_new_harvest,
            heldout_per_component=args.heldout_per_component,
            negatives_per_component=args.negatives_per_component,
            hard_negatives_per_component=args.hard_negatives_per_component,
        ),
        labelling=labelling,
        display=display_from(args),
        cpu_threads=args.threads,
    )


def run(args: argparse.Namespace) -> int:
    name, why = choose_labeller(args.labeller, args.provider, args.base_url)
    if name == "none" and args.score is not None:
        raise UserError("--score needs labels to score: drop --labeller none, or drop --score")
    labelling = None if name == "none" else labelling_from(args, name, why)  # type: ignore[arg-type]
    options = daemon_options(args, labelling)
    from autointerp.daemon.command import run_daemon

    return run_daemon(options)
