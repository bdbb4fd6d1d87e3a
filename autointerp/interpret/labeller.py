"""A labeller that asks a model: render the prompt, complete through the client, parse."""

from __future__ import annotations

import time

from autointerp.interpret.base import Labeller
from autointerp.interpret.llm.completer import Completer
from autointerp.interpret.llm.provider import Request
from autointerp.interpret.llm.stats import ClientStats
from autointerp.interpret.prompt import render_prompt
from autointerp.interpret.prompt_version import DEFAULT_PROMPT, PromptVersion
from autointerp.interpret.response import response_parser, response_schema
from autointerp.schemas import ArchitectureInfo, ComponentData, InterpretationResult
from autointerp.store import RunDir


class ModelLabeller(Labeller):
    def __init__(
        self, client: Completer, *, name: str = "claude", prompt: PromptVersion = DEFAULT_PROMPT
    ) -> None:
        self.client = client
        self.name = name
        self.model = client.model
        self.max_concurrent = client.max_concurrent
        self.prompt = prompt
        self._schema = response_schema(prompt)
        self._parse = response_parser(prompt)

    async def label(
        self, component: ComponentData, architecture: ArchitectureInfo
    ) -> InterpretationResult:
        prompt = render_prompt(component, architecture, self.prompt)
        key = component.component_key
        del component  # a batch may take hours: hold only the prompt meanwhile
        request = Request(
            system=prompt.system, user=prompt.user, schema=self._schema, tag=f"label {key}"
        )
        done = await self.client.complete(request, self._parse)
        answer, usage = done.answer, done.usage
        return InterpretationResult(
            component_key=key,
            label=answer.label,
            confidence=answer.confidence,
            reasoning=answer.reasoning,
            input_label=answer.input_label,
            output_label=answer.output_label,
            prompt=self.prompt,
            raw_response=done.text,
            labeller=self.name,
            model=self.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
            cost_usd=done.cost_usd if done.cost_usd is not None else 0.0,
            cost_known=done.cost_usd is not None,
            timestamp=time.time(),
        )

    def stats(self) -> ClientStats:
        return self.client.stats()

    def attach(self, run: RunDir) -> None:
        self.client.attach(run.batches_dir)

    async def aclose(self) -> None:
        await self.client.aclose()
