"""The static site `autointerp report` writes: complete, self-contained, and hostile text inert."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autointerp.errors import UserError
from autointerp.report.escape import page_name
from autointerp.report.site import MARKER, write_site
from autointerp.store import RunDir
from tests.report.runs import HOSTILE_KEY, HOSTILE_LABEL, Written

SHARD = re.compile(r"AUTOINTERP_DATA\.rows\((\d+), (.*)\);\n", re.S)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v or "" for k, v in attrs if k in ("src", "href", "action", "xlink:href")]


def references(html: str) -> list[str]:
    """Every src/href/action of every tag, as a browser's parser sees the page."""
    parser = _References()
    parser.feed(html)
    return parser.found


def shard_rows(site: Path) -> list[list[object]]:
    rows = []
    for path in sorted((site / "data").glob("rows-*.js")):
        match = SHARD.fullmatch(path.read_text())
        assert match, path
        rows += json.loads(match.group(2))
    return rows


def test_every_labelled_component_is_in_the_index_data_once(site: Path, small_run: Written) -> None:
    rows = shard_rows(site)
    assert [r[0] for r in rows] == small_run.labelled  # results.jsonl order
    meta = (site / "data" / "meta.js").read_text()
    assert meta.startswith("AUTOINTERP_DATA.meta(")
    values = json.loads(meta.removeprefix("AUTOINTERP_DATA.meta(").removesuffix(");\n"))
    assert values["labelled"] == len(small_run.labelled)
    assert values["dead"] == len(small_run.dead)
    assert values["scorers"] == ["detection", "fuzzing", "intruder", "simulation"]
    assert values["live"] is False


def test_every_link_reaches_a_file(site: Path, small_run: Written) -> None:
    for row in shard_rows(site):
        assert (site / "components" / str(row[6])).is_file(), row
    pages = {p.name for p in (site / "components").iterdir()}
    assert pages == {page_name(k) for k in small_run.alive}  # every alive one, labelled or not
    for page in [site / "index.html", site / "overview.html", *(site / "components").iterdir()]:
        for ref in references(page.read_text()):
            target = (page.parent / ref.split("#")[0]).resolve()
            assert target.is_file(), f"{page.name} -> {ref}"


def test_nothing_refers_outside_the_site(site: Path) -> None:
    for path in site.rglob("*"):
        if path.suffix not in (".html", ".js", ".css"):
            continue
        content = path.read_text()
        for ref in references(content) if path.suffix == ".html" else []:
            assert not re.match(r"(?i)[a-z][a-z0-9+.-]*:|//", ref), f"{path.name}: {ref}"
        assert "fetch(" not in content and "XMLHttpRequest" not in content
        assert not re.search(r"(?i)https?://|@import|url\(", content), path.name


def test_hostile_text_is_escaped_in_every_file(site: Path) -> None:
    page = site / "components" / page_name(HOSTILE_KEY)
    html = page.read_text()
    assert "&lt;img src=x onerror=window.pwned=1&gt;" in html
    assert "\\u202eevil" in html  # the override is written out, not applied
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".js"):
            content = path.read_text()
            assert "<img src=x" not in content, path.name
            assert "<script>window.pwned" not in content, path.name
            assert "\u202e" not in content and "\x1b" not in content, path.name
            assert "\u2028" not in content, path.name
    rows = {r[0]: r for r in shard_rows(site)}
    assert rows[HOSTILE_KEY][3] == HOSTILE_LABEL.replace("\u202e", "\\u202e")


def test_a_component_page_shows_everything_about_it(site: Path, small_run: Written) -> None:
    key = small_run.labelled[0]
    html = (site / "components" / page_name(key)).read_text()
    assert f'data-component-key="{key}"' in html
    for part in (
        'id="label"',
        "Responds to (input)",
        "Does when it fires (output)",
        'id="reasoning"',
        "Second line of reasoning",
        'id="scores"',
        "95% interval",
        'class="c',  # CI shading
        'class="fire',  # the firing token
        "Held-out firing windows",
        "Held-out silent windows",
        "Input tokens",
        "Output tokens",
        "Co-occurring components",
        'id="prompt"',
        "<h3>System</h3>",
    ):
        assert part in html, part


def test_an_unlabelled_component_has_a_page_that_says_so(site: Path, small_run: Written) -> None:
    failed = small_run.failed[0]
    html = (site / "components" / page_name(failed)).read_text()
    assert "Not labelled: the labeller failed" in html and "the API said no" in html
    waiting = (set(small_run.alive) - set(small_run.labelled) - set(small_run.failed)).pop()
    assert "Not labelled yet" in (site / "components" / page_name(waiting)).read_text()


def test_the_overview_plots_each_module(site: Path, small_run: Written) -> None:
    html = (site / "overview.html").read_text()
    config = json.loads(small_run.run.config_path.read_text())
    cards = len(config["layout"]) + 1  # and one for all modules together
    assert html.count('<section class="module">') == cards
    assert html.count("<svg") >= 6 * cards  # density, confidence, 4 scorers
    assert "all modules" in html
    for part in ("Labelling cost", "Labelling tokens", "Tokens harvested", "dead (never fired)"):
        assert part in html


def test_writing_again_replaces_the_site_and_refuses_other_directories(
    fresh_run: Written, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    write_site(fresh_run.run, out, jobs=1)
    stale = out / "components" / "stale.html"
    stale.write_text("old")
    written = write_site(fresh_run.run, out, jobs=1)
    assert not stale.exists() and (out / MARKER).exists()
    assert written.labelled == len(fresh_run.labelled)
    assert not list(tmp_path.glob(".site.*"))  # no partial or old copy left behind
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a report written by autointerp"):
        write_site(fresh_run.run, other, jobs=1)
    assert (other / "notes.txt").read_text() == "keep me"


WRITE_WITH_WORKERS = """
import os, sys
from pathlib import Path
from autointerp.report import site
from autointerp.store import RunDir

run, out, pids = RunDir(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
assert site.can_fork(), "this process should be single-threaded"
write_chunk = site._write_chunk

def recording(bounds):
    (pids / str(os.getpid())).touch()
    return write_chunk(bounds)

site._write_chunk = recording
site.PARALLEL_FROM = 1  # this run is small: force the workers
site.write_site(run, out, jobs=2)
print(os.getpid())
"""


def test_pages_written_by_several_processes_are_the_same(
    fresh_run: Written, tmp_path: Path
) -> None:
    """Forked workers write the same bytes as one process. They run in a fresh interpreter:
    this test session has threads of its own, and the writer forks only without them."""
    one, many, pids = tmp_path / "one", tmp_path / "many", tmp_path / "pids"
    pids.mkdir()
    write_site(fresh_run.run, one, jobs=1)
    done = subprocess.run(
        [sys.executable, "-c", WRITE_WITH_WORKERS, str(fresh_run.run.root), str(many), str(pids)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    workers = {p.name for p in pids.iterdir()}
    assert workers and done.stdout.strip() not in workers  # pages came from other processes
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(many) for p in many.rglob("*") if p.is_file())
    for rel in files:
        if rel.name != MARKER:
            assert (one / rel).read_bytes() == (many / rel).read_bytes(), rel


def test_a_threaded_process_writes_in_process(
    fresh_run: Written, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With another thread alive the writer never forks (a forked child could wait for ever on
    a lock that thread held), and still writes every page."""
    from autointerp.report import site as site_module

    def no_fork(method: str | None = None) -> object:
        raise AssertionError(f"forked ({method}) from a multi-threaded process")

    monkeypatch.setattr(site_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(site_module.multiprocessing, "get_context", no_fork)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not site_module.can_fork()
        written = write_site(fresh_run.run, tmp_path / "out", jobs=2)
    finally:
        release.set()
        other.join()
    one = tmp_path / "one"
    write_site(fresh_run.run, one, jobs=1)

    def files(top: Path) -> list[Path]:
        return sorted(p.relative_to(top) for p in top.rglob("*") if p.is_file())

    assert files(written.out) == files(one)


def test_a_run_that_is_not_finalized_is_refused(fresh_run: Written, tmp_path: Path) -> None:
    fresh_run.run.summary_path.unlink()
    with pytest.raises(UserError, match="not finalized yet"):
        write_site(RunDir(fresh_run.run.root), tmp_path / "out")
