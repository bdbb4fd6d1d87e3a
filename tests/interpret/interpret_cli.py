"""`python -m tests.interpret.interpret_cli <args>`: `autointerp interpret <args>`.

The real CLI entry point (its argument parsing, UserError handling and exit codes), kept as a
module so the labelling tests need no installed console script.
"""

from __future__ import annotations

import sys

from autointerp.cli import main

if __name__ == "__main__":
    sys.exit(main(["interpret", *sys.argv[1:]]))
