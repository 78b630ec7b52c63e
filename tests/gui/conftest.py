"""Fixtures for the GUI tests: a real GUI process, real Chromium through Playwright.

Playwright drives Debian's ``/usr/bin/chromium`` (its own browser download needs the
internet). Screenshots of every page visited go to ``test-artifacts/gui/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from .gui_process import PASSWORDS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="package")  # not session: later tests need the event loop free
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Page:
    return browser_context.new_page()


class ConsoleErrors(list[str]):
    """Every console error and uncaught script error of one page, with its URL."""

    def watch(self, page: Page) -> ConsoleErrors:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.append(f"{page.url}: {error}"))
        return self


@pytest.fixture
def console_errors(page: Page) -> ConsoleErrors:
    """Console errors of ``page`` (a failed load, a 404 favicon, a CSP refusal...)."""
    return ConsoleErrors().watch(page)


@pytest.fixture(scope="session")
def artifacts_dir(pytestconfig: pytest.Config) -> Path:
    path = Path(pytestconfig.rootpath) / "test-artifacts" / "gui"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Screenshots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def take(self, page: Page, name: str) -> Path:
        path = self.directory / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="session")
def screenshots(artifacts_dir: Path) -> Screenshots:
    return Screenshots(artifacts_dir)


def sign_in(page: Page, base_url: str, username: str, password: str | None = None) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or PASSWORDS[username])
    page.click("button[type=submit]")
