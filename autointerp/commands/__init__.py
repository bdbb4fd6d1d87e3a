"""The CLI edge: each module parses one command's arguments into typed options and runs it.

Nothing below this package sees an argparse `Namespace`. A module exposes
`add_arguments(parser)` and `run(args, prog) -> int`; it imports the heavy parts (torch, the
SDK) only inside `run`, so `--help` stays fast.
"""
