"""Argument types with messages a user can act on, the parser that prints them briefly, and
the option groups shared by several commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from autointerp.daemon.options import (
    DEFAULT_GRACE_PERIOD_S,
    DEFAULT_STATUS_EVERY_S,
    DisplayOptions,
)
from autointerp.errors import UserError
from autointerp.interpret.llm.defaults import API_KEY_ENV, DEFAULT_MODEL
from autointerp.interpret.llm.options import (
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_TIMEOUT_S,
    BatchOptions,
    ClientOptions,
)
from autointerp.interpret.llm.providers import DEFAULT_PROVIDER, PROVIDERS, price_from_options
from autointerp.interpret.llm.ratelimit import RateLimits
from autointerp.interpret.options import LabellerName, LabellingOptions
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PROMPT_VERSIONS


def package_version() -> str:
    try:
        return version("autointerp")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class Parser(argparse.ArgumentParser):
    """An error is two lines (what is wrong, where the help is), not the whole usage first."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.stderr.write(f"(see '{self.prog} --help' for the options)\n")
        sys.exit(2)


def whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def number(*, above: float | None = None, at_least: float | None = None) -> Callable[[str], float]:
    """A finite number, > `above` or >= `at_least`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {text}")
        if at_least is not None and not value >= at_least:
            raise argparse.ArgumentTypeError(f"must be at least {at_least:g}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)
positive_float = number(above=0)
non_negative_float = number(at_least=0)


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"autointerp {package_version()}")


def add_data_dir(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--data-dir",
        help="where run directories live (default $AUTOINTERP_DATA_DIR, else .data/autointerp)",
    )


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the model and data come from (the source itself is each command's positional)."""
    s = parser.add_argument_group("source")
    s.add_argument(
        "--cache-dir",
        default=None,
        help="where wandb run files (reused without network) and token length indexes (for "
        "instant resume) are cached (default ~/.cache/autointerp/wandb)",
    )
    s.add_argument(
        "--dataset",
        default=None,
        help="data to stream instead of the run's own dataset: a .txt (one document per line, "
        "or blank-line separated), .jsonl or .parquet file, or a HuggingFace dataset name",
    )
    s.add_argument(
        "--tokenizer",
        default=None,
        help="HuggingFace tokenizer name or local directory (default: the run's tokenizer)",
    )
    s.add_argument(
        "--text-column",
        default=None,
        help="the dataset's text column (default: the run's column, else 'text' or 'story')",
    )
    s.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps",
    )
    s.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads for a CPU harvest (default: the cores idle at start)",
    )


def add_display_arguments(parser: argparse.ArgumentParser) -> None:
    d = parser.add_argument_group("display and shutdown")
    d.add_argument(
        "--plain", action="store_true", help="plain status lines instead of the live dashboard"
    )
    d.add_argument(
        "--status-every",
        type=positive_float,
        default=DEFAULT_STATUS_EVERY_S,
        help="seconds between plain status lines (default %(default)g)",
    )
    d.add_argument(
        "--grace-period",
        type=non_negative_float,
        default=DEFAULT_GRACE_PERIOD_S,
        help="seconds in-flight requests get to finish on SIGINT/SIGTERM (default %(default)g)",
    )


def add_labelling_arguments(
    parser: argparse.ArgumentParser, *, choices: list[str], default: str | None, help: str
) -> None:
    g = parser.add_argument_group("labelling")
    g.add_argument("--labeller", choices=choices, default=default, help=help)
    g.add_argument(
        "--prompt",
        choices=PROMPT_VERSIONS,
        default=DEFAULT_PROMPT,
        help="v2: what the component does when it fires and what it responds to, beside the "
        "one-line label; v1: the one-line label only (default: %(default)s)",
    )
    g.add_argument(
        "--score",
        nargs="?",
        const="all",
        default=None,
        metavar="SCORERS",
        help="score each label on its held-out windows as soon as it is written: 'all' (the "
        "default when given alone) or comma-separated scorers (detection, fuzzing, intruder, "
        "simulation, output); through the labeller's client and budget",
    )
    add_client_arguments(g)
    g.add_argument(
        "--no-retry-failed",
        action="store_true",
        help="leave components in failures.jsonl alone instead of retrying them",
    )


def add_client_arguments(g: argparse._ArgumentGroup) -> None:
    """The model, the endpoint and the pacing of the API client."""
    g.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=DEFAULT_PROVIDER,
        help="anthropic (Claude, key in ANTHROPIC_API_KEY) or openai (any OpenAI-compatible "
        "chat-completions server: OpenAI, vLLM, OpenRouter, Ollama; key in OPENAI_API_KEY, none "
        "needed for a server on localhost) (default: %(default)s)",
    )
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="the model (default: %(default)s for anthropic; required for openai)",
    )
    g.add_argument(
        "--base-url",
        default=None,
        help="API base URL, e.g. http://localhost:8000/v1 for vLLM (default: $ANTHROPIC_BASE_URL "
        "or $OPENAI_BASE_URL, else the provider's public API)",
    )
    g.add_argument(
        "--price-input-per-mtok",
        type=non_negative_float,
        default=None,
        help="US dollars per million input tokens, for the recorded cost and --budget-usd "
        "(with --price-output-per-mtok; default: the provider's price table, else unknown)",
    )
    g.add_argument(
        "--price-output-per-mtok",
        type=non_negative_float,
        default=None,
        help="US dollars per million output tokens (with --price-input-per-mtok)",
    )
    g.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=DEFAULT_MAX_CONCURRENT,
        help="most requests in flight; lowered automatically on 429/529 (default: %(default)s)",
    )
    g.add_argument("--max-rpm", type=positive_float, help="most requests started per minute")
    g.add_argument("--max-input-tpm", type=positive_float, help="most input tokens sent per minute")
    g.add_argument(
        "--max-output-tpm", type=positive_float, help="most output tokens asked for per minute"
    )
    g.add_argument(
        "--budget-usd",
        type=positive_float,
        help="stop sending new requests once the run has cost this much (earlier runs included)",
    )
    g.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds before one request is abandoned and retried (default: %(default)s)",
    )
    g.add_argument(
        "--batch",
        action="store_true",
        help="ask through Anthropic's Message Batches API: half the price, answers within "
        "hours (most within one); each batch is recorded in the run directory, so a restart "
        "polls it and never submits it twice",
    )
    batch = BatchOptions()
    g.add_argument(
        "--batch-requests",
        type=positive_int,
        default=batch.size,
        help="with --batch: most requests in one Message Batch (default: %(default)s; the API "
        "takes 100,000)",
    )
    g.add_argument(
        "--batch-max-wait-s",
        type=positive_float,
        default=batch.max_wait_s,
        help="with --batch: send a batch once its first request has waited this long "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--batch-poll-s",
        type=positive_float,
        default=batch.poll_s,
        help="with --batch: seconds between polls of open batches (default: %(default)s)",
    )


LABELLER_HELP = (
    f"claude (the model of --provider: needs {API_KEY_ENV}, or OPENAI_API_KEY for --provider "
    "openai) or offline (heuristic labels, no network)"
)


def display_from(args: argparse.Namespace) -> DisplayOptions:
    return DisplayOptions(
        plain=args.plain, status_every_s=args.status_every, grace_period_s=args.grace_period
    )


def labelling_from(args: argparse.Namespace, labeller: LabellerName, why: str) -> LabellingOptions:
    if args.batch and labeller == "offline":
        raise UserError(
            f"--batch asks the API, but the labeller is offline ({why}): drop --batch, or "
            "label with --labeller claude"
        )
    return LabellingOptions(
        labeller=labeller,
        why=why,
        client=client_from(args),
        budget_usd=args.budget_usd,
        retry_failed=not args.no_retry_failed,
        prompt=args.prompt,
        scorers=parse_scorers("--score", args.score) if args.score is not None else (),
    )


def parse_scorers(flag: str, text: str) -> tuple[str, ...]:
    """Scorer names from `detection,fuzzing` or `all`; unknown names are a UserError."""
    from autointerp.interpret.scoring.registry import SCORERS  # imports the client: lazily

    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return tuple(SCORERS)
    unknown = [n for n in names if n not in SCORERS]
    if unknown or not names:
        raise UserError(
            f"{flag} {text!r}: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCORERS)} (or all)"
        )
    return tuple(dict.fromkeys(names))


def client_from(args: argparse.Namespace) -> ClientOptions:
    return ClientOptions(
        provider=args.provider,
        price=price_from_options(
            args.provider, args.price_input_per_mtok, args.price_output_per_mtok
        ),
        model=args.model,
        base_url=args.base_url,
        timeout_s=args.timeout,
        max_concurrent=args.max_concurrent,
        limits=RateLimits(
            max_rpm=args.max_rpm,
            max_input_tpm=args.max_input_tpm,
            max_output_tpm=args.max_output_tpm,
        ),
        batch=batch_from(args),
    )


def batch_from(args: argparse.Namespace) -> BatchOptions | None:
    """`--batch` and its settings; the settings alone are a mistake worth saying."""
    defaults = BatchOptions()
    given = BatchOptions(
        size=args.batch_requests, max_wait_s=args.batch_max_wait_s, poll_s=args.batch_poll_s
    )
    if not args.batch:
        if given != defaults:
            raise UserError(
                "--batch-requests, --batch-max-wait-s and --batch-poll-s go with --batch"
            )
        return None
    if args.batch_requests > 100_000:
        raise UserError(f"--batch-requests {args.batch_requests}: the API takes at most 100,000")
    return given
