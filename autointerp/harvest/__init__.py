"""Accumulate per-component statistics on the device, checkpoint them, finalize records."""

from autointerp.harvest.finalize import finalize
from autointerp.harvest.harvester import Harvester

__all__ = ["Harvester", "finalize"]
