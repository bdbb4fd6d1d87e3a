"""`<run>/progress.json`: the dashboard's position, replaced every few seconds for `status`.

Checkpoints come minutes apart, so `autointerp status` from another shell would otherwise show
"0/2000 batches" long into a run. This thread copies the live view into a small file
(atomically replaced). Nothing recovers from it; a write that fails (the run directory was
moved away) is skipped, never retried into a recreated directory.
"""

from __future__ import annotations

import logging
import os
import threading

from autointerp.daemon.progress import SharedProgress, View
from autointerp.schemas import LiveProgress
from autointerp.store import RunDir, write_live_progress

log = logging.getLogger(__name__)

WRITE_EVERY_S = 2.0


def live_progress(view: View) -> LiveProgress:
    lab = view.labelling
    return LiveProgress(
        pid=os.getpid(),
        updated_at=view.now,
        phase=view.phase,
        batches_done=view.batches_done,
        n_batches=view.n_batches,
        n_tokens=view.n_tokens,
        tokens_per_second=view.tokens_per_second,
        components_written=view.components_written,
        n_components=view.n_components,
        labelled=view.labelled,
        failed=view.failed,
        in_flight=lab.in_flight if lab else 0,
        cost_usd=view.cost_usd,
    )


class LiveProgressFile:
    def __init__(self, run: RunDir, progress: SharedProgress, every_s: float = WRITE_EVERY_S):
        self.run = run
        self.progress = progress
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress-file", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        self._write()
        while not self._stop.wait(self.every_s):
            self._write()

    def _write(self) -> None:
        try:
            write_live_progress(self.run, live_progress(self.progress.snapshot()))
        except OSError as e:
            log.debug("progress.json not written: %s", e)
