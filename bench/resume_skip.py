"""How long a restarted token stream takes to reach batch `i`, with and without the length index.

    PYTHONPATH=. python bench/resume_skip.py [--docs 200000]

A synthetic corpus (whitespace words) and a whitespace tokenizer stand in for the real ones; the
tokenizer is cheap here, so the "without index" figure is a lower bound for a real tokenizer.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from autointerp.sources.data import TokenStream
from autointerp.sources.documents import InMemoryDocuments
from autointerp.sources.length_index import LengthIndex


class HashTokenizer:
    name = "hash-words"
    eos_token_id = 0

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[1 + hash(w) % 4000 for w in t.split()] for t in texts]

    def decode(self, token_id: int) -> str:
        return str(token_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=512)
    args = parser.parse_args()
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    docs = [" ".join(rng.choices(words, k=rng.randint(20, 400))) for _ in range(args.docs)]
    tok = HashTokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        index = LengthIndex(Path(tmp) / "bench.lengths")

        def fresh(with_index: bool) -> TokenStream:
            documents = InMemoryDocuments(docs, 0, "bench")
            return TokenStream(
                documents, tok, pretokenized=False, length_index=index if with_index else None
            )

        t0 = time.perf_counter()
        n_batches = sum(1 for _ in fresh(True).batches(args.batch_size, args.context))
        full = time.perf_counter() - t0
        n_tokens = n_batches * args.batch_size * args.context
        start = int(n_batches * 0.9)
        timings = {}
        for with_index in (False, True):
            t0 = time.perf_counter()
            next(iter(fresh(with_index).batches(args.batch_size, args.context, start=start)))
            timings[with_index] = time.perf_counter() - t0
    print(f"corpus: {args.docs} docs, {n_tokens / 1e6:.1f}M tokens, {n_batches} batches")
    print(
        f"full pass (tokenize + pack + record index): {full:.2f} s "
        f"({n_tokens / full / 1e6:.2f}M tokens/s)"
    )
    print(
        f"first batch after restart at batch {start}: without index {timings[False]:.2f} s, "
        f"with index {timings[True]:.3f} s"
    )


if __name__ == "__main__":
    main()
