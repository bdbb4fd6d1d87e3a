"""Render the labelling prompt from the jinja2 templates in `templates/`.

Each prompt version (`prompt_version.py`) has its own pair of templates.

The system text depends only on the run (architecture), so it is identical for every component and
can be cached by the API; everything about one component goes into the user message. All dataset
and model text passes through `untrusted` before it reaches a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
import msgspec

from autointerp.interpret import untrusted
from autointerp.interpret.module_names import describe_module
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PromptVersion
from autointerp.schemas import ActivationExample, ArchitectureInfo, ComponentData, TokenStats

TEMPLATES = Path(__file__).parent / "templates"
MAX_EXAMPLES = 20
MAX_STAT_ROWS = 10
MAX_CORRELATIONS = 8
EXAMPLE_WINDOW_CHARS = 400
"""An example whose context is longer than this keeps the text nearest the firing token."""


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text for an LLM; untrusted text is cleaned before rendering
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _number(x: float) -> str:
    return f"{x:.3g}"


def _components(arch: ArchitectureInfo) -> str:
    sizes = sorted(set(arch.module_c.values()))
    if not sizes:
        return str(arch.c)
    if len(sizes) == 1:
        return str(sizes[0])
    return f"{sizes[0]} to {sizes[-1]}"


def render_example(example: ActivationExample) -> str:
    """One line of text with the firing token marked; long context trimmed around the marker."""
    pieces = [untrusted.token(t) for t in example.tokens]
    pos = example.active_pos
    if not 0 <= pos < len(pieces):
        return "".join(pieces)
    before = "".join(pieces[:pos])
    after = "".join(pieces[pos + 1 :])
    budget = max(0, EXAMPLE_WINDOW_CHARS - len(pieces[pos])) // 2
    if len(before) > budget:
        before = "…" + before[len(before) - budget :]
    if len(after) > budget:
        after = after[:budget] + "…"
    return f"{before}{untrusted.FIRING_OPEN}{pieces[pos]}{untrusted.FIRING_CLOSE}{after}"


def _token_rows(rows: list[tuple[str, float]]) -> str:
    return ", ".join(
        f"{untrusted.quoted_token(tok)} {_number(score)}" for tok, score in rows[:MAX_STAT_ROWS]
    )


def _token_stats(stats: TokenStats) -> list[tuple[str, str]]:
    return [
        ("by precision", _token_rows(stats.top_precision)),
        ("by recall", _token_rows(stats.top_recall)),
        ("by PMI", _token_rows(stats.top_pmi)),
    ]


def _component_rows(rows: list[tuple[str, float]]) -> str:
    return ", ".join(
        f"{untrusted.clean(key)} {_number(score)}" for key, score in rows[:MAX_CORRELATIONS]
    )


def _component_view(component: ComponentData, arch: ArchitectureInfo) -> dict[str, Any]:
    corr = component.correlations
    return {
        "key": untrusted.clean(component.component_key),
        "location": untrusted.clean(describe_module(component.layer, arch.n_layers)),
        "mean_ci": _number(component.mean_ci),
        "density": _number(component.firing_density),
        "firing_count": component.firing_count,
        "examples": [
            {"ci": _number(ex.active_ci), "text": render_example(ex)}
            for ex in component.activation_examples[:MAX_EXAMPLES]
        ],
        "input_stats": _token_stats(component.input_token_stats),
        "output_stats": _token_stats(component.output_token_stats),
        "correlations": [
            ("by precision", _component_rows(corr.precision)),
            ("by recall", _component_rows(corr.recall)),
            ("by PMI", _component_rows(corr.pmi)),
            ("least related (lowest PMI)", _component_rows(corr.bottom_pmi)),
        ],
    }


def render_system(arch: ArchitectureInfo, version: PromptVersion = DEFAULT_PROMPT) -> str:
    """The run's system text; rendered once per architecture, not once per request."""
    return _render_system(msgspec.json.encode(arch), version)


@lru_cache(maxsize=8)
def _render_system(arch_json: bytes, version: PromptVersion) -> str:
    arch = msgspec.json.decode(arch_json, type=ArchitectureInfo)
    view = {
        "model_class": untrusted.clean(arch.model_class),
        "n_layers": arch.n_layers,
        "dataset_name": untrusted.clean(arch.dataset_name),
        "dataset_description": untrusted.shorten(untrusted.clean(arch.dataset_description), 2000),
        "components": _components(arch),
    }
    return _environment().get_template(f"system_{version}.j2").render(arch=view)


def render_prompt(
    component: ComponentData, arch: ArchitectureInfo, version: PromptVersion = DEFAULT_PROMPT
) -> Prompt:
    template = _environment().get_template(f"component_{version}.j2")
    user = template.render(c=_component_view(component, arch))
    return Prompt(system=render_system(arch, version), user=user)
