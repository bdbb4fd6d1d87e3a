"""SyntheticSource: the Source protocol over a random SPD-shaped model, made at open time.

Nothing is downloaded or read from disk: the model's weights are drawn on the device, the gates
are calibrated on a few seeded batches, and the data is a seeded Zipf token stream. It exists so
that the whole daemon (forward, CI, update, checkpoint, finalize) can be timed at the scale of real
SPD runs on any machine with a GPU, without SPD, its checkpoints or its datasets.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autointerp.errors import UserError
from autointerp.schemas import ArchitectureInfo
from autointerp.sources.synthetic.gates import Gates
from autointerp.sources.synthetic.model import SyntheticLlama
from autointerp.sources.synthetic.rates import target_rates
from autointerp.sources.synthetic.shapes import SyntheticShape
from autointerp.sources.synthetic.tokens import (
    CALIBRATION_STREAM,
    HARVEST_STREAM,
    ZipfStream,
    token_name,
)

RECIPE_VERSION = "1"
"""Bumped whenever the weights, gates or stream a shape and seed give change, so that a harvest
is never resumed on a different model."""

DATASET_DESCRIPTION = (
    "Synthetic data: independent token ids drawn from a Zipf distribution over the vocabulary "
    "(token tokN is the N-th most frequent); there is no text, so labels describe token ids."
)


class SyntheticSource:
    """A random Llama-like model with rank-one components and calibrated causal-importance gates."""

    def __init__(self, shape: SyntheticShape, device: torch.device, seed: int = 0) -> None:
        self.shape = shape
        self.seed = seed
        self.device = torch.device(device)
        self.run_id = f"synthetic-{shape.name}"
        self.vocab_size = shape.vocab_size
        self.max_context: int | None = shape.max_context
        self.harvest_defaults = {
            "n_batches": shape.n_batches,
            "batch_size": shape.batch_size,
            "context_length": shape.max_context,
        }
        self._stream = ZipfStream(shape.vocab_size, seed)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            self._model = SyntheticLlama(shape, self.device, seed)
            self.layout: list[tuple[str, int]] = [
                (path, shape.c_per_module) for path in self._model.module_paths
            ]
            calibration = self._stream.batch(
                CALIBRATION_STREAM, 0, shape.calibration_sequences, shape.max_context
            )
            _, inputs = self._model.forward(calibration.to(self.device), logits=False)
            self._gates = Gates.calibrate(
                self.layout, self._model.v, inputs, target_rates(self.layout, seed)
            )
            del inputs
        self._gates_sha256 = self._gates.digest()
        self.description = (
            f"synthetic:{shape.name} (random SPD-shaped Llama, {shape.n_components:,} components)"
        )
        self.architecture = ArchitectureInfo(
            n_layers=shape.n_layers,
            c=shape.c_per_module,
            model_class="SyntheticLlama",
            dataset_name="synthetic Zipf tokens",
            dataset_description=DATASET_DESCRIPTION,
            module_c=dict(self.layout),
        )

    def decode(self, token_id: int) -> str:
        return token_name(token_id)

    def batches(
        self, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        """The endless harvest stream (CPU int64), from batch `start` on."""
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, not {batch_size}")
        if not 1 <= context_length <= self.shape.max_context:
            raise UserError(
                f"the synthetic model reads at most {self.shape.max_context} tokens: use a "
                f"context length from 1 to {self.shape.max_context}, not {context_length}"
            )
        if start < 0:
            raise UserError(f"the start batch must be 0 or more, not {start}")
        return self._stream.batches(HARVEST_STREAM, batch_size, context_length, start)

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            b, s = tokens.shape
            logits, inputs = self._model.forward(tokens.to(self.device))
            assert logits is not None
            ci = self._gates.ci(inputs).view(b, s, -1)
            return ci, logits.softmax(dim=-1)

    def fingerprint(self) -> dict[str, str]:
        return {
            "source": "synthetic",
            "shape": self.shape.name,
            "seed": str(self.seed),
            "recipe": RECIPE_VERSION,
            "weights_drawn_on": self.device.type,
            "torch": str(torch.__version__),
            "gates_sha256": self._gates_sha256,
            "vocab_size": str(self.vocab_size),
        }
