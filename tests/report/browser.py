"""Headless Chromium through selenium and Debian's chromedriver, for the report's browser tests
and `bench/report_load.py`. `start()` returns None when the browser or selenium is missing, so
callers can skip."""

from __future__ import annotations

import json
import os
import shutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1400, 1000)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if _chromium() is None:
        return "chromium is not on PATH (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not on PATH (apt-get install chromium-driver)"
    return None


def _chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def start() -> WebDriver | None:
    """A headless Chromium that records its console and network events, or None."""
    if missing() is not None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",  # only the page's own requests in the log
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(arg)
    options.binary_location = _chromium() or ""
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(shutil.which("chromedriver") or "chromedriver", log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """Console entries at SEVERE level since the last call (errors, failed loads, CSP reports)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the page asked the network stack for since the last call (DevTools events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def clear_logs(driver: WebDriver) -> None:
    driver.get_log("browser")
    driver.get_log("performance")
