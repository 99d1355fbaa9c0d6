"""Headless Chromium for tests: the system's /usr/bin/chromium (Debian package `chromium`) driven by Playwright.

Playwright is only the driver here: it never downloads a browser of its own, it is pointed at the system one.

    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto("http://127.0.0.1:8080/wallboard")
"""

from __future__ import annotations

import os
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu"]


class BrowserMissing(RuntimeError):
    """No usable browser or driver: the message says how to get one."""


def chromium_path() -> str:
    """The Chromium binary: $CHROMIUM if set, else /usr/bin/chromium."""
    path = os.environ.get("CHROMIUM", CHROMIUM)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise BrowserMissing(f"{path} not found: headless browser tests need Chromium; run `make test` as root "
                             "(tools/install-sysdeps.sh installs the Debian package `chromium`), "
                             "or `apt-get install chromium`")
    return path


def check() -> str:
    """Raise BrowserMissing (saying how to fix it) unless both the browser and the driver are there."""
    path = chromium_path()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise BrowserMissing("the Python package `playwright` is missing: run `make test` "
                             "(or `.venv/bin/pip install -e '.[test]'`)") from exc
    return path


@contextmanager
def headless_chromium(extra_args: list[str] | None = None):
    """Yields a Playwright Browser (sync API) on the system Chromium, closed on exit."""
    path = check()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=FLAGS + list(extra_args or []))
        try:
            yield browser
        finally:
            browser.close()


if __name__ == "__main__":      # smoke check: python -m tools.browser
    with headless_chromium() as b:
        print("chromium", b.version, "at", chromium_path())
