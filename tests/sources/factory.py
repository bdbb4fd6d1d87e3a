"""A `py:` factory target for `open_source` tests: records what it was called with."""

from __future__ import annotations

from typing import Any

calls: list[Any] = []
not_callable = 3


def make(device: Any) -> dict[str, Any]:
    calls.append(device)
    return {"device": device}
