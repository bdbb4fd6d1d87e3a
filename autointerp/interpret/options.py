"""Labelling settings (built once at the CLI edge) and the labeller they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from autointerp.errors import UserError
from autointerp.interpret.base import Labeller
from autointerp.interpret.llm.options import ClientOptions
from autointerp.interpret.llm.pricing import price_of
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PromptVersion

LabellerName = Literal["claude", "offline"]


@dataclass(frozen=True)
class LabellingOptions:
    labeller: LabellerName = "claude"
    why: str = "--labeller claude"
    """Why this labeller was chosen, for the dashboard (an explicit option, or the API key)."""
    client: ClientOptions = field(default_factory=ClientOptions)
    budget_usd: float | None = None
    """Total cost of the run (earlier starts included) after which no new request is sent."""
    retry_failed: bool = True
    prompt: PromptVersion = DEFAULT_PROMPT
    """`v2` asks for both sides (what the component responds to and what it does); `v1` for one
    line, as before."""

    def describe(self) -> str:
        if self.labeller == "offline":
            return f"offline labeller ({self.why})"
        return f"claude {self.client.model} ({self.why})"


def build_labeller(options: LabellingOptions) -> Labeller:
    """The labeller `options` ask for. A missing API key is a UserError naming the variable."""
    if options.labeller == "offline":
        from autointerp.interpret.offline import OfflineLabeller

        return OfflineLabeller()
    if options.budget_usd is not None and price_of(options.client.model) is None:
        raise UserError(
            f"--budget-usd cannot be kept for model {options.client.model!r}: its price is not "
            "in the table (autointerp/interpret/llm/pricing.py); drop --budget-usd or use a "
            "listed model"
        )
    from autointerp.interpret.labeller import ModelLabeller
    from autointerp.interpret.llm.options import build_client

    return ModelLabeller(build_client(options.client), name=options.labeller, prompt=options.prompt)
