"""`autointerp serve <run> [--port N] [--host 127.0.0.1]`: browse a run's labels over HTTP.

The same pages as `autointerp report`, rendered from the run's files at each request, so a
daemon's new labels appear without a restart. Binds to 127.0.0.1 unless told otherwise; Ctrl-C
stops it.
"""

from __future__ import annotations

import argparse
import sys

from autointerp.commands.arguments import add_data_dir
from autointerp.store import resolve_run

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory, or a run id under --data-dir")
    add_data_dir(parser)
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s; 0: any free)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default %(default)s: this machine only; 0.0.0.0 exposes "
        "the labels to the network)",
    )


def run(args: argparse.Namespace) -> int:
    from autointerp.report.server import ReportServer

    run_dir = resolve_run(args.run, args.data_dir)
    server = ReportServer(run_dir, args.host, args.port)
    print(
        f"autointerp: serving {run_dir.root.absolute()} at {server.url} (Ctrl-C to stop)",
        flush=True,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"autointerp: listening on {args.host}: anyone who can reach it sees the labels",
              file=sys.stderr)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("autointerp: stopped serving", flush=True)
    finally:
        server.server_close()
    return 0
