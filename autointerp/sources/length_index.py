"""A file of per-document token counts, so a restarted process can skip to batch `i` at once.

Without it, resuming at batch `i` means tokenizing every document before it again (minutes on a
large corpus). The file is a plain array of little-endian int64 counts in stream order, appended as
the stream first tokenizes each document; a torn tail (crash mid-write) is cut off on load, and a
lost tail is simply recomputed. It is a cache, never the truth: the stream re-checks recorded
counts against the tokenizer before trusting the file, and discards it on any mismatch.
"""

from __future__ import annotations

import logging
import os
import sys
from array import array
from pathlib import Path

log = logging.getLogger(__name__)

_ITEM = 8


class LengthIndex:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[int]:
        """The recorded counts (a torn last record is cut off)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            log.warning("cannot read token length index %s (%s): ignoring it", self.path, e)
            return []
        whole = len(data) - len(data) % _ITEM
        counts = array("q")
        counts.frombytes(data[:whole])
        if sys.byteorder != "little":
            counts.byteswap()
        if any(c < 0 for c in counts):
            log.warning("token length index %s is corrupt: discarding it", self.path)
            self.discard()
            return []
        return counts.tolist()

    def append(self, expected_before: int, counts: list[int]) -> bool:
        """Append counts for documents `expected_before...`; False (and nothing written) when the
        file does not hold exactly `expected_before` records, e.g. after a discard."""
        if not counts:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                size = f.seek(0, os.SEEK_END)
                if size % _ITEM:
                    f.truncate(size - size % _ITEM)
                    size -= size % _ITEM
                if size != expected_before * _ITEM:
                    return False
                values = array("q", counts)
                if sys.byteorder != "little":
                    values.byteswap()
                f.write(values.tobytes())
        except OSError as e:
            log.warning("cannot write token length index %s (%s)", self.path, e)
            return False
        return True

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
