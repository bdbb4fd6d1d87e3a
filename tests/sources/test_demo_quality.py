"""The SHIPPED demo weights meet the quality bars on freshly generated held-out stories."""

from __future__ import annotations

from autointerp.sources.demo.quality import measure_quality
from autointerp.sources.demo.weights_file import load_weights


def test_shipped_weights_meet_the_quality_bars() -> None:
    model, tokenizer = load_weights()
    report = measure_quality(model, tokenizer, n_batches=4, batch_size=32, stream="test-heldout")
    assert report.n_tokens == 4 * 32 * model.target.cfg.max_context
    assert report.failures() == [], "\n".join(report.lines())
    assert report.n_alive >= 100, "the demo should give the labeller plenty to label"
