"""Accumulate per-component statistics on the device, checkpoint them, finalize records.

`HarvestPass` runs one harvest of a run directory (resume → accumulate → checkpoint → finalize);
`harvest_config` and `reconcile_config` (in `config.py`) decide and guard what it computes.
"""

from autointerp.harvest.checkpoint import load_checkpoint, save_checkpoint
from autointerp.harvest.finalize import finalize
from autointerp.harvest.harvest_pass import HarvestPass, HarvestProgress
from autointerp.harvest.harvester import Harvester
from autointerp.harvest.memory import accumulator_bytes, check_fits
from autointerp.harvest.summary import summarize

__all__ = [
    "HarvestPass",
    "HarvestProgress",
    "Harvester",
    "accumulator_bytes",
    "check_fits",
    "finalize",
    "load_checkpoint",
    "save_checkpoint",
    "summarize",
]
