"""Run directories, written sites and one headless browser, shared by the report tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autointerp.report.site import write_site
from tests.report import browser
from tests.report.runs import RunSpec, Written, write_run

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

SPEC = RunSpec(hostile=True, unlabelled_every=9)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """A finished run of 61 components (12 dead, 4 unlabelled, one hostile); read-only."""
    return write_run(tmp_path_factory.mktemp("runs") / "small", SPEC)


@pytest.fixture(scope="session")
def site(small_run: Written) -> Path:
    """`autointerp report` of `small_run` (read-only)."""
    out = small_run.run.root / "report"
    write_site(small_run.run, out, jobs=1)
    return out


@pytest.fixture
def fresh_run(tmp_path: Path) -> Written:
    """The same run, this test's own copy (to append to)."""
    return write_run(tmp_path / "run", SPEC)


@pytest.fixture(scope="session")
def driver() -> Iterator[WebDriver]:
    why = browser.missing()
    if why is not None:
        pytest.skip(why)
    started = browser.start()
    assert started is not None
    yield started
    started.quit()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save their screenshots."""
    return tmp_path_factory.mktemp("screenshots")
