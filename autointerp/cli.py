"""`autointerp <command>` and `autointerp-daemon <source>`.

Each command lives in a module of `autointerp/commands/` exposing `add_arguments(parser)` and
`run(args) -> int`; only the chosen one is imported, and it parses its own arguments, so its
errors and help name it. Exit codes: 0 done, 2 bad usage or input (one message, no traceback),
1 runtime failure, 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from autointerp.commands.arguments import Parser, add_version
from autointerp.errors import UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "daemon": ("autointerp.commands.daemon", "harvest, finalize and label in one process"),
    "harvest": ("autointerp.commands.harvest", "harvest only (daemon, --labeller none)"),
    "interpret": ("autointerp.commands.interpret", "label an existing harvest"),
    "score": ("autointerp.commands.score", "score a run's labels on its held-out windows"),
    "status": ("autointerp.commands.status", "print a run's phase, progress, counts and cost"),
    "report": ("autointerp.commands.report", "write a run's labels as a static site"),
    "serve": ("autointerp.commands.serve", "browse a run's labels over HTTP while it runs"),
}


def _quiet_imports() -> None:
    """torch warns on import when NumPy is missing; nothing here uses NumPy, so say nothing."""
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)


def _top_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="autointerp",
        description=__doc__.splitlines()[0],
        epilog="run 'autointerp <command> --help' for a command's options",
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_parser(name: str, prog: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = Parser(prog=prog, description=help_text)
    add_version(parser)
    module.add_arguments(parser)
    return parser, module


def _run(module: object, args: argparse.Namespace) -> int:
    try:
        return int(module.run(args) or 0)  # type: ignore[attr-defined]
    except UserError as e:
        print(f"autointerp: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `autointerp status run | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """`autointerp <command> [args]`; `prog` names a command's own entry point (its usage)."""
    _quiet_imports()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv)  # prints help, the version, or what is wrong; exits
        return 2  # not reached: a valid command is in COMMANDS
    name, rest = argv[0], argv[1:]
    parser, module = _command_parser(name, prog or f"autointerp {name}")
    return _run(module, parser.parse_args(rest))


def daemon_main(argv: Sequence[str] | None = None) -> int:
    """`autointerp-daemon <source> [options]` is `autointerp daemon <source> [options]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(["daemon", *argv], prog="autointerp-daemon")
