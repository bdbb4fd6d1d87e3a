"""Rebuild the labelling prompt a component was sent, with the labeller's own renderer.

The prompt is not stored with the label (it would double the results file); rendering it again
from the same component record, architecture and prompt version gives the same text.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from autointerp.interpret.prompt import render_prompt
from autointerp.schemas import ArchitectureInfo, ComponentData, InterpretationResult

_TAKES_VERSION = "version" in inspect.signature(render_prompt).parameters
"""Prompt versions came with the two-sided labels; a renderer without them has one prompt."""


@dataclass(frozen=True)
class SentPrompt:
    system: str
    user: str
    version: str
    """The prompt version; "" for the renderer's default (or when there are no versions)."""
    sent: bool
    """False when no prompt went out (the offline labeller): this is what a model would get."""


def rebuild(
    component: ComponentData, architecture: ArchitectureInfo, result: InterpretationResult | None
) -> SentPrompt:
    """The prompt of `result`'s version ("" in a label from before versions: the first one)."""
    sent = result is not None and result.labeller != "offline"
    if _TAKES_VERSION and sent:
        version = getattr(result, "prompt", "") or "v1"
        prompt = render_prompt(component, architecture, version)  # type: ignore[call-arg]
    else:
        version, prompt = "", render_prompt(component, architecture)
    return SentPrompt(system=prompt.system, user=prompt.user, version=version, sent=sent)
