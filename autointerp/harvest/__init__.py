"""Accumulate per-component statistics on the device, checkpoint them, finalize records."""

from autointerp.harvest.checkpoint import load_checkpoint, save_checkpoint
from autointerp.harvest.finalize import finalize
from autointerp.harvest.harvester import Harvester
from autointerp.harvest.memory import accumulator_bytes, check_fits
from autointerp.harvest.summary import summarize

__all__ = [
    "Harvester",
    "accumulator_bytes",
    "check_fits",
    "finalize",
    "load_checkpoint",
    "save_checkpoint",
    "summarize",
]
