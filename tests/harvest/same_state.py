"""Bit-for-bit equality of two harvesters' states (tables, examples, generator, scalars)."""

from __future__ import annotations

import torch

from autointerp.harvest.harvester import Harvester


def _bits(t: torch.Tensor) -> torch.Tensor:
    """Integers with the tensor's bits: equality then tells -0.0 from 0.0 and compares NaNs."""
    t = t.detach().cpu().contiguous()
    if t.dtype.is_floating_point:
        return t.view({4: torch.int32, 8: torch.int64}[t.dtype.itemsize])
    return t


def state_differences(a: Harvester, b: Harvester) -> list[str]:
    """What differs between the states of `a` and `b` (empty: identical)."""
    out = []
    meta_a, meta_b = a.state_meta(), b.state_meta()
    for name in ("generator_state", "negative_generator_state", "hard_negative_generator_state"):
        if not torch.equal(meta_a.pop(name), meta_b.pop(name)):
            out.append(name.replace("_", " "))
    if meta_a != meta_b:
        out.append(f"scalars: {meta_a} != {meta_b}")
    pairs = [(f"tables/{k}", t, b.state_tables()[k]) for k, t in a.state_tables().items()]
    pairs += [
        (f"examples/{k}", t, b.examples.tensors()[k]) for k, t in a.examples.tensors().items()
    ]
    pairs += [
        (f"negatives/{k}", t, b.negatives.tensors()[k]) for k, t in a.negatives.tensors().items()
    ]
    pairs += [
        (f"hard_negatives/{k}", t, b.hard_negatives.tensors()[k])
        for k, t in a.hard_negatives.tensors().items()
    ]
    for name, x, y in pairs:
        if x.dtype != y.dtype or x.shape != y.shape:
            out.append(f"{name}: {x.dtype} {tuple(x.shape)} != {y.dtype} {tuple(y.shape)}")
        elif not torch.equal(_bits(x), _bits(y)):
            out.append(f"{name}: values differ")
    return out


def assert_same_state(a: Harvester, b: Harvester) -> None:
    differences = state_differences(a, b)
    assert not differences, differences
