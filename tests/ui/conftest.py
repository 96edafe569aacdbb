"""Headless Chromium for the UI tests, from Debian's ``chromium`` and ``chromium-driver``.

Selenium drives the system browser through the chromedriver built from the same
Chromium release, so no browser or driver is ever downloaded at run time (Selenium
Manager is told to stay offline). Without them the UI tests skip with the command that
installs them, except in CI (``CI=true``), where ``.ci/run`` installs them and their
absence is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

INSTALL_HINT = "apt-get install chromium chromium-driver"
WINDOW = (1600, 1600)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Callable[[], AbstractContextManager[WebDriver]]]:
    """A factory of headless browser sessions. Session-scoped so that a test asking for
    it first learns before the warehouse starts, and before minutes of pipeline, whether
    there is a browser; a session is opened only when the test needs the page."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(
            name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path
        )
        reason = f"{missing} not on PATH: `{INSTALL_HINT}` (Debian's packages)"
        if _in_ci():
            pytest.fail(f"CI must run the UI tests, but {reason}; .ci/run installs them")
        pytest.skip(reason)

    @contextmanager
    def session() -> Iterator[WebDriver]:
        options = Options()
        options.binary_location = browser
        for arg in (
            "--headless=new",
            # Root in a container: Chromium's sandbox needs user namespaces we lack.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--lang=en-US",
        ):
            options.add_argument(arg)
        browser_session = webdriver.Chrome(service=Service(driver), options=options)
        try:
            yield browser_session
        finally:
            browser_session.quit()

    # Selenium Manager would fetch a driver if ours were not found: never download.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        yield session
