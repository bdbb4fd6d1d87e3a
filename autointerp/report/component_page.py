"""One component's page: its label, scores, examples, token statistics, neighbours and prompt.

Rendered on the server side (plain HTML, no script), from the run's records as they are now.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from autointerp.report import svg
from autointerp.report.data import RunView, split_key
from autointerp.report.escape import attr, page_name, text
from autointerp.report.layout import document, who
from autointerp.report.sent_prompt import rebuild
from autointerp.schemas import (
    PAD_TOKEN,
    ActivationExample,
    ComponentData,
    InterpretationResult,
    ScoreRecord,
    TokenStats,
)

SCORE_AXES = {"simulation": (-1.0, 1.0)}
"""Scorers whose figure is a correlation; the others are accuracies in [0, 1]."""


def _num(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return f"{x * 100:.3g}%"


def _shade(ci: float) -> int:
    """CI in (0, 1] -> shade class 1..10 (0: no shading)."""
    if not ci > 0:
        return 0
    return max(1, min(10, math.ceil(min(ci, 1.0) * 10)))


def window(example: ActivationExample) -> str:
    """The tokens of one window, each shaded by its CI, the firing token outlined."""
    out = []
    for i, token in enumerate(example.tokens):
        ci = example.ci_values[i] if i < len(example.ci_values) else 0.0
        classes = []
        shade = _shade(ci)
        if shade:
            classes.append(f"c{shade}")
        if i == example.active_pos:
            classes.append("fire")
        if token == PAD_TOKEN:
            classes.append("pad")
        if i == example.active_pos:  # the exact CI on hover; others show it by their shade
            out.append(f'<i class="{" ".join(classes)}" title="CI {ci:.3g}">{text(token)}</i>')
        elif classes:
            out.append(f'<i class="{" ".join(classes)}">{text(token)}</i>')
        else:
            out.append(text(token))
    return "".join(out)


def windows(examples: Sequence[ActivationExample], *, ci_column: bool = True) -> str:
    if not examples:
        return '<p class="note">None.</p>'
    items = []
    for ex in examples:
        ci = f'<span class="ci">{_num(ex.active_ci)}</span>' if ci_column else ""
        items.append(f'<li>{ci}<span class="window">{window(ex)}</span></li>')
    return '<ol class="windows">' + "".join(items) + "</ol>"


def _legend() -> str:
    cells = "".join(f'<span class="c{k}">{k / 10:.1f}</span>' for k in range(1, 11))
    return (
        f'<p class="note legend">Shading is each token\'s CI: {cells}; the firing token is '
        "outlined. The number on the left is the firing token's CI.</p>"
    )


def _token_table(stats: TokenStats, caption: str) -> str:
    columns = [
        ("precision", stats.top_precision),
        ("recall", stats.top_recall),
        ("PMI", stats.top_pmi),
    ]
    depth = max((len(rows) for _, rows in columns), default=0)
    if depth == 0:
        return f'<div><h3>{text(caption)}</h3><p class="note">No statistics.</p></div>'
    head = "".join(f'<th>token</th><th class="num">{name}</th>' for name, _ in columns)
    body = []
    for i in range(depth):
        cells = []
        for _, rows in columns:
            if i < len(rows):
                token, value = rows[i]
                cells.append(f'<td><code class="tok">{text(token)}</code></td>')
                cells.append(f'<td class="num">{_num(value)}</td>')
            else:
                cells.append("<td></td><td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div><h3>{text(caption)}</h3><table class="data"><tr>{head}</tr>'
        + "".join(body)
        + "</table></div>"
    )


def _neighbours(view: RunView, data: ComponentData) -> str:
    corr = data.correlations
    groups = [
        ("fire with it most often (precision)", corr.precision),
        ("it fires with most often (recall)", corr.recall),
        ("most related (PMI)", corr.pmi),
        ("least related (lowest PMI)", corr.bottom_pmi),
    ]
    out = []
    for caption, rows in groups:
        if not rows:
            continue
        items = []
        for key, value in rows:
            label = view.labels.get(key)
            name = text(key)
            link = f'<a href="{page_name(key)}">{name}</a>' if view.has_page(key) else name
            shown = f' <span class="muted">{text(label.label)}</span>' if label else ""
            items.append(f'<tr><td class="num">{_num(value)}</td><td>{link}{shown}</td></tr>')
        out.append(
            f'<div><h3>Components that {caption}</h3><table class="data">'
            + "".join(items)
            + "</table></div>"
        )
    return '<div class="cols">' + "".join(out) + "</div>" if out else '<p class="note">None.</p>'


def _label_section(view: RunView, key: str, result: InterpretationResult | None) -> str:
    if result is None:
        failure = view.failures.get(key)
        if failure is not None:
            return (
                '<p class="label-big muted">Not labelled: the labeller failed</p>'
                f'<p class="reasoning">{text(failure.reason, keep_newlines=True)} '
                f"({failure.attempts} attempts)</p>"
            )
        return '<p class="label-big muted">Not labelled yet</p>'
    facts = []
    input_label = getattr(result, "input_label", "")
    output_label = getattr(result, "output_label", "")
    if input_label:
        facts.append(("Responds to (input)", text(input_label)))
    if output_label:
        facts.append(("Does when it fires (output)", text(output_label)))
    facts.append(
        (
            "Confidence",
            f'<span class="chip {text(result.confidence)}">{text(result.confidence)}</span>',
        )
    )
    by = who(result.labeller, result.model)
    version = getattr(result, "prompt", "")
    if version:
        by += f" · prompt {version}"
    facts.append(("Labelled by", text(by)))
    cost = f"${result.cost_usd:.5f}" if result.cost_known else "unknown (model price unknown)"
    facts.append(
        (
            "Cost",
            f"{text(cost)} · {result.input_tokens:,} input + {result.output_tokens:,} "
            "output tokens",
        )
    )
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return (
        f'<p class="label-big" id="label">{text(result.label)}</p>'
        f'<dl class="facts">{dl}</dl>'
        f'<h3>Reasoning</h3><p class="reasoning" id="reasoning">'
        f"{text(result.reasoning, keep_newlines=True)}</p>"
    )


def _scores(view: RunView, key: str) -> str:
    records: list[ScoreRecord] = [
        view.scores[s][key] for s in view.scorers if key in view.scores[s]
    ]
    if not records:
        return '<p class="note">Not scored (run <code>autointerp score</code> on the run).</p>'
    rows = []
    for r in records:
        lo, hi = SCORE_AXES.get(r.scorer, (0.0, 1.0))
        interval = f"[{_num(r.ci_low)}, {_num(r.ci_high)}]" if r.ci_low is not None else "–"
        metrics = ", ".join(
            f"{text(name)} {_num(value)}" for name, value in sorted(r.metrics.items())
        )
        side = getattr(r, "side", "")
        rows.append(
            f"<tr><td>{text(r.scorer)}</td><td>{text(side) or '–'}</td>"
            f'<td class="num">{_num(r.score)}</td><td class="num">{interval}</td>'
            f"<td>{svg.interval(r.score, r.ci_low, r.ci_high, lo=lo, hi=hi)}</td>"
            f'<td class="num">{r.n}</td><td class="num">{r.n_errors}</td>'
            f"<td>{text(who(r.answerer, r.model))}</td>"
            f'<td class="note">{metrics}</td></tr>'
        )
    return (
        '<table class="data" id="scores"><tr><th>scorer</th><th>side</th>'
        '<th class="num">score</th><th class="num">95% interval</th><th></th>'
        '<th class="num">n</th><th class="num">errors</th><th>answered by</th>'
        "<th>other figures</th></tr>" + "".join(rows) + "</table>"
        '<p class="note">Detection, fuzzing and output: balanced accuracy; intruder: accuracy '
        "(chance 0.2); simulation: correlation with the true CI (axis −1 to 1). Which held-out "
        "window each answer was about is not recorded, only these totals.</p>"
    )


def _heldout(view: RunView, key: str) -> str:
    held = view.heldout(key)
    if held is None:
        return '<p class="note">This run has no held-out windows for this component.</p>'
    groups = [
        ("Held-out firing windows", held.activating, True),
        ("Held-out silent windows (it fires nowhere in them)", held.non_activating, False),
        (
            "Hard silent windows (its usual partners fire, it does not)",
            getattr(held, "hard_non_activating", []),
            False,
        ),
    ]
    out = []
    for caption, examples, firing in groups:
        if not examples and caption.startswith("Hard"):
            continue
        out.append(
            f"<details><summary>{caption} ({len(examples)})</summary>"
            f"{windows(examples, ci_column=firing)}</details>"
        )
    return "".join(out)


def _prompt(view: RunView, data: ComponentData, result: InterpretationResult | None) -> str:
    if view.config is None:
        return '<p class="note">No harvest config: the prompt cannot be rebuilt.</p>'
    try:
        prompt = rebuild(data, view.config.architecture, result)
    except Exception as e:  # a prompt version this code does not know: say so, show the rest
        return f'<p class="note">The prompt could not be rebuilt: {text(e)}</p>'
    version = f" ({text(prompt.version)})" if prompt.version else ""
    if prompt.sent:
        summary = f"The prompt sent to the labeller{version}"
    else:
        summary = (
            "No prompt was sent (the offline labeller reads the statistics); a model gets this"
        )
    raw = ""
    if result is not None and result.raw_response:
        raw = (
            "<details><summary>The labeller's raw answer</summary>"
            f"<pre>{text(result.raw_response, keep_newlines=True)}</pre></details>"
        )
    return (
        f'<details id="prompt"><summary>{summary}</summary><h3>System</h3>'
        f"<pre>{text(prompt.system, keep_newlines=True)}</pre><h3>User</h3>"
        f"<pre>{text(prompt.user, keep_newlines=True)}</pre></details>{raw}"
    )


def _pager(view: RunView, key: str) -> str:
    before, after = view.neighbours(key)
    links = ['<a href="../index.html">← all components</a>']
    if before is not None:
        links.append(f'<a href="{page_name(before)}" rel="prev">previous: {text(before)}</a>')
    if after is not None:
        links.append(f'<a href="{page_name(after)}" rel="next">next: {text(after)}</a>')
    return '<nav class="pager">' + "".join(links) + "</nav>"


def render(view: RunView, key: str) -> str | None:
    """The page of `key`, or None when the run has no such component."""
    if not view.has_page(key):
        return None
    result = view.labels.get(key)
    c = view.components.get(key)
    module, index = (c.module, c.index) if c else split_key(key)
    data = view.component(key)
    parts = [
        _pager(view, key),
        f"<h1 data-component-key={attr(key)}><span class='mono'>{text(module)}</span> "
        f"component {index}</h1>",
        _label_section(view, key, result),
    ]
    if c is not None:
        parts.append(
            '<dl class="facts">'
            f"<dt>Fires on</dt><dd>{_pct(c.density)} of tokens ({c.firing_count:,} firings)</dd>"
            f"<dt>Mean CI</dt><dd>{c.mean_ci:.3g}</dd>"
            f"<dt>Key</dt><dd><code>{text(key)}</code></dd></dl>"
        )
    parts += ["<h2>Scores</h2>", _scores(view, key)]
    if data is None:
        parts.append('<p class="note">The harvest record of this component is missing.</p>')
    else:
        parts += [
            "<h2>Activation examples (shown to the labeller)</h2>",
            _legend(),
            windows(data.activation_examples),
            "<h2>Held-out windows (kept from the labeller, used to score it)</h2>",
            _heldout(view, key),
            "<h2>What it reads and what it writes</h2>",
            '<div class="cols">',
            _token_table(data.input_token_stats, "Input tokens (where it fires)"),
            _token_table(data.output_token_stats, "Output tokens (predicted next when it fires)"),
            "</div>",
            "<h2>Co-occurring components</h2>",
            _neighbours(view, data),
            "<h2>Prompt</h2>",
            _prompt(view, data, result),
        ]
    title = f"{key}: {result.label}" if result else key
    return document(title, "\n".join(parts), run_id=view.run_id, root="../")
