"""The daemon's and `autointerp interpret`'s settings, built once at the CLI edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autointerp.interpret.options import LabellingOptions

if TYPE_CHECKING:  # importing the harvest package imports torch: not needed to build options
    from autointerp.harvest.config import HarvestOptions
    from autointerp.sources.open import SourceOptions

DEFAULT_STATUS_EVERY_S = 30.0
DEFAULT_GRACE_PERIOD_S = 30.0


@dataclass(frozen=True)
class DisplayOptions:
    plain: bool = False
    """Plain status lines instead of the live dashboard (also whenever stdout is no terminal)."""
    status_every_s: float = DEFAULT_STATUS_EVERY_S
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S
    """How long requests in flight may take to finish after SIGINT/SIGTERM."""


@dataclass(frozen=True)
class DaemonOptions:
    source: SourceOptions
    data_dir: Path
    harvest: HarvestOptions
    labelling: LabellingOptions | None = field(default_factory=LabellingOptions)
    """None: harvest only."""
    display: DisplayOptions = field(default_factory=DisplayOptions)
    cpu_threads: int | None = None
    """torch's CPU threads for a CPU harvest (None: chosen from the machine's idle cores)."""


@dataclass(frozen=True)
class InterpretOptions:
    run: str
    """A run directory, or a run id under `data_dir`."""
    data_dir: Path
    labelling: LabellingOptions = field(default_factory=LabellingOptions)
    display: DisplayOptions = field(default_factory=DisplayOptions)
