"""The component index: an HTML shell, `data/meta.js`, and the rows in `data/rows-NNNN.js` shards.

The rows are JavaScript data files (a call with a JSON argument), not JSON fetched at run time:
a page opened from `file://` may not fetch(), but it may load scripts beside it. Shards follow
`results.jsonl`'s append order, so a label appended while `serve` runs lands in the last shard
and earlier shards keep their rows.
"""

from __future__ import annotations

import math

from autointerp.report.data import RunView, split_key
from autointerp.report.escape import js_data, page_name, visible
from autointerp.report.layout import document

SHARD_ROWS = 2000
"""Rows per data file: the first shard renders within tens of milliseconds at any run size."""

CONFIDENCE = {"low": 0, "medium": 1, "high": 2}


def shard_count(view: RunView) -> int:
    return math.ceil(len(view.labels) / SHARD_ROWS)


def _round(x: float | None, digits: int) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def meta(view: RunView, *, live: bool) -> dict[str, object]:
    labelled = view.labels.keys()
    return {
        "run": visible(view.run_id),
        "version": view.version,
        "live": live,
        "modules": [visible(m) for m in view.modules],
        "scorers": [visible(s) for s in view.scorers],
        "shards": shard_count(view),
        "labelled": len(view.labels),
        "alive": view.n_alive,
        "total": view.n_components,
        "dead": view.n_dead,
        "failed": len(set(view.failures) - set(labelled)),
        "phase": view.state.phase,
    }


def meta_js(view: RunView, *, live: bool) -> str:
    return f"AUTOINTERP_DATA.meta({js_data(meta(view, live=live))});\n"


def shard_js(view: RunView, shard: int) -> str | None:
    """Rows `[key, module, index, label, confidence, density, page, *scores]` of one shard."""
    if not 0 <= shard < shard_count(view):
        return None
    rank = {m: i for i, m in enumerate(view.modules)}
    scorers = [view.scores[s] for s in view.scorers]
    results = list(view.labels.values())[shard * SHARD_ROWS : (shard + 1) * SHARD_ROWS]
    rows = []
    for result in results:
        key = result.component_key
        c = view.components.get(key)
        module, index = (c.module, c.index) if c else split_key(key)
        scores = []
        for by_key in scorers:
            record = by_key.get(key)
            scores.append(_round(record.score, 4) if record else None)
        rows.append(
            [
                key,
                rank.get(module, -1),
                index,
                visible(result.label),
                CONFIDENCE.get(result.confidence, -1),
                _round(c.density, 4) if c else None,
                page_name(key),
                *scores,
            ]
        )
    return f"AUTOINTERP_DATA.rows({shard}, {js_data(rows)});\n"


BODY = """\
<h1>Components</h1>
<p class="summary" id="summary">Loading…</p>
<div class="controls" role="search">
  <input type="search" id="search" placeholder="Search labels or keys"
    aria-label="Search labels or keys" autofocus>
  <label>Module <select id="f-module"><option value="-1">all</option></select></label>
  <label>Confidence <select id="f-conf"><option value="-1">any</option>
    <option value="2">high</option><option value="1">medium</option>
    <option value="0">low</option></select></label>
  <label>Score <select id="f-scorer"><option value="-1">(choose a scorer)</option></select></label>
  <label>from <input type="number" id="f-lo" step="0.05" disabled></label>
  <label>to <input type="number" id="f-hi" step="0.05" disabled></label>
  <button type="button" id="f-clear">Clear</button>
  <span class="muted" id="count"></span>
</div>
<div class="table" id="table" role="table">
  <div class="head" id="head" role="row"></div>
  <div class="scroller" id="scroller"><div class="rows" id="rows"></div>
  <p class="empty" id="empty" hidden>No component matches.</p></div>
</div>
<noscript><p>The index needs JavaScript; every component also has its own page under
<code>components/</code>.</p></noscript>"""


def index_html(view: RunView) -> str:
    return document(
        f"{view.run_id}: components",
        BODY,
        run_id=view.run_id,
        scripts=("assets/index.js", "data/meta.js"),
    )
