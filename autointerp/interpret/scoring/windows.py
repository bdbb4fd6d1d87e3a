"""Held-out windows as scorers show them: numbered lines of cleaned tokens, a token marked ⟦ ⟧.

All window text is dataset text: it is cleaned (`untrusted.token`) and placed between `<data>`
and `</data>`, exactly as in the labelling prompt, so no window can pass for an instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

from autointerp.interpret import untrusted
from autointerp.schemas import PAD_TOKEN, ActivationExample

MAX_WINDOW_CHARS = 400


@dataclass(frozen=True)
class Window:
    """One window to show: its tokens (padding dropped), the CI of the component on each, and
    an optional marked position."""

    tokens: list[str]
    ci: list[float]
    mark: int | None = None

    @classmethod
    def of(cls, example: ActivationExample, mark: int | None = None) -> Window:
        """The example without its edge padding; `mark` indexes the example's tokens."""
        keep = [i for i, t in enumerate(example.tokens) if t != PAD_TOKEN]
        tokens = [example.tokens[i] for i in keep]
        ci = [example.ci_values[i] for i in keep]
        new_mark = keep.index(mark) if mark is not None and mark in keep else None
        return cls(tokens, ci, new_mark)

    @property
    def fires(self) -> bool:
        return any(c > 0 for c in self.ci)


def render(window: Window) -> str:
    """One line of text, the marked token (if any) between ⟦ ⟧; long windows cut at the ends."""
    pieces = [untrusted.token(t) for t in window.tokens]
    if window.mark is not None:
        i = window.mark
        pieces[i] = f"{untrusted.FIRING_OPEN}{pieces[i]}{untrusted.FIRING_CLOSE}"
    text = "".join(pieces)
    if len(text) <= MAX_WINDOW_CHARS:
        return text
    return text[: MAX_WINDOW_CHARS - 1] + "…"


def render_tokens(window: Window) -> str:
    """The window token by token, numbered from 0, one `index: token` pair per line part, so
    that a simulator can answer per token."""
    return " ".join(f"{i}:{untrusted.quoted_token(t)}" for i, t in enumerate(window.tokens))


def numbered(windows: list[Window], *, per_token: bool = False) -> str:
    """`<data>`-fenced numbered windows (numbers from 1)."""
    show = render_tokens if per_token else render
    lines = [f"{i}. {show(w)}" for i, w in enumerate(windows, start=1)]
    return "<data>\n" + "\n".join(lines) + "\n</data>"
