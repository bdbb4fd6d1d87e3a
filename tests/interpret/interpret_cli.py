"""`python -m tests.interpret.interpret_cli <args>`: `autointerp interpret <args>` on its own.

Goes through `cli._run` (so UserError handling and exit codes are the real ones) without building
the parsers of the other commands, which live in other packages.
"""

from __future__ import annotations

import argparse
import sys

from autointerp import cli
from autointerp.interpret import command


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="autointerp interpret")
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    args._module = command.__name__
    return cli._run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
