"""`autointerp interpret <run>`: label an existing harvest (the daemon's runtime, no harvest)."""

from __future__ import annotations

import argparse

from autointerp.commands.arguments import (
    LABELLER_HELP,
    add_data_dir,
    add_display_arguments,
    add_labelling_arguments,
    display_from,
    labelling_from,
)
from autointerp.daemon.options import InterpretOptions
from autointerp.store import data_dir_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory, or a run id under --data-dir")
    add_data_dir(parser)
    add_labelling_arguments(
        parser, choices=["claude", "offline"], default="claude", help=LABELLER_HELP
    )
    add_display_arguments(parser)


def run(args: argparse.Namespace) -> int:
    options = InterpretOptions(
        run=args.run,
        data_dir=data_dir_from(args.data_dir),
        labelling=labelling_from(args, args.labeller, f"--labeller {args.labeller}"),
        display=display_from(args),
    )
    from autointerp.daemon.interpret_command import run_interpret

    return run_interpret(options)
