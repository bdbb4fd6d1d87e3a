"""SIGINT/SIGTERM: stop gracefully the first time, exit at once (130) the second; ignore SIGHUP.

A graceful stop lets in-flight requests finish (bounded by the grace period) and checkpoints the
harvest. The immediate exit is still consistent: every append is fsynced before it counts and
checkpoints are replaced atomically, so the next start resumes from what is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


class Shutdown:
    """Shared by the event loop (an asyncio event) and the harvest thread (a threading event)."""

    def __init__(self, on_abort: Callable[[], None] = lambda: None) -> None:
        self.event = threading.Event()
        self.reason: str | None = None
        self._on_abort = on_abort
        self._callbacks: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_sighup: signal.Handlers | int | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        self._previous_sighup = signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def uninstall(self) -> None:
        if self._loop is not None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.remove_signal_handler(sig)
            self._loop = None
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None

    def set_abort(self, on_abort: Callable[[], None]) -> None:
        self._on_abort = on_abort

    def on_request(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the loop) when a stop is requested; at once if already requested."""
        if self.event.is_set():
            callback()
        else:
            self._callbacks.append(callback)

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, reason: str) -> None:
        """Begin a graceful stop (idempotent)."""
        if self.event.is_set():
            return
        self.reason = reason
        self.event.set()
        for callback in self._callbacks:
            callback()

    def _on_signal(self, name: str) -> None:
        if self.event.is_set():
            log.warning("second %s: exiting now (everything written so far is on disk)", name)
            try:
                self._on_abort()
            finally:
                os._exit(EXIT_INTERRUPTED)
        log.warning("%s: finishing in-flight work, checkpointing, then exiting", name)
        self.request(name)
