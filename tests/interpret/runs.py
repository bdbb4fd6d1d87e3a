"""Build a finished-harvest run directory on disk for labelling tests."""

from __future__ import annotations

from pathlib import Path

from autointerp.files import encode_line, write_json_atomic
from autointerp.schemas import ArchitectureInfo, ComponentData
from autointerp.store import RunDir
from tests.interpret.samples import ARCH, component


def components(n: int, *, dead_every: int = 0) -> list[ComponentData]:
    """`n` components over 4 layers; every `dead_every`-th one never fired (0: none dead)."""
    out = []
    for i in range(n):
        dead = dead_every > 0 and i % dead_every == dead_every - 1
        comp = component(f"model.layers.{i % 4}.mlp.up_proj:{i}", firing_count=0 if dead else 50)
        if dead:
            comp.activation_examples = []
        out.append(comp)
    return out


def make_run(
    root: Path,
    comps: list[ComponentData],
    *,
    arch: ArchitectureInfo = ARCH,
    complete: bool = True,
) -> RunDir:
    run = RunDir(Path(root))
    run.ensure()
    write_json_atomic(run.config_path, {"architecture": arch, "batch_size": 8})
    run.components_path.write_bytes(b"".join(encode_line(c) for c in comps))
    if complete:
        write_json_atomic(run.summary_path, {"alive": len(comps), "dead": 0})
    return run
