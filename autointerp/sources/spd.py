"""`SPDSource`: an SPD run (local or downloaded from wandb) behind the Source protocol.

`step` runs the decomposed model under `torch.inference_mode()` with autocast explicitly disabled:
SPD's own harvest ran under bf16 autocast, which rounds CI values and probabilities; the harvest's
statistics must be computed from float32.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from autointerp.errors import UserError
from autointerp.schemas import ArchitectureInfo
from autointerp.sources.data import (
    DataSettings,
    TokenStream,
    build_token_stream,
    data_settings_from_config,
    length_index_for,
    open_documents,
)
from autointerp.sources.paths import CONFIG_FILENAME
from autointerp.sources.prefetch import prefetched
from autointerp.sources.spd_model import (
    count_layers,
    embedding_rows,
    import_spd,
    load_component_model,
    max_positions,
    module_layout,
)
from autointerp.sources.tokenizers import TextTokenizer, load_hf_tokenizer

KNOWN_DATASETS = {
    "SimpleStories/SimpleStories": "SimpleStories: short, simple synthetic English stories",
    "lennart-finke/SimpleStories": "SimpleStories: short, simple synthetic English stories",
    "roneneldan/TinyStories": "TinyStories: short synthetic stories for young children",
    "danbraunai/pile-uncopyrighted-tok": "The Pile (uncopyrighted subset): diverse web text",
}


class SPDSource:
    """A loaded ComponentModel plus the token stream of its training data."""

    def __init__(
        self,
        *,
        model: Any,
        sampling: Any,
        stream: TokenStream,
        tokenizer: TextTokenizer,
        settings: DataSettings,
        run_id: str,
        description: str,
        device: torch.device,
        config: dict[str, Any],
        checkpoint: Path,
    ) -> None:
        self.model = model
        self.sampling = sampling
        self.stream = stream
        self.tokenizer = tokenizer
        self.settings = settings
        self.run_id = run_id
        self.description = description
        self.device = device
        self.layout = module_layout(model)
        self.vocab_size = embedding_rows(model.target_model)
        self.harvest_defaults = {"context_length": settings.context_length}
        """Suggested harvest sizes (the daemon's options override them): the run's `max_seq_len`."""
        self.max_context = max_positions(model.target_model)
        paths = [p for p, _ in self.layout]
        counts = [c for _, c in self.layout]
        dataset_name = settings.dataset
        self.architecture = ArchitectureInfo(
            n_layers=count_layers(model.target_model, paths),
            c=counts[0] if len(set(counts)) == 1 else max(counts),
            model_class=str(config.get("pretrained_model_class") or type(model).__name__),
            dataset_name=dataset_name,
            dataset_description=KNOWN_DATASETS.get(dataset_name, settings.describe()),
            module_c=dict(self.layout),
        )
        self._fingerprint = {
            "source": description,
            "checkpoint": checkpoint.name,
            "checkpoint_bytes": str(checkpoint.stat().st_size),
            "config_sha256": _sha256(checkpoint.parent / CONFIG_FILENAME),
            "model_class": self.architecture.model_class,
            "dataset": settings.describe(),
            "tokenizer": tokenizer.name,
            "seed": str(settings.seed),
            "sampling": str(sampling),
            "layout_sha256": hashlib.sha256(repr(self.layout).encode()).hexdigest(),
        }

    def decode(self, token_id: int) -> str:
        return self.tokenizer.decode(token_id)

    def batches(
        self, batch_size: int, context_length: int, start: int = 0
    ) -> Iterator[torch.Tensor]:
        """The stream's batches, prepared in a background thread while the device steps."""
        return prefetched(lambda: self.stream.batches(batch_size, context_length, start))

    def step(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens.to(self.device)
        with torch.inference_mode(), _no_autocast(self.device):
            logits, cache = self.model(tokens, cache_type="input")
            ci = self.model.calc_causal_importances(
                pre_weight_acts=cache, sampling=self.sampling, detach_inputs=True
            ).lower_leaky
            ci_all = torch.cat([ci[path].float() for path, _ in self.layout], dim=-1)
            probs = torch.softmax(logits.float(), dim=-1)
        n_total = sum(c for _, c in self.layout)
        if ci_all.shape != (*tokens.shape, n_total):
            raise RuntimeError(f"CI shape {tuple(ci_all.shape)} != {(*tokens.shape, n_total)}")
        if probs.shape != (*tokens.shape, self.vocab_size):
            raise RuntimeError(
                f"output shape {tuple(probs.shape)} does not match the embedding's vocab "
                f"{self.vocab_size}"
            )
        return ci_all, probs

    def fingerprint(self) -> dict[str, str]:
        return dict(self._fingerprint)


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know: nothing can be autocast there
        return contextlib.nullcontext()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_run_config(path: Path) -> dict[str, Any]:
    """`final_config.yaml` as a dict (only the data fields are read here; SPD reads the rest)."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not an SPD config (expected a mapping)")
    return config


def open_spd_source(
    *,
    checkpoint: Path,
    run_id: str,
    description: str,
    device: torch.device,
    dataset: str | None = None,
    tokenizer: str | TextTokenizer | None = None,
    text_column: str | None = None,
    index_dir: Path | None = None,
) -> SPDSource:
    """Load the model through SPD and open its data stream. Blocking: call it off the event loop.

    `index_dir` holds the token length index that lets a restart skip to its batch at once.
    """
    import_spd()  # fail fast, before the (slow) tokenizer and dataset loading
    config = read_run_config(checkpoint.parent / CONFIG_FILENAME)
    tokenizer_name = tokenizer if isinstance(tokenizer, str) else None
    settings = data_settings_from_config(
        config, dataset=dataset, tokenizer=tokenizer_name, text_column=text_column
    )
    if tokenizer is None or isinstance(tokenizer, str):
        if not settings.tokenizer:
            raise UserError(
                "the run's config names no tokenizer (tokenizer_name): pass --tokenizer"
            )
        text_tokenizer: TextTokenizer = load_hf_tokenizer(settings.tokenizer)
    else:
        text_tokenizer = tokenizer
    index = None
    if index_dir is not None:
        index = length_index_for(settings, text_tokenizer.name, index_dir)
    stream = build_token_stream(open_documents(settings), text_tokenizer, index)
    model, sampling = load_component_model(checkpoint)
    model.to(device)
    model.eval()
    return SPDSource(
        model=model,
        sampling=sampling,
        stream=stream,
        tokenizer=text_tokenizer,
        settings=settings,
        run_id=run_id,
        description=description,
        device=device,
        config=config,
        checkpoint=checkpoint,
    )
