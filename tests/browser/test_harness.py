"""The browser harness itself: Chromium starts, signs in through a real form, and console errors fail a test."""

import re

import pytest

from tests.factories import AdminFactory

from .conftest import sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture skips (or fails under CI=true) with the reason
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_sign_in_through_the_form(page):
    """GIVEN an administrator WHEN they sign in on the admin login form THEN the admin index greets them."""
    AdminFactory(username="root", password="pw-for-tests-1")
    # Django's admin templates link no icon, so Chromium asks for /favicon.ico: it is served (a redirect to the
    # product's icon), so no 404 reaches the console.

    sign_in(page, "/admin/login/", "root", "pw-for-tests-1")

    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def test_console_errors_and_uncaught_exceptions_are_recorded(page, console_log):
    """GIVEN a page that logs an error and throws WHEN it runs THEN both are recorded (and would fail the test)."""
    page.set_content("<button onclick=\"console.error('logged'); null.boom()\">Go</button>")

    page.get_by_role("button", name="Go").click()

    page.wait_for_function("true")  # one round trip: the events of the click have been delivered
    assert any("console error: logged" in error for error in console_log.errors), console_log.errors
    assert any("uncaught" in error and "boom" in error for error in console_log.errors), console_log.errors
    console_log.errors.clear()  # seen on purpose: this test must not fail at teardown
