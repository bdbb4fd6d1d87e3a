"""Labelling settings (built once at the CLI edge) and the labeller they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from autointerp.interpret.base import Labeller
from autointerp.interpret.llm.options import ClientOptions
from autointerp.interpret.llm.providers import check_budget, spec
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PromptVersion
from autointerp.store import RunDir

if TYPE_CHECKING:  # the scorers import the client: only once scoring is asked for
    from autointerp.interpret.scoring.runner import ScoringRun

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
    scorers: tuple[str, ...] = ()
    """Scorers run on each label as soon as it is written (`--score`); none by default."""

    def describe(self) -> str:
        if self.labeller == "offline":
            return f"offline labeller ({self.why})"
        return f"{spec(self.client.provider).labeller} {self.client.model} ({self.why})"


def build_scoring(options: LabellingOptions, labeller: Labeller, run: RunDir) -> ScoringRun | None:
    """The scoring run `--score` asks for: its answerer is the labeller's own client (one
    budget, one set of rate limits, one cost), or the offline simulator for offline labels."""
    if not options.scorers:
        return None
    from autointerp.interpret.labeller import ModelLabeller
    from autointerp.interpret.scoring.asking import Answerer, ModelAnswerer, OfflineAnswerer
    from autointerp.interpret.scoring.registry import SCORERS
    from autointerp.interpret.scoring.runner import ScoringRun

    answerer: Answerer = (
        ModelAnswerer(labeller.client, labeller.name)
        if isinstance(labeller, ModelLabeller)
        else OfflineAnswerer()
    )
    scorers = [SCORERS[name]() for name in options.scorers]
    return ScoringRun(run, scorers, answerer, workers=labeller.max_concurrent)


def build_labeller(options: LabellingOptions) -> Labeller:
    """The labeller `options` ask for. A missing API key is a UserError naming the variable."""
    if options.labeller == "offline":
        from autointerp.interpret.offline import OfflineLabeller

        return OfflineLabeller()
    check_budget(options.client, options.budget_usd)
    from autointerp.interpret.labeller import ModelLabeller
    from autointerp.interpret.llm.options import build_client

    name = spec(options.client.provider).labeller  # `claude`, or `openai` for --provider openai
    return ModelLabeller(build_client(options.client), name=name, prompt=options.prompt)
