"""Command-line options of `autointerp daemon` / `autointerp-daemon` and `autointerp harvest`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from autointerp.interpret.options import add_labelling_arguments
from autointerp.sources.open import add_source_arguments

FALLBACK_DEFAULTS = {"n_batches": 1000, "batch_size": 32, "context_length": 512}
"""Harvest size when the source suggests none."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def add_harvest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        help="wandb run path (entity/project/run_id, URL), local SPD run dir, `demo`, "
        "or py:package.module:factory",
    )
    add_source_arguments(parser)
    g = parser.add_argument_group("harvest")
    g.add_argument("--n-batches", type=_positive_int, help="batches to harvest (default: source)")
    g.add_argument("--batch-size", type=_positive_int, help="sequences per batch")
    g.add_argument("--context-length", type=_positive_int, help="tokens per sequence")
    g.add_argument(
        "--ci-threshold",
        type=_non_negative_float,
        default=0.0,
        help="a component fires where CI > this (default 0)",
    )
    g.add_argument(
        "--examples-per-component",
        type=_positive_int,
        default=20,
        help="activation examples sampled per component (default 20)",
    )
    g.add_argument(
        "--context-tokens",
        type=int,
        default=10,
        help="tokens on each side of an activation example (default 10)",
    )
    g.add_argument(
        "--top-k", type=_positive_int, default=10, help="entries per statistics list (default 10)"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the example sampling (default 0)")
    g.add_argument(
        "--checkpoint-every",
        type=_non_negative_float,
        default=300.0,
        help="seconds between harvest checkpoints (default 300)",
    )
    g.add_argument(
        "--data-dir",
        help="where run directories live (default $AUTOINTERP_DATA_DIR or .data/autointerp)",
    )
    g.add_argument(
        "--force-new-harvest",
        action="store_true",
        help="start over when the options differ from the run's (old files are "
        "moved to a backup folder)",
    )
    d = parser.add_argument_group("display and shutdown")
    d.add_argument(
        "--plain", action="store_true", help="plain status lines instead of the live dashboard"
    )
    d.add_argument(
        "--status-every",
        type=_positive_float,
        default=30.0,
        help="seconds between plain status lines (default 30)",
    )
    d.add_argument(
        "--grace-period",
        type=_non_negative_float,
        default=30.0,
        help="seconds in-flight requests get to finish on SIGINT/SIGTERM (default 30)",
    )


def add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """Harvest options plus the labelling options; `--labeller none` harvests only."""
    add_harvest_arguments(parser)
    add_labelling_arguments(parser)
    help_text = (
        "claude (default when ANTHROPIC_API_KEY is set), offline (default otherwise: "
        "labels from the statistics, no API) or none (harvest only)"
    )
    choices = ["claude", "offline", "none"]
    for action in parser._actions:  # widen the labelling option's `--labeller` with `none`
        if "--labeller" in action.option_strings:
            action.choices, action.default, action.help = choices, None, help_text
            return
    parser.add_argument("--labeller", choices=choices, default=None, help=help_text)


def choose_labeller(requested: str | None) -> tuple[str, str]:
    """(labeller, why) for the dashboard: an explicit choice, else by ANTHROPIC_API_KEY."""
    if requested is not None:
        return requested, f"--labeller {requested}"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "claude", "ANTHROPIC_API_KEY is set"
    return "offline", "no ANTHROPIC_API_KEY"


def harvest_sizes(args: argparse.Namespace, source: Any, spec: str) -> dict[str, int]:
    """`--n-batches/--batch-size/--context-length`, else the source's suggestion, else fallback."""
    suggested = dict(FALLBACK_DEFAULTS)
    suggested.update(_source_defaults(source, spec))
    return {
        key: int(getattr(args, key) if getattr(args, key) is not None else suggested[key])
        for key in FALLBACK_DEFAULTS
    }


def _source_defaults(source: Any, spec: str) -> dict[str, int]:
    defaults = getattr(source, "harvest_defaults", None)
    if defaults is None and spec == "demo":
        from autointerp.sources.demo import DEMO_DEFAULTS

        defaults = DEMO_DEFAULTS
    if defaults is None:
        return {}
    if not isinstance(defaults, dict):
        defaults = {k: getattr(defaults, k) for k in FALLBACK_DEFAULTS if hasattr(defaults, k)}
    return {k: int(v) for k, v in defaults.items() if k in FALLBACK_DEFAULTS}
