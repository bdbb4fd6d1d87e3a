"""`autointerp <command>` and `autointerp-daemon <source>`.

Each subcommand lives in a module exposing `add_arguments(parser)` and `run(args) -> int`; modules
are imported only when their command runs, so `--help` and `status` stay fast (no torch import).
Exit codes: 0 done, 2 bad usage or input (one message, no traceback), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from autointerp.errors import UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "daemon": ("autointerp.daemon.command", "harvest, finalize and label in one process"),
    "harvest": ("autointerp.daemon.harvest_command", "harvest only (daemon, --labeller none)"),
    "interpret": ("autointerp.interpret.command", "label an existing harvest"),
    "status": ("autointerp.daemon.status", "print a run's phase, progress, counts and cost"),
}

log = logging.getLogger("autointerp")


def _build_parser(argv: Sequence[str], prog: str = "autointerp") -> argparse.ArgumentParser:
    """The parser, with the options of the one command named in `argv` (only it is imported)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _run(args: argparse.Namespace) -> int:
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UserError as e:
        print(f"autointerp: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `autointerp status run | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser(argv).parse_args(argv)
    return _run(args)


def daemon_main(argv: Sequence[str] | None = None) -> int:
    """`autointerp-daemon <source> [options]` is `autointerp daemon <source> [options]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(["daemon", *argv])
