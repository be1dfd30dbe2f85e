"""The day of a project manager and an operations owner, in a real browser (Playwright driving Debian's Chromium).

The demo organisation is seeded (``load_templates``, ``seed_demo``, one stall-detection pass) and the walk runs on a
fresh project of Priya Shah's, handed to the IT Service Desk whose operations owner is Nina Berg. Each of them has a
browser context of their own, as two people at two desks would. The run also writes the screenshots the README shows
(``docs/screenshots/``).
"""

import datetime as dt
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from handover import services as hs
from handover.choices import Risk, TemplateKind
from operations.models import OperationsTeam
from projects import services as ps
from projects.choices import Stage

from .conftest import screenshot, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture skips (or fails under CI=true) with the reason
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

User = get_user_model()

DEMO_PASSWORD = "handover-demo"
WALK_ITEMS = {
    Risk.INEFFICIENCY: "Runbook walked through with the service desk",
    Risk.FAILURE: "Monitoring and alerting live",
    Risk.ADOPTION: "Key users trained",
}
SENT_BACK = WALK_ITEMS[Risk.ADOPTION]


@pytest.fixture
def demo(transactional_db):
    """The seeded organisation with its stall flags, and a fresh project in planning for the walk."""
    quiet = io.StringIO()
    call_command("load_templates", stdout=quiet)
    call_command("seed_demo", password=DEMO_PASSWORD, stdout=quiet)
    call_command("detect_stalls", stdout=quiet)
    admin = User.objects.get(username="admin")
    priya = User.objects.get(username="priya.shah")
    nina = User.objects.get(username="nina.berg")
    # A short checklist, one mandatory item per risk, keeps the walk to a few clicks per step.
    template = hs.template_create(
        by=admin,
        kind=TemplateKind.CUSTOM,
        name="Browser walk",
        items=[hs.TemplateItemSpec(key=risk.value, title=title, risk=risk) for risk, title in WALK_ITEMS.items()],
    )
    project = ps.project_create(
        by=priya,
        code="WALK-2026",
        name="Field service app",
        receiving_team=OperationsTeam.objects.get(name="IT Service Desk"),
        planned_handover=timezone.localdate() + dt.timedelta(days=30),
    )
    project = ps.project_transition(project=project, to=Stage.PLANNING, by=priya)
    return {"priya": priya, "nina": nina, "template": template, "project": project}


def item_row(page, title: str):
    return page.get_by_test_id("item-row").filter(has=page.get_by_role("heading", name=title, exact=True))


def complete_item(page, title: str, evidence: str) -> None:
    """Mark an item done with an evidence note; htmx swaps the row (and, out of band, the status and readiness)."""
    row = item_row(page, title)
    row.get_by_test_id("item-complete-open").click()
    form = row.locator("form").filter(has=page.get_by_test_id("item-complete"))
    form.get_by_label("Evidence note").fill(evidence)
    form.get_by_test_id("item-complete").click()
    expect(item_row(page, title).get_by_test_id("item-flash")).to_have_text("Marked done.")
    expect(item_row(page, title).get_by_test_id("item-status")).to_have_text("Done")


def verify_item(page, title: str) -> None:
    item_row(page, title).get_by_test_id("item-verify").click()
    expect(item_row(page, title).get_by_test_id("item-flash")).to_have_text("Verified.")
    expect(item_row(page, title).get_by_test_id("item-status")).to_have_text("Verified")


def flash(page):
    return page.locator(".messages")


def move_project(page, to: Stage) -> None:
    page.get_by_test_id(f"stage-move-{to.value}").click()
    expect(flash(page)).to_contain_text(f"WALK-2026 moved to {to.label}.")
    expect(page.get_by_test_id("project-stage")).to_have_text(to.label)


def test_manager_and_owner_carry_a_handover_from_plan_to_closed_project(new_page, demo):
    """GIVEN the demo organisation and a fresh project of Priya's in planning
    WHEN Priya prepares and submits its handover, Nina sends one item back, Priya fixes it and resubmits, Nina
    accepts with a condition and Priya closes the project
    THEN each step shows its outcome, both home pages show the seeded stall flag, and Nina acknowledges it.
    """
    priya_page = new_page()
    sign_in(priya_page, "/accounts/login/", "priya.shah", DEMO_PASSWORD)
    expect(priya_page.get_by_test_id("signed-in-as")).to_contain_text("Priya Shah")
    nina_page = new_page(demo["nina"])  # signed in with a session cookie: no second trip through the form

    # --- Priya's home: her projects, and the seeded stall flag on CRM-2026 (hers; operations acknowledges it).
    manager_home = priya_page.get_by_test_id("home-manager")
    expect(manager_home.get_by_test_id("my-project").filter(has_text="WALK-2026")).to_contain_text("not planned")
    crm_flag = priya_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026")
    expect(crm_flag).to_contain_text("Adoption below target")
    expect(crm_flag.get_by_test_id("stall-acknowledge")).to_have_count(0)

    # --- Priya plans the handover from the project page.
    priya_page.get_by_role("link", name="WALK-2026").click()
    expect(priya_page.get_by_test_id("project-stage")).to_have_text("Planning")
    priya_page.get_by_test_id("plan-handover").click()
    priya_page.get_by_label("Checklist template").select_option(str(demo["template"].pk))
    priya_page.get_by_label("Operations owner").select_option(str(demo["nina"].pk))
    priya_page.get_by_label("Deliverables").fill("The field service app and its link to the CRM.")
    priya_page.get_by_test_id("plan-handover-submit").click()
    expect(flash(priya_page)).to_contain_text("Handover planned: the checklist is ready.")
    expect(priya_page.get_by_test_id("handover-status")).to_have_text("Preparing")
    handover_url = priya_page.url

    # --- ...completes the checklist (inline, htmx) and submits it.
    for risk, title in WALK_ITEMS.items():
        complete_item(priya_page, title, f"Done: {title.lower()}; notes in the project wiki.")
        expect(priya_page.locator(f"#risk-summary-{risk.value}")).to_contain_text("100% done")
    priya_page.get_by_test_id("handover-submit").click()
    expect(flash(priya_page)).to_contain_text("Submitted to operations.")
    expect(priya_page.get_by_test_id("handover-status")).to_have_text("Submitted")

    # --- ...and moves the project on; closing it is offered but blocked by its gate until operations accepts.
    priya_page.get_by_role("link", name="WALK-2026").first.click()
    for stage in (Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE):
        move_project(priya_page, stage)
    expect(priya_page.get_by_test_id("stage-move-closed")).to_be_disabled()
    expect(priya_page.get_by_test_id("stage-gate-closed")).to_contain_text("needs its handover accepted")

    # --- Nina's home: the submitted handover waits for her; she acknowledges the seeded stall flag.
    nina_page.goto("/")
    expect(nina_page.get_by_test_id("incoming-handover").filter(has_text="WALK-2026")).to_contain_text("Submitted")
    to_decide = nina_page.get_by_test_id("waits-on-operations")
    expect(to_decide.get_by_role("link", name=re.compile("WALK-2026"))).to_be_visible()
    nina_flag = nina_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026")
    nina_flag.get_by_label("What happens next?").fill("Adoption campaign with the sales leads next week.")
    nina_flag.get_by_test_id("stall-acknowledge").click()
    nina_flag = nina_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026")
    expect(nina_flag.get_by_test_id("stall-acknowledged")).to_contain_text("Acknowledged by Nina Berg")
    expect(nina_flag.get_by_test_id("stall-acknowledge")).to_have_count(0)
    screenshot(nina_page, "home-operations.png")

    # --- Nina verifies two items and returns the handover, sending the third back.
    to_decide.get_by_role("link", name=re.compile("WALK-2026")).click()
    expect(nina_page.get_by_test_id("handover-status")).to_have_text("Submitted")
    verify_item(nina_page, WALK_ITEMS[Risk.INEFFICIENCY])
    verify_item(nina_page, WALK_ITEMS[Risk.FAILURE])
    expect(nina_page.locator("#risk-summary-failure")).to_contain_text("100% verified")
    nina_page.get_by_test_id("handover-return-open").click()
    return_form = nina_page.get_by_test_id("return-form")
    return_form.get_by_label("Why is it returned?").fill("Training covered the office staff only.")
    return_form.get_by_label(SENT_BACK).check()
    return_form.get_by_test_id("handover-return").click()
    expect(flash(nina_page)).to_contain_text("Handover returned to the project.")
    expect(nina_page.get_by_test_id("handover-status")).to_have_text("Returned")
    expect(item_row(nina_page, SENT_BACK).get_by_test_id("item-status")).to_have_text("Open")

    # --- Priya's home shows what waits on her: the returned handover and the item sent back, with the reason;
    # the stall flag now shows Nina's acknowledgement.
    priya_page.goto("/")
    waiting = priya_page.get_by_test_id("waits-on-manager")
    expect(waiting).to_contain_text("WALK-2026 was returned by operations")
    sent_back = waiting.get_by_test_id("sent-back-item")
    expect(sent_back).to_contain_text("Training covered the office staff only.")
    expect(
        priya_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026").get_by_test_id("stall-acknowledged")
    ).to_contain_text("Nina Berg")
    screenshot(priya_page, "home-manager.png")

    # --- She fixes the item and resubmits.
    sent_back.get_by_role("link", name=SENT_BACK).click()
    expect(item_row(priya_page, SENT_BACK).get_by_test_id("item-sent-back")).to_contain_text("office staff only")
    complete_item(priya_page, SENT_BACK, "Field engineers trained too: 42 of 42, attendance list attached.")
    expect(priya_page.get_by_test_id("handover-status")).to_have_text("Preparing")
    priya_page.get_by_test_id("handover-submit").click()
    expect(flash(priya_page)).to_contain_text("Submitted to operations.")
    expect(priya_page.get_by_test_id("handover-status")).to_have_text("Submitted")

    # --- Nina verifies the fixed item and accepts with a condition.
    nina_page.goto(handover_url)
    verify_item(nina_page, SENT_BACK)
    for risk in Risk:
        expect(nina_page.locator(f"#risk-summary-{risk.value}")).to_contain_text("100% verified")
    nina_page.get_by_test_id("handover-accept-with-conditions-open").click()
    accept_form = nina_page.get_by_test_id("accept-with-conditions-form")
    accept_form.get_by_label("Note (optional)").fill("Accepted; the adoption check stays with the project.")
    first = accept_form.get_by_test_id("condition-row").first
    first.get_by_label("Condition").fill("Report weekly active users of the app for the first month.")
    first.get_by_label("Owner").select_option(str(demo["priya"].pk))
    due = timezone.localdate() + dt.timedelta(days=30)
    first.get_by_label("Due date").fill(due.isoformat())
    accept_form.get_by_test_id("handover-accept-with-conditions").click()
    expect(flash(nina_page)).to_contain_text("Handover accepted with 1 condition(s).")
    expect(nina_page.get_by_test_id("handover-status")).to_have_text("Accepted with conditions")
    expect(nina_page.get_by_test_id("condition")).to_contain_text("Report weekly active users")
    decisions = nina_page.get_by_test_id("decision")
    expect(decisions).to_have_count(2)
    expect(decisions.filter(has_text="Returned")).to_contain_text("office staff only")
    expect(decisions.filter(has_text="Accepted with conditions")).to_contain_text("Report weekly active users")
    screenshot(nina_page, "handover.png")

    # --- Priya closes the project: the gate has opened.
    priya_page.goto(handover_url)
    priya_page.get_by_role("link", name="WALK-2026").first.click()
    move_project(priya_page, Stage.CLOSED)
    expect(priya_page.get_by_test_id("project-history")).to_contain_text("moved the project from Closure to Closed")

    # --- The portfolio board: the walk's project among the closed ones, the seeded stalls standing out.
    priya_page.get_by_role("navigation", name="Main").get_by_role("link", name="Portfolio").click()
    expect(
        priya_page.locator("#stage-closed").get_by_test_id("board-card").filter(has_text="WALK-2026")
    ).to_be_visible()
    expect(priya_page.get_by_test_id("board-summary")).to_contain_text(re.compile(r"[1-9]\d* stalled"))
    expect(priya_page.get_by_test_id("board-card").filter(has_text="CRM-2026")).to_contain_text("Stalled")
    screenshot(priya_page, "portfolio.png")
