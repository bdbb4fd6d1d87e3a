"""`autointerp harvest <source>`: the daemon without labelling (same as `--labeller none`)."""

from __future__ import annotations

import argparse

from autointerp.commands.arguments import add_display_arguments
from autointerp.commands.daemon import add_harvest_arguments, daemon_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_harvest_arguments(parser)
    add_display_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from autointerp.daemon.command import run_daemon

    return run_daemon(daemon_options(args, labelling=None))
