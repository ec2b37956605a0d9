"""Headless Chromium through chromedriver (Debian's chromium and chromium-driver), for the
browser tests of the web UI and the digest: one way to start it, so every test sees the same
browser. `javascript=False` turns scripts off, as a user may (every page must work without).
Talks to: /usr/bin/chromium, /usr/bin/chromedriver (selenium).
Tests: tests/e2e/test_web_browser.py, tests/e2e/test_web_people_s21.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def headless_chromium(width: int, height: int, *, javascript: bool = True):
    """A started selenium Chrome driver with a `width` x `height` window; the caller quits it."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are needed (scripts/install-deps --test)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    return driver
