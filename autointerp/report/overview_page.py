"""The run at a glance: what was harvested and labelled, what it cost, and per-module plots."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from autointerp.report import svg
from autointerp.report.data import RunView
from autointerp.report.escape import text
from autointerp.report.layout import document, who

CONFIDENCES = ("low", "medium", "high")
SCORE_EDGES = [i / 10 for i in range(11)]
CORRELATION_EDGES = [i / 5 - 1 for i in range(11)]


@dataclass
class _Module:
    name: str
    total: int = 0
    alive: int = 0
    densities: list[float] = field(default_factory=list)
    confidence: Counter[str] = field(default_factory=Counter)
    scores: dict[str, list[float]] = field(default_factory=dict)


def _modules(view: RunView) -> list[_Module]:
    by_name = {m: _Module(m) for m in view.modules}
    if view.config:
        for m, n in view.config.layout:
            by_name[m].total = n
    module_of: dict[str, str] = {}
    for c in view.components.values():
        module = by_name.setdefault(c.module, _Module(c.module))
        module_of[c.key] = c.module
        if not view.config:
            module.total += 1
        if c.alive:
            module.alive += 1
            module.densities.append(c.density)
    for key, result in view.labels.items():
        if key in module_of:
            by_name[module_of[key]].confidence[result.confidence] += 1
    for scorer in view.scorers:
        for key, record in view.scores[scorer].items():
            if key in module_of and record.score is not None:
                by_name[module_of[key]].scores.setdefault(scorer, []).append(record.score)
    return list(by_name.values())


def _density_edges(view: RunView) -> list[float]:
    positive = [c.density for c in view.components.values() if c.alive and c.density > 0]
    if not positive:
        return [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    return svg.log_edges(min(positive), max(positive))


def _mean(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal 95% interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def _facts(rows: list[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _run_facts(view: RunView) -> str:
    rows = [("Run", text(view.run_id)), ("Phase", text(view.state.phase))]
    config = view.config
    if config is not None:
        arch = config.architecture
        rows += [
            ("Source", text(config.source)),
            ("Model", text(f"{arch.model_class} ({arch.n_layers} layers)")),
            ("Dataset", text(arch.dataset_name)),
            (
                "Harvest",
                f"{config.n_batches:,} batches of {config.batch_size} × "
                f"{config.context_length} tokens; CI threshold {config.ci_threshold:g}",
            ),
        ]
    tokens = view.summary.n_tokens if view.summary else view.state.n_tokens
    rows.append(("Tokens harvested", f"{tokens:,}"))
    labelled = len(view.labels)
    failed = len(set(view.failures) - set(view.labels))
    rows += [
        (
            "Components",
            f"{view.n_components:,} in {len(view.modules)} modules; "
            f"{view.n_alive:,} alive, {view.n_dead:,} dead (never fired)",
        ),
        (
            "Labelled",
            f"{labelled:,} ({failed:,} failed, "
            f"{max(0, view.n_alive - labelled - failed):,} not yet)",
        ),
    ]
    return _facts(rows)


def _cost(view: RunView) -> str:
    labels = list(view.labels.values())
    models = Counter(who(r.labeller, r.model) for r in labels)
    cost = sum(r.cost_usd for r in labels)
    known = all(r.cost_known for r in labels)
    rows = [
        ("Labelled by", text(", ".join(f"{m} ({n:,})" for m, n in models.most_common()) or "–")),
        ("Labelling cost", f"${cost:,.4f}" + ("" if known else " (some prices unknown)")),
        (
            "Labelling tokens",
            f"{sum(r.input_tokens for r in labels):,} input, "
            f"{sum(r.output_tokens for r in labels):,} output, "
            f"{sum(r.cache_read_input_tokens for r in labels):,} read from cache",
        ),
    ]
    score_cost = 0.0
    score_in = score_out = 0
    for scorer in view.scorers:
        for record in view.scores[scorer].values():
            score_cost += record.cost_usd
            score_in += record.input_tokens
            score_out += record.output_tokens
    if view.scorers:
        rows += [
            ("Scoring cost", f"${score_cost:,.4f}"),
            ("Scoring tokens", f"{score_in:,} input, {score_out:,} output"),
        ]
    return _facts(rows)


def _score_table(view: RunView) -> str:
    if not view.scorers:
        return '<p class="note">No scores yet: <code>autointerp score &lt;run&gt;</code>.</p>'
    rows = []
    for scorer in view.scorers:
        records = view.scores[scorer].values()
        values = [r.score for r in records if r.score is not None]
        answerers = Counter(who(r.answerer, r.model) for r in records)
        if values:
            mean, half = _mean(values)
            shown = f"{mean:.3f}" + (f" ± {half:.3f}" if math.isfinite(half) else "")
        else:
            shown = "–"
        rows.append(
            f'<tr><td>{text(scorer)}</td><td class="num">{shown}</td>'
            f'<td class="num">{len(values):,}</td><td class="num">{len(records) - len(values):,}'
            f"</td><td>{text(', '.join(answerers))}</td></tr>"
        )
    return (
        '<table class="data"><tr><th>scorer</th><th class="num">mean (95% interval)</th>'
        '<th class="num">scored</th><th class="num">unscored</th><th>answered by</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _module_card(module: _Module, view: RunView, density_edges: list[float]) -> str:
    conf = [module.confidence.get(c, 0) for c in CONFIDENCES]
    density = svg.histogram(
        module.densities, density_edges, title="firing density", fmt="{:.0e}", width=300
    )
    figures = [
        (
            "Confidence of the labels",
            svg.bars(conf, list(CONFIDENCES), title="confidence", width=140, height=80, alt=True),
        ),
    ]
    for scorer in view.scorers:
        values = module.scores.get(scorer, [])
        edges = CORRELATION_EDGES if scorer == "simulation" else SCORE_EDGES
        mean = f", mean {sum(values) / len(values):.2f}" if values else ""
        plot = svg.histogram(
            values, edges, title=f"{scorer} scores", fmt="{:.1f}", width=140, height=80
        )
        figures.append((f"{text(scorer)} ({len(values):,}{mean})", plot))
    small = "".join(
        f"<figure>{plot}<figcaption>{caption}</figcaption></figure>" for caption, plot in figures
    )
    return (
        f'<section class="module"><h3>{text(module.name)}</h3>'
        f'<p class="note">{module.alive:,} alive of {module.total:,}; '
        f"{sum(conf):,} labelled</p>"
        f"<figure>{density}<figcaption>Firing density of the alive components (log bins)"
        f'</figcaption></figure><div class="figs">{small}</div></section>'
    )


def _all_modules(modules: list[_Module]) -> _Module:
    whole = _Module("all modules")
    for m in modules:
        whole.total += m.total
        whole.alive += m.alive
        whole.densities += m.densities
        whole.confidence.update(m.confidence)
        for scorer, values in m.scores.items():
            whole.scores.setdefault(scorer, []).extend(values)
    return whole


def overview_html(view: RunView) -> str:
    edges = _density_edges(view)
    modules = _modules(view)
    parts = [
        "<h1>Overview</h1>",
        _run_facts(view),
        "<h2>Cost and tokens</h2>",
        _cost(view),
        "<h2>Scores</h2>",
        _score_table(view),
        "<h2>By module</h2>",
        '<div class="modules">'
        + "".join(_module_card(m, view, edges) for m in [_all_modules(modules), *modules])
        + "</div>",
    ]
    return document(f"{view.run_id}: overview", "\n".join(parts), run_id=view.run_id)
