"""`autointerp harvest <source>`: the daemon without labelling (same as `--labeller none`)."""

from __future__ import annotations

import argparse

from autointerp.daemon.command import run_daemon
from autointerp.daemon.options import add_harvest_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_harvest_arguments(parser)
    parser.set_defaults(labeller="none", max_concurrent=1, budget_usd=None, no_retry_failed=False)


def run(args: argparse.Namespace) -> int:
    return run_daemon(args, labelling=False)
