"""Logging: the run's `autointerp.log` gets everything; the terminal gets what fits beside the UI.

Only the `autointerp` logger tree is routed, so third-party request logs never reach the file.
Nothing logged here ever contains the API key: it is read from the environment by the SDK only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

ROOT = "autointerp"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _NoTraceback(logging.Formatter):
    """Terminal lines carry the message only; the traceback goes to the log file."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class FileLog:
    """The run directory's log file handler, removed again on close."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler

    def close(self) -> None:
        logging.getLogger(ROOT).removeHandler(self.handler)
        self.handler.close()


def setup_console_log(console: Console, *, plain: bool) -> None:
    """Warnings above the live dashboard (through its console, so they do not tear it); in plain
    mode (journald, pipes) info lines on stderr."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_autointerp_console", False):
            logger.removeHandler(handler)
    if plain:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_NoTraceback(FORMAT))
        handler.setLevel(logging.INFO)
    else:
        handler = RichHandler(console=console, markup=False, show_path=False)
        handler.setFormatter(_NoTraceback("%(message)s"))
        handler.setLevel(logging.WARNING)
    handler._autointerp_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


def attach_file_log(path: Path) -> FileLog:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    logging.getLogger(ROOT).addHandler(handler)
    return FileLog(handler)


def flush_all() -> None:
    """Before an immediate exit: push buffered log lines to the file."""
    for handler in logging.getLogger(ROOT).handlers:
        handler.flush()
