"""`autointerp status <run>`: a run's phase, live progress, counts and cost; writes nothing."""

from __future__ import annotations

import argparse
import logging

import msgspec

from autointerp.commands.arguments import add_data_dir
from autointerp.daemon.status import collect, describe
from autointerp.store import resolve_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", help="run directory, or a run id under --data-dir / $AUTOINTERP_DATA_DIR"
    )
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    # A running daemon may be mid-append: a partial last line is expected here, not a crash.
    logging.getLogger("autointerp.files").setLevel(logging.ERROR)
    status = collect(resolve_run(args.run, args.data_dir))
    if args.json:
        print(msgspec.json.encode(status).decode())
    else:
        print(describe(status))
    return 0
