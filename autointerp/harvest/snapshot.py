"""A consistent copy of a harvester's state in host memory, taken between two updates.

A checkpoint written straight from the live tables holds the harvest for the whole write (73 s
at Pile shape on an H200). A snapshot holds it only for a copy: on CUDA, non-blocking copies
into pinned host buffers and one synchronize (about 25 GB/s); on a CPU, a memory copy. The
checkpoint is then written from the snapshot in the background while the harvest goes on.

The buffers are allocated once per pass (pinning tens of GiB takes seconds) and reused by every
checkpoint; `prepare` allocates them in a background thread when the pass starts, so that the
first checkpoint does not stall for it either. They need exactly as much host memory as the
tables, so `snapshot_refusal` says when that does not fit and the caller writes synchronously
instead. On CUDA they are ordinary host tensors pinned in place with `cudaHostRegister`, not
`pin_memory=True`: torch's pinned allocator rounds every block up to a power of two, which at
100k components x 50k tokens would pin 162.9 GiB for 96.3 GiB of state. Where registering fails
the buffers stay pageable: the copy is slower, never wrong (it is synchronised either way).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from autointerp.harvest.harvester import Harvester
from autointerp.harvest.payload import StateView, state_sections

log = logging.getLogger(__name__)

GIB = 2**30
HOST_MARGIN_BYTES = 2 * GIB
"""Host memory a snapshot leaves free beyond its own (the data loader, the page cache for the
write, finalize's working set), besides a tenth of the snapshot itself."""


def available_host_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def snapshot_bytes(harvester: Harvester) -> int:
    """Host memory a snapshot of `harvester` takes: its tables' own size, on any device."""
    return sum(t.nbytes for t in state_sections(harvester).values())


def pin_in_place(buffer: torch.Tensor) -> bool:
    """Page-lock `buffer`'s memory for fast device copies (`cudaHostRegister`); False where the
    driver refuses (then it stays pageable). Undo with `unpin` before the buffer is freed."""
    if buffer.nbytes == 0:
        return False
    try:
        cudart = torch.cuda.cudart()
        error = cudart.cudaHostRegister(buffer.data_ptr(), buffer.nbytes, 0)
    except (AttributeError, RuntimeError) as e:
        log.warning("snapshot buffers stay pageable (cudaHostRegister unavailable: %s)", e)
        return False
    code = int(getattr(error, "value", error))
    if code != 0:
        # Clear this thread's last CUDA error, or torch's next launch check would report it.
        clear = getattr(cudart, "cudaGetLastError", None)
        if clear is not None:
            clear()
        log.warning("snapshot buffers stay pageable (cudaHostRegister returned %d)", code)
        return False
    return True


def unpin(buffer: torch.Tensor) -> None:
    torch.cuda.cudart().cudaHostUnregister(buffer.data_ptr())


def snapshot_refusal(need: int, available: int | None) -> str | None:
    """Why a snapshot of `need` bytes must not be taken (None: it fits)."""
    if available is None:
        return "the available host memory is unknown (no /proc/meminfo)"
    keep = HOST_MARGIN_BYTES + need // 10
    if need + keep > available:
        return (
            f"a snapshot needs {need / GIB:.2f} GiB of host memory and {keep / GIB:.2f} GiB "
            f"must stay free, but only {available / GIB:.2f} GiB is available"
        )
    return None


class HostSnapshot:
    """Reusable host buffers for one copy of a harvester's tensors, and the copy into them."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: dict[str, torch.Tensor] = {}
        self._pinned: set[str] = set()
        """Names of the buffers registered with CUDA: unregistered before they are freed."""
        self._preparing: threading.Thread | None = None
        self._prepare_error: BaseException | None = None

    def prepare(self, harvester: Harvester) -> None:
        """Allocate (and on a CPU, touch) the buffers in a background thread."""
        shapes = {name: (t.shape, t.dtype) for name, t in state_sections(harvester).items()}

        def allocate() -> None:
            try:
                for name, (shape, dtype) in shapes.items():
                    self._allocate(name, shape, dtype)
            except BaseException as e:  # re-raised by `take`
                self._prepare_error = e

        self._preparing = threading.Thread(target=allocate, name="snapshot-buffers", daemon=True)
        self._preparing.start()

    def _allocate(self, name: str, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        # Touch every page now rather than during the first copy (which the harvest waits for).
        buffer = self._buffers[name] = torch.zeros(shape, dtype=dtype)
        if self.device.type == "cuda" and pin_in_place(buffer):
            self._pinned.add(name)
        return buffer

    def _drop(self, name: str) -> None:
        buffer = self._buffers.pop(name, None)
        if buffer is not None and name in self._pinned:
            self._pinned.discard(name)
            unpin(buffer)

    def wait_ready(self) -> None:
        """Wait for `prepare`'s allocation (raising its error)."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        if self._prepare_error is not None:
            error, self._prepare_error = self._prepare_error, None
            raise error

    def take(self, harvester: Harvester) -> StateView:
        """Copy the harvester's state into the buffers; returns once the copy is complete."""
        self.wait_ready()
        cuda = self.device.type == "cuda"
        sections = {}
        for name, live in state_sections(harvester).items():
            buffer = self._buffers.get(name)
            if buffer is None or buffer.shape != live.shape or buffer.dtype != live.dtype:
                self._drop(name)  # e.g. counts promoted to int64: free the old one
                buffer = self._allocate(name, live.shape, live.dtype)
            buffer.copy_(live, non_blocking=cuda)
            sections[name] = buffer
        if cuda:
            torch.cuda.synchronize(self.device)
        return StateView(harvester.state_meta(), sections)

    def release(self) -> None:
        """Free the buffers (a later `take` allocates them again)."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        self._prepare_error = None
        for name in list(self._buffers):
            self._drop(name)
