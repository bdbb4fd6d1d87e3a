"""DemoSource: the Source protocol over the embedded decomposed story model."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from autointerp.errors import UserError
from autointerp.schemas import ArchitectureInfo
from autointerp.sources.demo.decomposition import DecomposedLM
from autointerp.sources.demo.stream import story_batches
from autointerp.sources.demo.tokenizer import WordTokenizer

HARVEST_STREAM = "harvest"
"""The generated stream the demo harvests: never used for training or held-out evaluation."""

DATASET_DESCRIPTION = (
    "Short generated children's stories from a small fixed grammar: characters (girls' and "
    "boys' names) introduced with 'named', animals, colours before objects, places after "
    "'in the' / 'to the', feelings after 'was very' / 'felt', numbers before plural objects, "
    "and dialogue between quotes (said, asked, shouted, whispered). Tokens are whole words with "
    "a leading space, punctuation, a plural 's' and an end-of-story token '<eos>'."
)


class DemoSource:
    """A 2-layer story LM whose attention and MLP weights are decomposed into gated components."""

    run_id = "demo"
    description = "demo (embedded tiny story model)"

    def __init__(
        self,
        model: DecomposedLM,
        tokenizer: WordTokenizer,
        device: torch.device,
        weights_sha256: str,
        harvest_defaults: dict[str, int],
    ) -> None:
        self.device = device
        self._model = model.to(device)
        self._tokenizer = tokenizer
        self._weights_sha256 = weights_sha256
        self.harvest_defaults = dict(harvest_defaults)
        self.layout: list[tuple[str, int]] = list(model.module_c.items())
        self.vocab_size = model.target.embed_tokens.num_embeddings
        self.max_context: int = model.target.cfg.max_context
        counts = [c for _, c in self.layout]
        self.architecture = ArchitectureInfo(
            n_layers=model.target.cfg.n_layers,
            c=max(counts),
            model_class="DemoStoryLM",
            dataset_name="generated simple stories",
            dataset_description=DATASET_DESCRIPTION,
            module_c=dict(self.layout),
        )

    def decode(self, token_id: int) -> str:
        return self._tokenizer.decode(token_id)

    def batches(
        self, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        """The generated harvest stream (endless, CPU int64), from batch `start` on."""
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, not {batch_size}")
        if not 1 <= context_length <= self.max_context:
            raise UserError(
                f"the demo model reads at most {self.max_context} tokens: use a context length "
                f"from 1 to {self.max_context}, not {context_length}"
            )
        if start < 0:
            raise UserError(f"the start batch must be 0 or more, not {start}")
        return story_batches(self._tokenizer, HARVEST_STREAM, batch_size, context_length, start)

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            logits, inputs = self._model.forward_with_inputs(tokens.to(self.device))
            gates = self._model.gates(inputs)
            ci = torch.cat([gates[path].clamp(0.0, 1.0) for path, _ in self.layout], dim=-1)
            return ci.float(), logits.float().softmax(dim=-1)

    def fingerprint(self) -> dict[str, str]:
        return {
            "source": "demo",
            "model_class": self.architecture.model_class,
            "weights_sha256": self._weights_sha256,
            "stream": HARVEST_STREAM,
            "vocab_size": str(self.vocab_size),
        }
