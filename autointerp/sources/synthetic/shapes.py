"""The sizes of the synthetic source: one frozen record per `synthetic:<name>` spelling.

Kept free of torch so that the source-argument parser (`sources/paths.py`) can check a shape name
without importing it: building the CLI must stay fast. The two large shapes are the scales the
GPU benchmarks need (a SimpleStories run and a Pile-vocabulary run, SPEC "SPD facts"); `tiny` is
for tests and CPUs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SyntheticShape:
    """A Llama-like stack whose q/k/v/o/up/down maps are each decomposed into `c_per_module`
    rank-one components, plus the harvest sizes a run of it suggests."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    vocab_size: int
    max_context: int
    c_per_module: int
    batch_size: int
    """Suggested sequences per batch (`harvest_defaults`)."""
    n_batches: int
    """Suggested batches per harvest (`harvest_defaults`)."""
    calibration_sequences: int
    """Sequences of `max_context` tokens run at open time to place each gate's threshold."""

    @property
    def n_modules(self) -> int:
        return 6 * self.n_layers

    @property
    def n_components(self) -> int:
        return self.n_modules * self.c_per_module

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


SHAPES: dict[str, SyntheticShape] = {
    shape.name: shape
    for shape in (
        # A large SimpleStories run: 24 modules × 704 = 16,896 components, vocab 4,019.
        SyntheticShape(
            name="simplestories",
            n_layers=4,
            d_model=768,
            n_heads=12,
            d_mlp=3072,
            vocab_size=4019,
            max_context=512,
            c_per_module=704,
            batch_size=32,
            n_batches=200,
            calibration_sequences=16,
        ),
        # A Pile-vocabulary run: 24 modules × 1,664 = 39,936 components, vocab 50,277.
        SyntheticShape(
            name="pile",
            n_layers=4,
            d_model=768,
            n_heads=12,
            d_mlp=3072,
            vocab_size=50277,
            max_context=512,
            c_per_module=1664,
            batch_size=16,
            n_batches=200,
            calibration_sequences=16,
        ),
        # Tests and CPUs: 12 modules × 32 = 384 components, opens in milliseconds.
        SyntheticShape(
            name="tiny",
            n_layers=2,
            d_model=64,
            n_heads=4,
            d_mlp=256,
            vocab_size=300,
            max_context=64,
            c_per_module=32,
            batch_size=8,
            n_batches=20,
            calibration_sequences=128,
        ),
    )
}

DEFAULT_SHAPE = "simplestories"
"""What the bare spelling `synthetic` means."""
