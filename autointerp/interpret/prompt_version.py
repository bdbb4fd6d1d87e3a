"""The labelling prompt's versions, apart from the templates so that options need no jinja2.

`v1` asks for one line (what the component fires on, mostly); `v2`, the default, puts the output
statistics first and asks for both sides beside the line: what the component does when it fires
and what it responds to. `v1` stays so that the two can be scored side by side.
"""

from __future__ import annotations

from typing import Literal, get_args

PromptVersion = Literal["v1", "v2"]
PROMPT_VERSIONS: tuple[str, ...] = get_args(PromptVersion)
DEFAULT_PROMPT: PromptVersion = "v2"
