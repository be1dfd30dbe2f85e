"""The Content-Security-Policy holds in a real browser: every page renders and runs without the policy blocking
anything (``console_log`` fails a test at teardown on any violation, for every browser test)."""

import re

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
    item on it), a team page, search from the navigation (and open what it found), save a view of the board and
    reopen it, the admin's lists, the API docs and the browsable API THEN each page shows its content and the
    policy blocks nothing; search never finds a confidential project for someone outside it."""
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

    # Search from the navigation's box finds a project and opens it.
    nav_search = priya.get_by_test_id("nav-search")
    nav_search.get_by_role("searchbox").fill("crm-2026")
    nav_search.get_by_role("button", name="Search").click()
    expect(priya.get_by_test_id("search-summary")).to_contain_text("for “crm-2026”")
    priya.get_by_test_id("search-result").filter(has_text="CRM-2026").first.get_by_role("link").click()
    expect(priya).to_have_url(re.compile(rf"/projects/{handover.project_id}/$"))
    # A board filtered by a team is saved as a view and reopened from the list of saved views.
    priya.goto("/portfolio/")
    priya.get_by_label("Receiving team").select_option(label="IT Service Desk")
    priya.get_by_test_id("board-filters").get_by_role("button", name="Filter").click()
    priya.get_by_label("Save these filters as").fill("Service desk")
    priya.get_by_role("button", name="Save this view").click()
    expect(priya).to_have_url(re.compile(rf"/portfolio/\?team={team.pk}$"))
    priya.goto("/portfolio/")
    expect(priya.get_by_label("Receiving team")).to_have_value("")
    priya.get_by_test_id("saved-view").get_by_role("link", name="Service desk").click()
    expect(priya).to_have_url(re.compile(rf"/portfolio/\?team={team.pk}$"))
    expect(priya.get_by_label("Receiving team")).to_have_value(str(team.pk))
    # Someone outside the confidential project does not find it.
    mia = new_page(demo["mia"])
    mia.goto("/search/?q=NORDIC")
    expect(mia.get_by_test_id("search-summary")).to_contain_text("Nothing you may see matches")
    mia.close()

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
