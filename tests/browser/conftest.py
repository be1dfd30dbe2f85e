"""Browser fixtures: Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

Playwright cannot download its own browser here, so the system's Chromium is launched through ``executable_path``
(``CHROMIUM_PATH``, default ``/usr/bin/chromium``; ``.ci/run`` installs it with apt-get). Without Playwright or the
browser the tests skip with the reason; with ``CI=true`` they fail instead.

Every page opened through these fixtures records console errors and uncaught page errors; a test that caused any
fails at teardown, so a broken script or a missing static file cannot pass unnoticed. A step that provokes a 4xx on
purpose (Chromium logs every one as a console error) says so with ``console_log.expecting(...)``.

Every page also reports what the Content-Security-Policy blocked (its ``securitypolicyviolation`` events, and the
console messages that name the policy): any violation fails the test at teardown, and no ``expecting`` excuses one.

The demo organisation (``demo``) is seeded and walked at fixed moments (time-machine), so that the screenshots
written to docs/screenshots/ come out the same on every run: the same dates, the same times of day.
"""

import contextlib
import datetime as dt
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
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
PHONE = {"width": 390, "height": 844}
DEMO_PASSWORD = "handover-demo"
# The demo is seeded at SEEDED_AT (its story dates are days before it) and walked at WALK_AT with the clock stopped,
# so that every date and time a screenshot shows is the same on each run. A Tuesday morning.
SEEDED_AT = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
WALK_AT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
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


# Runs in every page before its own scripts (injected by the browser, so the page's CSP does not apply to it):
# hands each violation of the policy to the test through the binding ``__cspViolation``.
_CSP_WATCH_JS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || document.location.href}:${event.lineNumber} ${event.sample || ""}`.trimEnd());
}, true);
"""


@dataclass
class ConsoleLog:
    """Console errors, uncaught exceptions and Content-Security-Policy violations seen on any page of one test."""

    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def watch_context(self, context) -> None:
        """Before any page of ``context`` opens: its pages report what the policy blocked."""
        context.expose_binding("__cspViolation", lambda source, text: self._csp(source["page"], text))
        context.add_init_script(_CSP_WATCH_JS)

    def watch(self, page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))

    def _csp(self, page, text: str) -> None:
        self.csp_violations.append(f"{page.url}: {text}")

    def _console(self, page, message) -> None:
        if "Content Security Policy" in message.text:
            self._csp(page, f"console: {message.text}")
            return
        if message.type == "error":
            if any(text in message.text for text in self.expected):
                self.seen.append(message.text)
                return
            location = message.location or {}
            where = f" ({location.get('url')}:{location.get('lineNumber')})" if location.get("url") else ""
            self.errors.append(f"{page.url}: console error: {message.text}{where}")

    @contextlib.contextmanager
    def expecting(self, text: str, page=None):
        """A step that provokes an error on purpose (a form refused with 400 logs "Failed to load resource: the
        server responded with a status of 400"): such messages are expected inside the block, and at least one must
        come, so that the block proves the answer really was that status."""
        self.expected.append(text)
        before = len(self.seen)
        try:
            yield
            if page is not None:
                page.wait_for_function("true")  # one round trip: the console events have been delivered
            assert len(self.seen) > before, f"expected a console error containing {text!r}"
        finally:
            self.expected.remove(text)


@pytest.fixture
def console_log() -> Iterator[ConsoleLog]:
    log = ConsoleLog()
    yield log
    if log.csp_violations:
        pytest.fail("The Content-Security-Policy blocked:\n" + "\n".join(log.csp_violations), pytrace=False)
    if log.errors:
        pytest.fail("The browser reported errors:\n" + "\n".join(log.errors), pytrace=False)


@pytest.fixture
def new_page(request, browser, live_server, console_log) -> Iterator[Callable]:
    """``new_page(user=None, viewport=VIEWPORT)``: a page in a fresh browser context, signed in as ``user`` when one
    is given.

    Each user gets a context of their own (their own cookies), so one test can switch between people the way two
    people at two desks would. Signing in injects the session cookie of Django's ``force_login``; the sign-in form
    itself is exercised by ``sign_in``.
    """
    contexts = []

    def make(user=None, *, viewport=VIEWPORT):
        context = browser.new_context(viewport=viewport, base_url=live_server.url, locale="en-GB")
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        contexts.append(context)
        console_log.watch_context(context)
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


@pytest.fixture
def demo(transactional_db, settings) -> Iterator[dict]:
    """The seeded organisation with its stall flags, and a fresh project of Priya Shah's in planning for the walk,
    with the clock stopped at WALK_AT while the test runs.

    The browser keeps the cookies for the session (not until a date the stopped clock would put in the past).
    """
    from handover import services as hs
    from handover.choices import TemplateKind
    from operations.models import OperationsTeam
    from projects import services as ps
    from projects.choices import Stage

    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    settings.CSRF_COOKIE_AGE = None
    user_model = get_user_model()
    with time_machine.travel(SEEDED_AT, tick=True):  # the story's intervals need a running clock
        quiet = io.StringIO()
        call_command("load_templates", stdout=quiet)
        call_command("seed_demo", password=DEMO_PASSWORD, stdout=quiet)
        call_command("detect_stalls", stdout=quiet)
    with time_machine.travel(WALK_AT, tick=False):
        admin = user_model.objects.get(username="admin")
        priya = user_model.objects.get(username="priya.shah")
        # A short checklist, one mandatory item per risk, keeps the walk to a few clicks per step.
        template = hs.template_create(
            by=admin,
            kind=TemplateKind.CUSTOM,
            name="Browser walk",
            items=[hs.TemplateItemSpec(key=risk, title=title, risk=risk) for risk, title in WALK_ITEMS.items()],
        )
        project = ps.project_create(
            by=priya,
            code="WALK-2026",
            name="Field service app",
            receiving_team=OperationsTeam.objects.get(name="IT Service Desk"),
            planned_handover=WALK_AT.date() + dt.timedelta(days=30),
        )
        project = ps.project_transition(project=project, to=Stage.PLANNING, by=priya)
        people = {u.username.split(".")[0]: u for u in user_model.objects.exclude(username="admin")}
        yield {**people, "template": template, "project": project}


WALK_ITEMS = {
    "inefficiency": "Runbook walked through with the service desk",
    "failure": "Monitoring and alerting live",
    "adoption": "Key users trained",
}


# Whether anything sticks out to the right of the viewport (or left of it), outside a scrolling box. Cells of a
# responsive table count even inside their scrolling wrapper: those must fit. The skip link and visually hidden
# text are off-screen on purpose.
_OVERFLOW_JS = """
() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || (box.right <= width + 1 && box.left >= -1)) continue;
    // Off-screen on purpose, for keyboards and screen readers (a responsive table's head, hidden on a phone).
    if (el.closest('.skip-link, .visually-hidden, table.responsive thead')) continue;
    let clipped = false;
    if (!el.closest('table.responsive')) {
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        const o = getComputedStyle(p).overflowX;
        if (o === 'auto' || o === 'scroll' || o === 'hidden') { clipped = true; break; }
      }
    }
    if (!clipped) out.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} `
      + `[${Math.round(box.left)}..${Math.round(box.right)}] "${(el.textContent || '').trim().slice(0, 30)}"`);
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, out: out.slice(0, 12)};
}
"""


def assert_fits(page) -> None:
    """The page does not scroll sideways, and nothing sticks out of the viewport outside a scrolling box.

    Measured once the page has loaded: a click that navigates returns when the new page's elements exist, possibly
    before its stylesheet has arrived, and an unstyled table is wider than a phone."""
    page.wait_for_load_state("load")
    found = page.evaluate(_OVERFLOW_JS)
    assert found["scrollWidth"] <= found["width"], f"{page.url} scrolls sideways: {found}"
    assert not found["out"], f"{page.url}: elements outside the viewport: {found['out']}"


def sign_in(page, login_path: str, username: str, password: str) -> None:
    """Sign in through the form at ``login_path``, its fields and button found by their accessible names."""
    page.goto(login_path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile(r"^(log|sign) in$", re.IGNORECASE)).click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> Path:
    """A full-page screenshot in docs/screenshots/, linked from the README: no hover, no focus ring, no caret, no
    animation, so that the same page gives the same picture (the clock is stopped by ``demo``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.wait_for_load_state("load")
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path
