"""The Content-Security-Policy holds in a real browser: every page renders and runs without the policy blocking
anything (``console_log`` fails a test at teardown on any violation, for every browser test)."""

import pytest

from handover.models import Handover
from operations.models import OperationsTeam

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture skips (or fails under CI=true) with the reason
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_policy_records_a_violation(page, live_server, console_log):
    """GIVEN a page of the product WHEN a script tries to add an inline style THEN the violation is recorded (and
    would fail the test): the harness really sees what the policy blocks."""
    page.goto(f"{live_server.url}/accounts/login/")

    page.evaluate("document.body.setAttribute('style', 'color: red')")

    page.wait_for_function("true")  # one round trip: the violation has been reported
    assert any("style-src" in text for text in console_log.csp_violations), console_log.csp_violations
    console_log.csp_violations.clear()  # seen on purpose: this test must not fail at teardown


def test_the_main_pages_run_under_the_policy(new_page, demo, console_log):
    """GIVEN the demo organisation WHEN its people open their home pages, the portfolio, a handover (and move an
    item on it), a team page, the admin's lists, the API docs and the browsable API THEN each page shows its content
    and the policy blocks nothing."""
    admin_user = type(demo["priya"]).objects.get(username="admin")
    handover = Handover.objects.select_related("project").get(project__code="CRM-2026")
    team = OperationsTeam.objects.get(name="IT Service Desk")

    for person in ("priya", "nina", "felix", "grace", "sofia"):
        home = new_page(demo[person])
        home.goto("/")
        expect(home.get_by_test_id("signed-in-as")).to_be_visible()
        home.close()

    priya = new_page(demo["priya"])
    priya.goto("/portfolio/")
    expect(priya.locator("svg.chart-wide").first).to_be_visible()
    priya.goto(f"/handovers/{handover.pk}/")
    expect(priya.get_by_test_id("risk-group").first).to_be_visible()
    priya.goto(f"/teams/{team.pk}/")
    expect(priya.locator("#team-load svg").first).to_be_attached()

    admin = new_page(admin_user)
    for path in ("/admin/", "/admin/handover/handover/", "/admin/handover/checklistitem/", "/admin/auth/user/"):
        admin.goto(path)
        expect(admin.locator("#content")).to_be_visible()
    admin.goto(f"/admin/handover/handover/{handover.pk}/change/")
    expect(admin.locator("#content form")).to_be_visible()

    admin.goto("/api/docs/")
    expect(admin.locator(".swagger-ui .info .title")).to_contain_text("Handover API")
    admin.locator(".opblock-summary").first.click()  # an operation opens: Swagger UI's own scripts and styles
    expect(admin.locator(".opblock-body").first).to_be_visible()

    for path in ("/api/v1/", "/api/v1/items/", "/api/v1/handovers/"):
        admin.goto(path)
        expect(admin.locator(".response-info")).to_be_visible()
    admin.get_by_role("button", name="Filters").click()  # Bootstrap's modal, from DRF's static files
    expect(admin.locator("#filtersModal")).to_be_visible()
    admin.goto(f"/api/v1/handovers/{handover.pk}/")
    admin.get_by_role("button", name="Extra Actions").click()
    expect(admin.get_by_role("link", name="Submit")).to_be_visible()

    assert console_log.csp_violations == []
