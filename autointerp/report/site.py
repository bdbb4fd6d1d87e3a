"""The site as a set of paths: the static writer writes every one, the server renders one per
request. Both go through `Site.render`, so `report` and `serve` show the same pages.

```
index.html  overview.html  assets/{report.css,index.js,favicon.svg}
data/meta.js  data/rows-0000.js …  components/<page_name(key)>
```
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from autointerp.errors import UserError
from autointerp.report import component_page, index_page, overview_page
from autointerp.report.assets import CSS, FAVICON, INDEX_JS
from autointerp.report.data import RunView, load
from autointerp.report.escape import page_name
from autointerp.store import RunDir

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
ASSETS = {
    "assets/report.css": (CSS, "text/css; charset=utf-8"),
    "assets/index.js": (INDEX_JS, JS),
    "assets/favicon.svg": (FAVICON, "image/svg+xml"),
}
MARKER = ".autointerp-report"
"""Written into every report directory: only a directory holding it is ever replaced."""

_SHARD = re.compile(r"data/rows-(\d{4,})\.js")


@dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str


class Site:
    """Renders any path of the site from a `RunView` (`live`: the index polls for new labels)."""

    def __init__(self, view: RunView, *, live: bool = False) -> None:
        self.view = view
        self.live = live
        self._pages: dict[str, str] = {}
        self._pages_version = -1

    def _page_key(self, name: str) -> str | None:
        if self._pages_version != self.view.version:
            self._pages = {page_name(k): k for k in self.view.page_keys()}
            self._pages_version = self.view.version
        return self._pages.get(name)

    def paths(self) -> Iterator[str]:
        """Every file of the static site."""
        yield from ASSETS
        yield "index.html"
        yield "overview.html"
        yield "data/meta.js"
        for i in range(index_page.shard_count(self.view)):
            yield f"data/rows-{i:04d}.js"
        for key in self.view.page_keys():
            yield f"components/{page_name(key)}"

    def render(self, path: str) -> Page | None:
        """The file at `path` (relative to the site's top), or None: no such page."""
        view = self.view
        if path in ASSETS:
            content, kind = ASSETS[path]
            return Page(content.encode(), kind)
        text: str | None = None
        kind = HTML
        if path == "index.html":
            text = index_page.index_html(view)
        elif path == "overview.html":
            text = overview_page.overview_html(view)
        elif path == "data/meta.js":
            text, kind = index_page.meta_js(view, live=self.live), JS
        elif match := _SHARD.fullmatch(path):
            text, kind = index_page.shard_js(view, int(match.group(1))), JS
        elif path.startswith("components/"):
            key = self._page_key(path.removeprefix("components/"))
            text = component_page.render(view, key) if key is not None else None
        return None if text is None else Page(text.encode(), kind)


@dataclass(frozen=True)
class Written:
    out: Path
    files: int
    components: int
    labelled: int
    seconds: float


def check_finalized(view: RunView) -> None:
    """A static report of a run whose components are not all written would be silently partial."""
    if not view.run.components_path.exists() or not view.run.summary_path.exists():
        raise UserError(
            f"{view.run.root} is not finalized yet (no {view.run.summary_path.name}): a report "
            "needs the harvest's component records; wait for the daemon to finalize "
            f"(autointerp status {view.run.root}), or use autointerp serve, which follows the run "
            "as it goes"
        )


def write_site(run: RunDir, out: Path, *, jobs: int | None = None) -> Written:
    """Write the whole site to `out` (replaced as a whole, so a reader never sees half of it).

    Component pages are rendered by `jobs` processes (default: the CPUs, at most 8; forked only
    from a single-threaded process): at 40k components one process takes minutes, most of it in
    rebuilding each page's prompt.
    """
    started = time.perf_counter()
    view = load(run)
    check_finalized(view)
    out = out.absolute()
    if out.exists() and not (out / MARKER).exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"{out} exists and is not a report written by autointerp; give --out a new or empty "
            "directory"
        )
    site = Site(view)
    paths = list(site.paths())
    pages = [p for p in paths if p.startswith("components/")]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "components").mkdir(parents=True)
        files = _write(site, [p for p in paths if not p.startswith("components/")], partial)
        files += _write_pages(site, pages, partial, jobs or min(8, os.cpu_count() or 1))
        (partial / MARKER).write_text(f"{run.root.absolute()}\n")
        _swap(partial, out)
    except OSError as e:
        raise UserError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return Written(
        out=out,
        files=files,
        components=len(pages),
        labelled=len(view.labels),
        seconds=time.perf_counter() - started,
    )


def _write(site: Site, paths: list[str], top: Path) -> int:
    files = 0
    for path in paths:
        page = site.render(path)
        if page is None:
            continue
        target = top / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(page.body)
        files += 1
    return files


_FORKED: tuple[Site, list[str], Path] | None = None
"""What forked page writers inherit (set just before the pool forks them)."""

PARALLEL_FROM = 2000
"""Fewer pages than this are written in this process: starting workers costs more."""


def _write_chunk(bounds: tuple[int, int]) -> int:
    assert _FORKED is not None
    site, pages, top = _FORKED
    return _write(site, pages[bounds[0] : bounds[1]], top)


def can_fork() -> bool:
    """Forking is safe only from a single-threaded process: a child forked while another thread
    holds a lock (logging, an allocator, an HTTP pool) may wait on it for ever. `autointerp
    report` is single-threaded; a notebook or a test session may not be, and writes in-process."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _write_pages(site: Site, pages: list[str], top: Path, jobs: int) -> int:
    global _FORKED
    if jobs <= 1 or len(pages) < PARALLEL_FROM or not can_fork():
        return _write(site, pages, top)
    step = max(200, len(pages) // (jobs * 8))
    chunks = [(i, min(len(pages), i + step)) for i in range(0, len(pages), step)]
    _FORKED = (site, pages, top)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return sum(pool.imap_unordered(_write_chunk, chunks))
    finally:
        _FORKED = None


def _swap(partial: Path, out: Path) -> None:
    if not out.exists():
        os.replace(partial, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)
