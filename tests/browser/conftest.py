"""Browser fixtures: Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

Playwright cannot download its own browser here, so the system's Chromium is launched through ``executable_path``
(``CHROMIUM_PATH``, default ``/usr/bin/chromium``; ``.ci/run`` installs it with apt-get). Without Playwright or the
browser the tests skip with the reason; with ``CI=true`` they fail instead.

Every page opened through these fixtures records console errors and uncaught page errors; a test that caused any
fails at teardown, so a broken script or a missing static file cannot pass unnoticed.
"""

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import skip_or_fail

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it from calling out over this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# On the failure of a test, what each of its pages showed (var/ is not committed).
FAILURES = Path(__file__).resolve().parents[2] / "var" / "browser-failures"
# Playwright's default is 30 s; a page on the live server answers in well under a second, even on a busy machine.
TIMEOUT_MS = 15_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator:
    """One headless Chromium for the browser tests.

    Package-scoped, not session-scoped: while Playwright runs, its event loop sits on this thread, and Django's
    async-safety check (lifted below for these tests only) must be back in force for the tests that follow.
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        skip_or_fail("needs Playwright: pip install -c constraints.txt -e '.[dev]'")
    if not os.access(CHROMIUM_PATH, os.X_OK):
        skip_or_fail(f"needs Chromium at {CHROMIUM_PATH}: apt-get install chromium (or set CHROMIUM_PATH)")
    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse ORM calls from the test
    # ("you cannot call this from an async context"), though the test's own calls are plain synchronous code.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            try:
                launched = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True)
            except Error as error:
                skip_or_fail(f"Chromium at {CHROMIUM_PATH} did not start: {error.message.splitlines()[0]}")
            yield launched
            launched.close()


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions seen on any page of one test."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))

    def _console(self, page, message) -> None:
        if message.type == "error":
            location = message.location or {}
            where = f" ({location.get('url')}:{location.get('lineNumber')})" if location.get("url") else ""
            self.errors.append(f"{page.url}: console error: {message.text}{where}")


@pytest.fixture
def console_log() -> Iterator[ConsoleLog]:
    log = ConsoleLog()
    yield log
    if log.errors:
        pytest.fail("The browser reported errors:\n" + "\n".join(log.errors), pytrace=False)


@pytest.fixture
def new_page(request, browser, live_server, console_log) -> Iterator[Callable]:
    """``new_page(user=None)``: a page in a fresh browser context, signed in as ``user`` when one is given.

    Each user gets a context of their own (their own cookies), so one test can switch between people the way two
    people at two desks would. Signing in injects the session cookie of Django's ``force_login``; the sign-in form
    itself is exercised by ``sign_in``.
    """
    contexts = []

    def make(user=None):
        context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url, locale="en-GB")
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME]
            context.add_cookies(
                [
                    {
                        "name": cookie.key,
                        "value": cookie.value,
                        "url": live_server.url,
                        "httpOnly": True,
                        "sameSite": "Lax",
                    }
                ]
            )
        page = context.new_page()
        console_log.watch(page)
        return page

    yield make
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        FAILURES.mkdir(parents=True, exist_ok=True)
        for index, context in enumerate(contexts):
            for number, page in enumerate(context.pages):
                with contextlib.suppress(Exception):  # a page that crashed has nothing to show
                    page.screenshot(path=str(FAILURES / f"{request.node.name}-{index}-{number}.png"), full_page=True)
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    """A page in a fresh, signed-out browser context."""
    return new_page()


def sign_in(page, login_path: str, username: str, password: str) -> None:
    """Sign in through the form at ``login_path``, its fields and button found by their accessible names."""
    page.goto(login_path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile(r"^(log|sign) in$", re.IGNORECASE)).click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> Path:
    """A full-page screenshot in docs/screenshots/, linked from the README."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
