"""INTERIM: other branches' APIs, with test stand-ins until they land in `main` (then deleted)."""
# ruff: noqa: F401

try:
    from autointerp.harvest import (
        Harvester,
        finalize,
        load_checkpoint,
        save_checkpoint,
        summarize,
    )
except ImportError:
    from tests.daemon.interim import (
        Harvester,
        finalize,
        load_checkpoint,
        save_checkpoint,
        summarize,
    )

try:
    from autointerp.interpret.pool import LabellingPool
except ImportError:
    from tests.daemon.interim import LabellingPool

try:
    from autointerp.sources.open import add_source_arguments, open_source
except ImportError:
    import argparse
    import importlib
    import os

    from autointerp.errors import UserError

    def add_source_arguments(parser: argparse.ArgumentParser) -> None:
        for flag in ("--cache-dir", "--dataset", "--tokenizer", "--text-column", "--device"):
            parser.add_argument(flag, default=None)

    def open_source(spec: str, **kwargs: object):  # type: ignore[no-untyped-def]
        if not spec.startswith("py:"):
            raise UserError(f"source {spec!r}: only py:module:factory specs work (interim)")
        module, _, factory = spec[3:].partition(":")
        return getattr(importlib.import_module(module), factory)()


try:
    from autointerp.interpret.options import add_labelling_arguments, build_labeller
except ImportError:

    def add_labelling_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--labeller", choices=["claude", "offline"], default="offline")
        parser.add_argument("--max-concurrent", type=int, default=8)
        parser.add_argument("--budget-usd", type=float, default=None)
        parser.add_argument("--no-retry-failed", action="store_true")

    def build_labeller(args: argparse.Namespace):  # type: ignore[no-untyped-def]
        from tests.daemon.interim import OfflineLabeller

        if args.labeller != "offline":
            raise UserError("only the offline labeller exists until the interpret branch lands")
        return OfflineLabeller(float(os.environ.get("INTERIM_LABEL_DELAY", "0")))
