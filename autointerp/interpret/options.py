"""Labelling options shared by `autointerp interpret` and the daemon; the labeller they build."""

from __future__ import annotations

import argparse

from autointerp.errors import UserError
from autointerp.interpret.base import Labeller
from autointerp.interpret.defaults import API_KEY_ENV, DEFAULT_MODEL

LABELLERS = ("claude", "offline")
DEFAULT_MAX_CONCURRENT = 8
DEFAULT_TIMEOUT_S = 60.0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_labelling_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("labelling")
    g.add_argument(
        "--labeller",
        choices=LABELLERS,
        default="claude",
        help=f"claude (needs {API_KEY_ENV}) or offline (heuristic labels, no network)",
    )
    g.add_argument("--model", default=DEFAULT_MODEL, help="Claude model (default: %(default)s)")
    g.add_argument(
        "--base-url",
        default=None,
        help="API base URL (default: $ANTHROPIC_BASE_URL, else the public API)",
    )
    g.add_argument(
        "--max-concurrent",
        type=_positive_int,
        default=DEFAULT_MAX_CONCURRENT,
        help="most requests in flight; lowered automatically on 429/529 (default: %(default)s)",
    )
    g.add_argument("--max-rpm", type=_positive_float, help="most requests started per minute")
    g.add_argument(
        "--max-input-tpm", type=_positive_float, help="most input tokens sent per minute"
    )
    g.add_argument(
        "--max-output-tpm", type=_positive_float, help="most output tokens asked for per minute"
    )
    g.add_argument(
        "--budget-usd",
        type=_positive_float,
        help="stop sending new requests once the run has cost this much (earlier runs included)",
    )
    g.add_argument(
        "--no-retry-failed",
        action="store_true",
        help="leave components in failures.jsonl alone instead of retrying them",
    )
    g.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds before one request is abandoned and retried (default: %(default)s)",
    )


def build_labeller(args: argparse.Namespace) -> Labeller:
    """The labeller `args` ask for. A missing API key is a UserError naming the variable."""
    if args.labeller == "offline":
        from autointerp.interpret.offline import OfflineLabeller

        return OfflineLabeller()
    from autointerp.interpret.claude import ClaudeLabeller
    from autointerp.interpret.pricing import price_of
    from autointerp.interpret.ratelimit import RateLimits

    if getattr(args, "budget_usd", None) is not None and price_of(args.model) is None:
        raise UserError(
            f"--budget-usd cannot be kept for model {args.model!r}: its price is not in the table "
            "(autointerp/interpret/pricing.py); drop --budget-usd or use a listed model"
        )

    return ClaudeLabeller(
        args.model,
        base_url=args.base_url,
        timeout=args.timeout,
        max_concurrent=args.max_concurrent,
        limits=RateLimits(
            max_rpm=args.max_rpm,
            max_input_tpm=args.max_input_tpm,
            max_output_tpm=args.max_output_tpm,
        ),
    )
