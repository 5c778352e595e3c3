"""The browser every page test drives: Debian's chromium, headless, through Playwright (never a
browser Playwright would download)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    Route,
    async_playwright,
)

from tests.conftest import RunningGateway

CHROMIUM: Final = "/usr/bin/chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # --no-sandbox: the tests may run as root, where chromium's sandbox cannot start.
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


class Offline:
    """A fresh browser context (its own cookies) whose page may reach only the gateway; what
    else it asked for, and every error it logged (a refused script or a Content-Security-Policy
    violation shows there)."""

    def __init__(self, browser: Browser, gateway: RunningGateway) -> None:
        self.browser = browser
        self.origin = urlsplit(gateway.base_url).netloc
        self.base = gateway.base_url
        self.outside: list[str] = []
        self.errors: list[str] = []

    async def __aenter__(self) -> Page:
        self.context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        page = await self.context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", self._response)
        await page.route("**/*", self._route)
        self.page = page
        return page

    async def __aexit__(self, *exc: object) -> None:
        await self.context.close()

    async def _route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != self.origin:
            self.outside.append(url)
            await route.abort()
        else:
            await route.continue_()

    def _console(self, message: ConsoleMessage) -> None:
        # A page answered with the status the test expects (a 401 at sign-in) is logged as a
        # failed resource; a script, style or request that failed is caught by _response.
        if message.type == "error" and "status of" not in message.text:
            self.errors.append(message.text)

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.errors.append(f"{response.status} for {response.url}")
