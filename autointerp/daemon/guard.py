"""Notice when the run directory is removed or replaced under a running daemon.

The run lock guards a directory by its lock file; if someone deletes or moves the directory, a
new daemon can lock the new one while this one still writes by path, and both would append to
the same files. So the writer checks, before each checkpoint and before finalize, that the lock
file at the path is still the one it locked, and stops with an error otherwise.
"""

from __future__ import annotations

import os

from autointerp.store import RunDir


class RunDirGuard:
    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._identity = self._current()

    def _current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.run.lock_path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        """Raise if the run directory this daemon locked is no longer at its path."""
        if self._current() != self._identity:
            raise RuntimeError(
                f"{self.run.root} was removed or replaced while this daemon was running; "
                "stopping so that two daemons never write the same files (start it again to "
                "continue from what is in the directory now)"
            )
