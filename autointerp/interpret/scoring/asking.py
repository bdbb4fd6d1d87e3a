"""Who answers a scorer's questions: a model through the shared LLM client, or the offline
simulator that reads the label's words (no network, deterministic).

A scorer phrases each request once as an `Ask`: the text and JSON schema for a model, the parser
of the model's answer, and how the offline simulator answers the same question from the label's
terms. A request that fails is an error (`Asked.answer` None), never counted as a "no".
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from autointerp.interpret.llm.completer import Completer
from autointerp.interpret.llm.errors import RequestFailed
from autointerp.interpret.llm.pricing import Usage
from autointerp.interpret.llm.provider import Request
from autointerp.store import RunDir

A = TypeVar("A")

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WORD = re.compile(r"[A-Za-z0-9']+")
FILLER = frozenset(
    [
        "fires",
        "on",
        "predicts",
        "and",
        "or",
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "tokens",
        "token",
        "words",
        "word",
        "component",
        "when",
        "after",
        "before",
        "like",
        "such",
        "as",
        "e",
        "g",
        "with",
        "for",
        "its",
        "it",
        "is",
        "are",
    ]
)
"""Words of the offline labeller's phrasing that say nothing about the tokens."""


@dataclass(frozen=True)
class LabelTerms:
    """What the offline simulator takes from a label: its quoted tokens and its content words."""

    quoted: frozenset[str]
    words: frozenset[str]

    @classmethod
    def of(cls, label: str) -> LabelTerms:
        quoted = frozenset(_norm(q.replace('\\"', '"')) for q in _QUOTED.findall(label))
        bare = _QUOTED.sub(" ", label)
        words = frozenset(w.lower() for w in _WORD.findall(bare) if w.lower() not in FILLER)
        return cls(frozenset(q for q in quoted if q), words)

    def matches(self, token: str) -> bool:
        t = _norm(token)
        return bool(t) and (t in self.quoted or t in self.words)


def _norm(token: str) -> str:
    return token.strip().lstrip("Ġ▁").lower()


@dataclass(frozen=True)
class Ask(Generic[A]):
    request: Request
    parse: Callable[[str], A]
    offline: Callable[[LabelTerms], A]


@dataclass(frozen=True)
class Asked(Generic[A]):
    answer: A | None
    """None: the request failed after retries; its trials are errors, not answers."""
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0


class Answerer(ABC):
    name: str
    """`claude` or `offline`: written into every score record."""
    model: str

    @abstractmethod
    async def ask(self, ask: Ask[A], label: str) -> Asked[A]: ...

    def pending_cost_usd(self) -> float:
        """Estimated cost of questions asked but not yet answered (batches)."""
        return 0.0

    def attach(self, run: RunDir) -> None:  # noqa: B027 - optional hook
        """The run scored: where a client keeps state across starts (batches)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class ModelAnswerer(Answerer):
    """Asks through the shared client: its pacing, retries, cost and budget cover scoring too."""

    def __init__(self, client: Completer, name: str = "claude") -> None:
        self.client = client
        self.name = name
        self.model = client.model

    async def ask(self, ask: Ask[A], label: str) -> Asked[A]:
        try:
            done = await self.client.complete(ask.request, ask.parse)
        except RequestFailed as e:
            return Asked(None, str(e))
        return Asked(done.answer, None, done.usage, done.cost_usd)

    def pending_cost_usd(self) -> float:
        return self.client.stats().pending_cost_usd

    def attach(self, run: RunDir) -> None:
        self.client.attach(run.batches_dir)

    async def aclose(self) -> None:
        await self.client.aclose()


class OfflineAnswerer(Answerer):
    """A deterministic simulator: a token "fits" the label when it is one of the label's quoted
    tokens or content words. Free, offline, and the baseline a model must beat."""

    name = "offline"
    model = "offline"

    async def ask(self, ask: Ask[A], label: str) -> Asked[A]:
        return Asked(ask.offline(LabelTerms.of(label)))
