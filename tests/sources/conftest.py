"""Fixtures shared by the source tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sources.spd_double import write_fake_spd_package


def _forget_spd_modules() -> None:
    for name in [m for m in sys.modules if m == "spd" or m.startswith("spd.")]:
        del sys.modules[name]


@pytest.fixture
def fake_spd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`fake_spd("dec"|"feb")` puts that variant of the fake `spd` package on `sys.path`."""

    def install(variant: str, broken_dependency: str | None = None) -> None:
        root = tmp_path / f"fake_spd_{variant}"
        write_fake_spd_package(root, variant, broken_dependency)
        _forget_spd_modules()
        monkeypatch.syspath_prepend(str(root))

    yield install
    _forget_spd_modules()


@pytest.fixture(autouse=True)
def _no_cache_in_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default cache locations resolve under the test's temp dir, never the user's home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
