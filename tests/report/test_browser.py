"""The report in a real browser (headless Chromium): rows, search, filters, pages, hostile text,
no network, a clean console, and live updates when served.

Every test here checks, when it ends, that the browser logged no console error and asked for
nothing outside the site (file:// for the static site, the server for `serve`). Screenshots go
to a temporary directory; with AUTOINTERP_DOCS_SCREENSHOTS=1 the index and a component page are
also copied to docs/ for the README.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from autointerp.report.escape import page_name, visible
from autointerp.report.server import ReportServer
from tests.report import browser
from tests.report.runs import HOSTILE_KEY, HOSTILE_LABEL, HOSTILE_MODULE, Written, result_line

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

REPO = Path(__file__).resolve().parents[2]
DOCS = {"index.png": "report-index.png", "component.png": "report-component.png"}


@pytest.fixture
def page(driver: WebDriver) -> Iterator[Callable[[str], None]]:
    """Opens URLs; afterwards asserts no console error and no request left the allowed origin."""
    browser.clear_logs(driver)
    allowed: list[str] = []

    def open_(url: str) -> None:
        allowed.append("file://" if url.startswith("file:") else url.split("/index.html")[0])
        driver.get(url)

    yield open_
    errors = browser.console_errors(driver)
    assert not errors, errors
    urls = browser.requested_urls(driver)
    outside = [u for u in urls if not any(u.startswith(a) for a in allowed)]
    assert not outside, outside


def wait(driver: WebDriver, condition: str, timeout: float = 10) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return Boolean({condition})")
    )


ROWS = "document.getElementById('rows')"
LOADED = f"{ROWS} && {ROWS}.getAttribute('data-loading') === 'false'"


def shown(driver: WebDriver) -> int:
    return int(driver.execute_script(f"return {ROWS}.getAttribute('data-shown')"))


def rendered(driver: WebDriver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#rows [data-component-key]'))"
        ".map(e => e.getAttribute('data-component-key'))"
    )


def labels(small_run: Written) -> dict[str, str]:
    from autointerp.report.data import load

    return {k: visible(r.label) for k, r in load(small_run.run).labels.items()}


def screenshot(driver: WebDriver, shots: Path, name: str, *, full: bool = False) -> None:
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(browser.WINDOW[0], min(int(height) + 40, 2400))
    driver.save_screenshot(str(shots / name))
    if full:
        driver.set_window_size(*browser.WINDOW)
    if os.environ.get("AUTOINTERP_DOCS_SCREENSHOTS") == "1" and name in DOCS:
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shots / name, REPO / "docs" / DOCS[name])


def test_the_index_lists_every_labelled_component(
    driver: WebDriver, page: Callable[[str], None], site: Path, small_run: Written, shots: Path
) -> None:
    page((site / "index.html").as_uri())
    wait(driver, LOADED)
    total = len(small_run.labelled)
    assert driver.execute_script(f"return {ROWS}.getAttribute('data-total')") == str(total)
    assert shown(driver) == total
    count = driver.find_element("id", "count").text
    assert count == f"Showing {total} of {total} labelled components"
    summary = driver.find_element("id", "summary").text
    assert f"{len(small_run.dead)} dead" in summary
    keys = rendered(driver)
    assert keys and set(keys) <= set(small_run.labelled)
    for row in driver.find_elements("css selector", "#rows [data-component-key]")[:5]:
        link = row.find_element("css selector", "a[href]")
        key = row.get_attribute("data-component-key")
        assert link.get_attribute("href").endswith("/components/" + page_name(key))
    screenshot(driver, shots, "index.png")


def test_search_filters_rows_as_you_type(
    driver: WebDriver, page: Callable[[str], None], site: Path, small_run: Written
) -> None:
    page((site / "index.html").as_uri())
    wait(driver, LOADED)
    by_key = labels(small_run)
    search = driver.find_element("css selector", "input[type=search]")
    query = by_key[small_run.labelled[5]].split('"')[1].strip()  # a word of one label
    typed = ""
    for ch in query:
        search.send_keys(ch)
        typed += ch
        expected = {k for k, v in by_key.items() if typed.lower() in f"{k}\0{v}".lower()}
        wait(driver, f"{ROWS}.getAttribute('data-shown') === '{len(expected)}'")
    assert set(rendered(driver)) == expected and small_run.labelled[5] in expected
    search.clear()
    key = small_run.labelled[7]
    search.send_keys(key)
    wait(driver, f"{ROWS}.getAttribute('data-shown') !== '{len(by_key)}'")
    assert key in rendered(driver)
    assert all(key.lower() in f"{k}\0{by_key[k]}".lower() for k in rendered(driver))
    search.send_keys(" no-such-words")
    wait(driver, f"{ROWS}.getAttribute('data-shown') === '0'")
    assert driver.find_element("id", "empty").is_displayed()


def test_filters_and_sorting(
    driver: WebDriver, page: Callable[[str], None], site: Path, small_run: Written
) -> None:
    from selenium.webdriver.support.ui import Select

    from autointerp.report.data import load

    view = load(small_run.run)
    page((site / "index.html").as_uri())
    wait(driver, LOADED)
    module = view.modules[1]
    Select(driver.find_element("id", "f-module")).select_by_visible_text(module)
    expected = [k for k in view.labels if view.components[k].module == module]
    wait(driver, f"{ROWS}.getAttribute('data-shown') === '{len(expected)}'")
    assert set(rendered(driver)) == set(expected)
    Select(driver.find_element("id", "f-module")).select_by_value("-1")
    Select(driver.find_element("id", "f-conf")).select_by_visible_text("high")
    high = [k for k, r in view.labels.items() if r.confidence == "high"]
    wait(driver, f"{ROWS}.getAttribute('data-shown') === '{len(high)}'")
    Select(driver.find_element("id", "f-conf")).select_by_value("-1")
    Select(driver.find_element("id", "f-scorer")).select_by_visible_text("detection")
    driver.find_element("id", "f-lo").send_keys("0.5")
    detection = view.scores["detection"]
    good = [k for k in view.labels if k in detection and (detection[k].score or -1) >= 0.5]
    wait(driver, f"{ROWS}.getAttribute('data-shown') === '{len(good)}'")
    assert set(rendered(driver)) == set(good)
    driver.find_element("id", "f-clear").click()
    wait(driver, f"{ROWS}.getAttribute('data-shown') === '{len(view.labels)}'")
    driver.find_element("css selector", "#head button[data-sort='s0']").click()  # detection
    best = max((r.score for r in detection.values() if r.score is not None), default=None)
    wait(driver, "document.querySelector('#head [aria-sort=descending]')")
    top = rendered(driver)[0]
    assert detection[top].score == best


def test_a_component_page_opens_from_its_row(
    driver: WebDriver, page: Callable[[str], None], site: Path, small_run: Written, shots: Path
) -> None:
    page((site / "index.html").as_uri())
    wait(driver, LOADED)
    row = driver.find_elements("css selector", "#rows [data-component-key]")[2]
    key = row.get_attribute("data-component-key")
    row.find_element("css selector", "a").click()
    wait(driver, "document.getElementById('label')")
    assert driver.current_url.endswith("/components/" + page_name(key))
    h1 = driver.find_element("css selector", "h1")
    assert h1.get_attribute("data-component-key") == key
    assert driver.find_element("id", "label").text == labels(small_run)[key]
    assert driver.find_elements("css selector", ".window .fire")
    assert driver.find_elements("css selector", "#scores tr")
    screenshot(driver, shots, "component.png", full=True)
    driver.find_element("link text", "Overview").click()
    wait(driver, "document.querySelector('section.module svg')")
    screenshot(driver, shots, "overview.png", full=True)


def test_hostile_text_shows_literally_and_runs_nothing(
    driver: WebDriver, page: Callable[[str], None], site: Path
) -> None:
    page((site / "index.html").as_uri())
    wait(driver, LOADED)
    driver.find_element("css selector", "input[type=search]").send_keys("onerror")
    wait(driver, f"{ROWS}.getAttribute('data-shown') === '1'")
    row = driver.find_element("css selector", "#rows [data-component-key]")
    assert row.get_attribute("data-component-key") == HOSTILE_KEY
    link = row.find_element("css selector", "a")
    assert link.get_attribute("textContent") == visible(HOSTILE_LABEL)
    assert driver.execute_script("return typeof window.pwned") == "undefined"
    assert driver.execute_script("return document.images.length") == 0
    link.click()
    wait(driver, "document.getElementById('label')")
    label = driver.find_element("id", "label").get_attribute("textContent")
    assert label == visible(HOSTILE_LABEL)  # the markup as text, the override written out
    reasoning = driver.find_element("id", "reasoning").get_attribute("textContent")
    assert "</script><script>window.pwned=2</script> onerror=alert(1)" in reasoning
    assert "\\u001b[31m" in reasoning and "\x1b" not in reasoning
    assert HOSTILE_MODULE in driver.find_element("css selector", "h1").text
    assert driver.find_element("css selector", "h1").get_attribute("data-component-key") == (
        HOSTILE_KEY
    )
    assert driver.execute_script("return typeof window.pwned") == "undefined"
    assert driver.execute_script("return document.images.length") == 0
    assert driver.execute_script("return document.scripts.length") == 0  # no script at all


def test_no_request_leaves_the_site(
    driver: WebDriver, page: Callable[[str], None], site: Path, small_run: Written
) -> None:
    """`page` checks the requests; here every kind of page is loaded, and the log is looked at."""
    for url in (
        site / "index.html",
        site / "components" / page_name(small_run.labelled[0]),
        site / "components" / page_name(HOSTILE_KEY),
        site / "overview.html",
    ):
        page(url.as_uri())
        if url.name == "index.html":
            wait(driver, LOADED)
    urls = browser.requested_urls(driver)
    assert any(u.endswith("data/rows-0000.js") for u in urls)  # the log does see requests
    assert all(u.startswith("file://") for u in urls), urls


def test_served_index_shows_new_labels_without_a_reload(
    driver: WebDriver, page: Callable[[str], None], fresh_run: Written
) -> None:
    server = ReportServer(fresh_run.run, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        wait(driver, LOADED)
        total = len(fresh_run.labelled)
        assert shown(driver) == total
        driver.execute_script("window.notReloaded = true")
        waiting = next(k for k in fresh_run.alive if k not in fresh_run.labelled)
        with open(fresh_run.run.results_path, "ab") as f:
            f.write(result_line(waiting, "fires on arrival"))
        wait(driver, f"{ROWS}.getAttribute('data-total') === '{total + 1}'", timeout=15)
        assert driver.execute_script("return window.notReloaded") is True
        driver.find_element("css selector", "input[type=search]").send_keys("arrival")
        wait(driver, f"{ROWS}.getAttribute('data-shown') === '1'")
        assert rendered(driver) == [waiting]
    finally:
        server.shutdown()
        server.server_close()
