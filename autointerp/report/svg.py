"""Small inline SVG plots (bar charts, histograms, intervals): no plotting library, no script.

Every piece of text in a plot goes through `escape.text`, like the rest of the page.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from autointerp.report.escape import text


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def bars(
    counts: Sequence[int],
    labels: Sequence[str],
    *,
    title: str,
    width: int = 300,
    height: int = 96,
    tick_every: int = 1,
    alt: bool = False,
) -> str:
    """Vertical bars with a label under every `tick_every`-th bar; hover shows each count."""
    pad_left, pad_bottom, pad_top = 4, 16, 4
    n = max(1, len(counts))
    slot = (width - pad_left) / n
    top = max(counts, default=0) or 1
    plot_h = height - pad_bottom - pad_top
    parts = [
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{text(title)}"><title>{text(title)}</title>',
        f'<line class="axis" x1="{pad_left}" x2="{width}" y1="{height - pad_bottom}" '
        f'y2="{height - pad_bottom}"/>',
    ]
    cls = "bar alt" if alt else "bar"
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        h = plot_h * count / top
        x = pad_left + i * slot
        parts.append(
            f'<rect class="{cls}" x="{_n(x + 1)}" y="{_n(height - pad_bottom - h)}" '
            f'width="{_n(max(1.0, slot - 2))}" height="{_n(h)}"><title>{text(label)}: {count:,}'
            "</title></rect>"
        )
        if i % tick_every == 0:
            parts.append(
                f'<text x="{_n(x + slot / 2)}" y="{height - 4}" text-anchor="middle">'
                f"{text(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    values: Sequence[float],
    edges: Sequence[float],
    *,
    title: str,
    fmt: str = "{:.2g}",
    alt: bool = False,
    width: int = 300,
    height: int = 96,
) -> str:
    """Counts of `values` in `edges[i] <= v < edges[i+1]` (the last bin closed)."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        i = bisect.bisect_right(edges, v) - 1
        if i == len(counts) and v == edges[-1]:
            i -= 1
        if 0 <= i < len(counts):
            counts[i] += 1
    labels = [fmt.format(e) for e in edges[:-1]]
    ticks = max(1, len(counts) // (4 if width >= 200 else 2))
    return bars(counts, labels, title=title, tick_every=ticks, alt=alt, width=width, height=height)


def log_edges(lo: float, hi: float, per_decade: int = 2) -> list[float]:
    """Log-spaced bin edges covering [lo, hi] (both > 0)."""
    start = math.floor(math.log10(lo) * per_decade)
    stop = math.ceil(math.log10(hi) * per_decade)
    stop = max(stop, start + 1)
    return [10 ** (k / per_decade) for k in range(start, stop + 1)]


def interval(
    score: float | None,
    low: float | None,
    high: float | None,
    *,
    lo: float = 0.0,
    hi: float = 1.0,
    width: int = 160,
) -> str:
    """A dot for the score and a whisker for its interval on a [lo, hi] axis."""
    height = 14

    def x(v: float) -> str:
        return _n(4 + (width - 8) * (min(hi, max(lo, v)) - lo) / (hi - lo))

    parts = [
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'aria-hidden="true">',
        f'<line class="axis" x1="4" x2="{width - 4}" y1="7" y2="7"/>',
    ]
    if low is not None and high is not None:
        parts.append(f'<line class="whisker" x1="{x(low)}" x2="{x(high)}" y1="7" y2="7"/>')
    if score is not None:
        parts.append(f'<circle class="dot" cx="{x(score)}" cy="7" r="3.5"/>')
    parts.append("</svg>")
    return "".join(parts)
