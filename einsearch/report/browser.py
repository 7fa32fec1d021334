"""The system's headless Chromium driven by Selenium: for the report's browser test and its screenshot.

Only Debian's `chromium` and `chromium-driver` packages are used (a browser downloaded by a tool's own
installer cannot be fetched here); `selenium` comes with the dev extra.
"""
from __future__ import annotations

import importlib.util
import shutil
from typing import Any

INSTALL_HINT = "apt-get install chromium chromium-driver, and pip install selenium (the dev extra)"


def missing() -> str | None:
    """Why no headless browser can run here, or None when one can."""
    if importlib.util.find_spec("selenium") is None:
        return f"selenium is not installed ({INSTALL_HINT})"
    if not _binary():
        return f"no chromium on PATH ({INSTALL_HINT})"
    if not shutil.which("chromedriver"):
        return f"no chromedriver on PATH ({INSTALL_HINT})"
    return None


def _binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium WebDriver that records the browser console; RuntimeError if none can run."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _binary()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
