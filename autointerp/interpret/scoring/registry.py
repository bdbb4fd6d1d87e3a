"""The scorers by name, as `--scorers detection,fuzzing,intruder,simulation,output` names them."""

from __future__ import annotations

from autointerp.interpret.scoring.base import Scorer
from autointerp.interpret.scoring.detection import DetectionScorer
from autointerp.interpret.scoring.fuzzing import FuzzingScorer
from autointerp.interpret.scoring.intruder import IntruderScorer
from autointerp.interpret.scoring.output import OutputScorer
from autointerp.interpret.scoring.simulation import SimulationScorer

SCORERS: dict[str, type[Scorer]] = {
    "detection": DetectionScorer,
    "fuzzing": FuzzingScorer,
    "intruder": IntruderScorer,
    "simulation": SimulationScorer,
    "output": OutputScorer,
}
