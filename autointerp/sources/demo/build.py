"""`python -m autointerp.sources.demo.build`: train the demo LM, decompose it, check, ship.

Deterministic: every random draw comes from a seeded generator and the build runs on one CPU
thread by default, so running it again on the same machine rewrites identical weights. Takes a
few minutes on a laptop CPU. Exits 1 (after writing) if a quality bar is missed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from autointerp.sources.demo.model import LMConfig
from autointerp.sources.demo.quality import QualityReport, measure_quality
from autointerp.sources.demo.tokenizer import WordTokenizer
from autointerp.sources.demo.train import (
    LMTrainConfig,
    Log,
    SPDTrainConfig,
    train_decomposition,
    train_lm,
)
from autointerp.sources.demo.weights_file import WEIGHTS_DIR, save_quality, save_weights


@dataclass(frozen=True)
class BuildConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 256
    max_context: int = 64
    lm: LMTrainConfig = field(default_factory=LMTrainConfig)
    spd: SPDTrainConfig = field(default_factory=SPDTrainConfig)
    eval_batches: int = 8


TINY = BuildConfig(
    d_model=16,
    n_heads=2,
    d_mlp=32,
    max_context=16,
    lm=LMTrainConfig(steps=3, batch_size=4, warmup=1),
    spd=SPDTrainConfig(steps=3, batch_size=4, warmup=1, attention_c=4, mlp_c=8),
    eval_batches=1,
)
"""A seconds-long build for testing that the build is deterministic."""


def build(config: BuildConfig, out_dir: Path, log: Log = print) -> QualityReport:
    started = time.monotonic()
    tokenizer = WordTokenizer()
    lm_config = LMConfig(
        vocab_size=len(tokenizer),
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        d_mlp=config.d_mlp,
        max_context=config.max_context,
    )
    lm = train_lm(tokenizer, lm_config, config.lm, log)
    model = train_decomposition(lm, tokenizer, config.spd, log)
    report = measure_quality(model, tokenizer, n_batches=config.eval_batches)
    save_weights(model, tokenizer, out_dir)
    save_quality(
        {
            "quality": report.to_dict(),
            "bars_missed": report.failures(),
            "build_config": asdict(config),
            "build_seconds": round(time.monotonic() - started, 1),
            "torch": torch.__version__,
        },
        out_dir,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autointerp.sources.demo.build")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to write weights")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke build")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: reproducible)")
    parser.add_argument("--lm-steps", type=int, help="override the LM training steps")
    parser.add_argument("--spd-steps", type=int, help="override the decomposition steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TINY if args.tiny else BuildConfig()
    if args.lm_steps is not None:
        config = replace(config, lm=replace(config.lm, steps=args.lm_steps))
    if args.spd_steps is not None:
        config = replace(config, spd=replace(config.spd, steps=args.spd_steps))
    report = build(config, args.out, log=lambda line: print(line, flush=True))
    print("\n".join(report.lines()))
    missed = report.failures()
    print(f"weights written to {args.out}")
    print("quality bars: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
