"""`autointerp report <run> [--out DIR]`: write the run's labels as a static site.

The site works from `file://` with no network (no CDN): open `DIR/index.html` in a browser, or
copy the directory anywhere. `autointerp serve` shows the same pages and follows a running daemon.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autointerp.commands.arguments import add_data_dir
from autointerp.store import resolve_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory, or a run id under --data-dir")
    add_data_dir(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the site (default: <run>/report/)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes that write the component pages (default: the CPUs, at most 8)",
    )


def run(args: argparse.Namespace) -> int:
    from autointerp.report.site import write_site

    run_dir = resolve_run(args.run, args.data_dir)
    out = args.out if args.out is not None else run_dir.root / "report"
    written = write_site(run_dir, out, jobs=args.jobs)
    print(
        f"autointerp: wrote {written.files:,} files ({written.labelled:,} labelled components, "
        f"{written.components:,} component pages) in {written.seconds:.1f} s"
    )
    print(f"open {(written.out / 'index.html').as_uri()}")
    return 0
