"""The day of a project manager and an operations owner, in a real browser (Playwright driving Debian's Chromium).

The demo organisation is seeded (``load_templates``, ``seed_demo``, one stall-detection pass) and the walk runs on a
fresh project of Priya Shah's, handed to the IT Service Desk whose operations owner is Nina Berg. Each of them has a
browser context of their own, as two people at two desks would. The clock is stopped (``demo``), so the screenshots
the run writes to docs/screenshots/ (linked from the README) are the same on every run.
"""

import datetime as dt
import re

import pytest

from handover import views
from projects.choices import FINAL_STAGES, Stage
from projects.models import Project

from .conftest import DEMO_PASSWORD, PHONE, VIEWPORT, WALK_AT, WALK_ITEMS, assert_fits, screenshot, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture skips (or fails under CI=true) with the reason
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SENT_BACK = WALK_ITEMS["adoption"]
REFUSED_400 = "the server responded with a status of 400"


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
    # The flash of an earlier move on another row is gone: only this row says what just happened.
    expect(page.get_by_test_id("item-flash")).to_have_count(1)


def verify_item(page, title: str) -> None:
    item_row(page, title).get_by_test_id("item-verify").click()
    expect(item_row(page, title).get_by_test_id("item-flash")).to_have_text("Verified.")
    expect(item_row(page, title).get_by_test_id("item-status")).to_have_text("Verified")


def flash(page):
    return page.locator(".messages")


def within_phone_width(locator) -> None:
    """The element is laid out inside the phone's width (not pushed off to the right of a table)."""
    box = locator.bounding_box()
    assert box is not None, locator
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= PHONE["width"], box


def unread(page) -> int:
    counter = page.get_by_test_id("unread-count")
    return int(counter.inner_text().split()[0]) if counter.count() else 0


def move_project(page, to: Stage) -> None:
    page.get_by_test_id(f"stage-move-{to.value}").click()
    expect(flash(page)).to_contain_text(f"WALK-2026 moved to {to.label}.")
    expect(page.get_by_test_id("project-stage")).to_have_text(to.label)


def test_manager_and_owner_carry_a_handover_from_plan_to_closed_project(
    new_page, demo, console_log, settings, monkeypatch
):
    """GIVEN the demo organisation and a fresh project of Priya's in planning
    WHEN Priya prepares and submits its handover, Nina sends one item back and returns it, Priya fixes the item and
    resubmits, Nina accepts with a condition and Priya closes the project
    THEN each step shows its outcome, both home pages show the seeded stall flag, Nina acknowledges and snoozes it,
    and no page logs a console error.
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

    # --- Submitting is offered but blocked by its gate, which names what is open.
    expect(priya_page.get_by_test_id("handover-submit")).to_be_disabled()
    expect(priya_page.get_by_test_id("handover-gate-submit")).to_contain_text("3 still open")

    # --- ...she completes the checklist (inline, htmx): the gate opens, and she submits.
    for risk, title in WALK_ITEMS.items():
        complete_item(priya_page, title, f"Done: {title.lower()}; notes in the project wiki.")
        expect(priya_page.locator(f"#risk-summary-{risk}")).to_contain_text("100% done")
    expect(priya_page.get_by_test_id("handover-gate-submit")).to_have_count(0)
    priya_page.get_by_test_id("handover-submit").click()
    expect(flash(priya_page)).to_contain_text("Submitted to operations.")
    expect(priya_page.get_by_test_id("handover-status")).to_have_text("Submitted")

    # --- ...and moves the project on; closing it is offered but blocked by its gate until operations accepts.
    priya_page.get_by_role("link", name="WALK-2026").first.click()
    for stage in (Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE):
        move_project(priya_page, stage)
    expect(priya_page.get_by_test_id("stage-move-closed")).to_be_disabled()
    expect(priya_page.get_by_test_id("stage-gate-closed")).to_contain_text("needs its handover accepted")

    # --- Nina's home: the submitted handover waits for her; she acknowledges the seeded stall flag, then snoozes it.
    nina_page.goto("/")
    expect(nina_page.get_by_test_id("incoming-handover").filter(has_text="WALK-2026")).to_contain_text("Submitted")
    to_decide = nina_page.get_by_test_id("waits-on-operations")
    walk_to_decide = to_decide.get_by_test_id("to-decide-handover").filter(has_text="WALK-2026").get_by_role("link")
    expect(walk_to_decide).to_be_visible()
    nina_flag = nina_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026")
    nina_flag.get_by_label("What happens next?").fill("Adoption campaign with the sales leads next week.")
    nina_flag.get_by_test_id("stall-acknowledge").click()
    nina_flag = nina_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026")
    expect(nina_flag.get_by_test_id("stall-acknowledged")).to_contain_text("Acknowledged by Nina Berg")
    expect(nina_flag.get_by_test_id("stall-acknowledge")).to_have_count(0)
    nina_flag.get_by_test_id("stall-snooze-open").click()
    snooze_until = (WALK_AT + dt.timedelta(days=7)).strftime("%Y-%m-%dT10:00")
    nina_flag.get_by_label("Snooze until").fill(snooze_until)
    nina_flag.get_by_label("Reason").fill("The campaign needs a week to show.")
    nina_flag.get_by_test_id("stall-snooze").click()
    nina_flag = nina_page.get_by_test_id("stall-flag").filter(has_text="CRM-2026")
    expect(nina_flag.get_by_test_id("stall-snoozed")).to_contain_text("Snoozed until 8 Dec 2026, 10:00")
    expect(nina_flag).to_contain_text("Acknowledged by Nina Berg")  # a snoozed flag stays visible
    screenshot(nina_page, "home-operations.png")

    # --- Nina verifies two items and sends the third back with the item's own button: first without saying what
    # is missing (refused with 400, the error swapped in next to the field), then with the reason.
    walk_to_decide.click()
    expect(nina_page.get_by_test_id("handover-status")).to_have_text("Submitted")
    expect(nina_page.get_by_test_id("handover-accept")).to_be_disabled()
    expect(nina_page.get_by_test_id("handover-gate-accept")).to_contain_text("3 not yet")
    verify_item(nina_page, WALK_ITEMS["inefficiency"])
    verify_item(nina_page, WALK_ITEMS["failure"])
    expect(nina_page.locator("#risk-summary-failure")).to_contain_text("100% verified")
    row = item_row(nina_page, SENT_BACK)
    row.get_by_test_id("item-send-back-open").click()
    with console_log.expecting(REFUSED_400, nina_page):
        row.get_by_test_id("item-send-back").click()
        expect(item_row(nina_page, SENT_BACK).get_by_test_id("field-error")).to_contain_text(
            "A reason for sending the item back is required."
        )
    row = item_row(nina_page, SENT_BACK)
    row.get_by_label("What is missing?").fill("Training covered the office staff only.")
    row.get_by_test_id("item-send-back").click()
    expect(item_row(nina_page, SENT_BACK).get_by_test_id("item-flash")).to_have_text("Sent back to the project.")
    expect(item_row(nina_page, SENT_BACK).get_by_test_id("item-status")).to_have_text("Open")
    assert_fits(nina_page)
    screenshot(nina_page, "handover.png")
    nina_page.set_viewport_size(PHONE)
    assert_fits(nina_page)
    screenshot(nina_page, "handover-phone.png")
    nina_page.set_viewport_size(VIEWPORT)
    nina_page.get_by_test_id("handover-return-open").click()
    return_form = nina_page.get_by_test_id("return-form")
    return_form.get_by_label("Why is it returned?").fill("Key users are not all trained yet; see the item.")
    return_form.get_by_test_id("handover-return").click()
    expect(flash(nina_page)).to_contain_text("Handover returned to the project.")
    expect(nina_page.get_by_test_id("handover-status")).to_have_text("Returned")
    # Nothing on the checklist waits on her now, so its risk groups are closed; she opens the adoption one.
    adoption = nina_page.locator("details.risk-details[data-risk=adoption]")
    expect(adoption).not_to_have_attribute("open", "")
    adoption.locator(":scope > summary").click()
    expect(item_row(nina_page, SENT_BACK).get_by_test_id("item-sent-back")).to_contain_text("office staff only")

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

    # --- Nina verifies the fixed item and accepts with a condition (a second row added, then left empty).
    nina_page.goto(handover_url)
    verify_item(nina_page, SENT_BACK)
    for risk in WALK_ITEMS:
        expect(nina_page.locator(f"#risk-summary-{risk}")).to_contain_text("100% verified")
    nina_page.get_by_test_id("handover-accept-with-conditions-open").click()
    accept_form = nina_page.get_by_test_id("accept-with-conditions-form")
    accept_form.get_by_label("Note (optional)").fill("Accepted; the adoption check stays with the project.")
    first = accept_form.get_by_test_id("condition-row").first
    first.get_by_label("Condition").fill("Report weekly active users of the app for the first month.")
    first.get_by_label("Owner").select_option(str(demo["priya"].pk))
    due = WALK_AT.date() + dt.timedelta(days=30)
    first.get_by_label("Due date").fill(due.isoformat())
    accept_form.get_by_test_id("add-condition").click()  # htmx: only the rows come back, the first as typed
    expect(accept_form.get_by_test_id("condition-row")).to_have_count(2)
    expect(first.get_by_label("Condition")).to_have_value("Report weekly active users of the app for the first month.")
    accept_form.get_by_test_id("handover-accept-with-conditions").click()
    expect(flash(nina_page)).to_contain_text("Handover accepted with 1 condition(s).")
    expect(nina_page.get_by_test_id("handover-status")).to_have_text("Accepted with conditions")
    expect(nina_page.get_by_test_id("condition")).to_contain_text("Report weekly active users")
    decisions = nina_page.get_by_test_id("decision")
    expect(decisions).to_have_count(2)
    expect(decisions.filter(has_text="Returned")).to_contain_text("Key users are not all trained yet")
    expect(decisions.filter(has_text="Accepted with conditions")).to_contain_text("Report weekly active users")
    assert_fits(nina_page)
    screenshot(nina_page, "handover-accepted.png")

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
    assert_fits(priya_page)
    screenshot(priya_page, "portfolio.png")

    # --- A column shows its most urgent cards only; its "n more" opens the projects list on that stage, with the
    # board's filter, and paging the list keeps both. (Fifty-odd more projects to the desk, and a cap of 2 cards.)
    settings.HANDOVER_BOARD_COLUMN_CAP = 2
    desk = demo["project"].receiving_team
    Project.objects.bulk_create(
        Project(
            code=f"BULK-{n:02d}", name=f"Kiosk {n}", manager=demo["priya"], receiving_team=desk, stage=Stage.EXECUTION
        )
        for n in range(52)
    )
    executing = Project.objects.visible_to(demo["priya"]).filter(receiving_team=desk, stage=Stage.EXECUTION).count()
    priya_page.get_by_test_id("board-filters").get_by_label("Receiving team").select_option(label=desk.name)
    priya_page.get_by_test_id("board-filters").get_by_role("button", name="Filter").click()
    column = priya_page.locator("#stage-execution")
    expect(column.get_by_test_id("board-card")).to_have_count(2)
    expect(column.get_by_test_id("column-count")).to_have_text(str(executing))
    column.get_by_test_id("column-more").filter(has_text=f"{executing - 2} more").click()
    expect(priya_page).to_have_url(re.compile(rf"/projects/\?(?=.*team={desk.pk})(?=.*stage=execution)"))
    expect(priya_page.get_by_label("Receiving team")).to_have_value(str(desk.pk))
    expect(priya_page.get_by_test_id("project-row")).to_have_count(50)
    expect(priya_page.get_by_test_id("list-count")).to_have_text(f"1\u201350 of {executing} projects")
    priya_page.get_by_test_id("page-next").click()
    expect(priya_page).to_have_url(re.compile(rf"/projects/\?(?=.*team={desk.pk})(?=.*stage=execution)(?=.*page=2)"))
    rows = priya_page.get_by_test_id("project-row")
    expect(rows).to_have_count(executing - 50)
    expect(rows.locator("td[data-label=Team]")).to_have_text([desk.name] * (executing - 50))
    expect(rows.locator("td[data-label=Stage]")).to_have_text(["Execution"] * (executing - 50))
    assert_fits(priya_page)

    # --- Opening her notification about the stall marks it read and lands on the CRM handover's flags.
    priya_page.goto("/")
    before = unread(priya_page)
    priya_page.get_by_test_id("notification-link").filter(has_text="CRM-2026").first.click()
    expect(priya_page).to_have_url(re.compile(r"/handovers/\d+/#stalls$"))
    expect(priya_page.get_by_test_id("stall-flag").filter(has_text="Adoption below target")).to_be_visible()
    assert unread(priya_page) == before - 1

    # --- Home stays bounded: with one row fewer than her running projects, the section shows as many, its total,
    # and "All n", which opens the projects list filtered to hers.
    running = Project.objects.filter(manager=demo["priya"]).exclude(stage__in=FINAL_STAGES).count()
    assert running >= 2
    with monkeypatch.context() as patch:
        patch.setattr(views, "HOME_ROWS", running - 1)
        priya_page.goto("/")
        section = priya_page.get_by_test_id("home-manager")
        expect(section.get_by_test_id("my-project")).to_have_count(running - 1)
        expect(section.get_by_test_id("section-total")).to_have_text(f"({running})")
        section.get_by_test_id("all-link").click()
        expect(priya_page).to_have_url(re.compile(rf"/projects/\?manager={demo['priya'].pk}$"))
        everything = Project.objects.filter(manager=demo["priya"]).count()  # the list shows every stage
        expect(priya_page.get_by_test_id("list-count")).to_contain_text(f"of {everything} ")


def test_the_pages_fit_a_phone(new_page, demo):
    """GIVEN the demo organisation WHEN its people open their pages 390px wide THEN nothing makes the page scroll
    sideways or sticks out of it (tables turn into cards, charts are drawn for the width), and no console error."""
    priya = new_page(demo["priya"], viewport=PHONE)
    nina = new_page(demo["nina"], viewport=PHONE)
    felix = new_page(demo["felix"], viewport=PHONE)
    amara = new_page(demo["amara"], viewport=PHONE)

    priya.goto("/")
    card = priya.get_by_test_id("my-project").filter(has_text="CRM-2026")
    adoption = card.locator("td[data-label=Adoption]")  # a readiness column, labelled, on the card itself
    expect(adoption).to_be_visible()
    within_phone_width(adoption)
    within_phone_width(card.locator("td[data-label=Flags]"))
    assert_fits(priya)
    screenshot(priya, "home-manager-phone.png")

    priya.goto("/portfolio/")
    expect(priya.get_by_test_id("board-card").first).to_be_visible()
    expect(priya.locator("svg.chart-narrow").first).to_be_visible()
    expect(priya.locator("svg.chart-wide").first).to_be_hidden()
    assert_fits(priya)
    screenshot(priya, "portfolio-phone.png")
    for path in ("/handovers/", "/projects/"):  # the list pages' rows become cards
        priya.goto(path)
        expect(priya.locator("table.responsive tbody tr").first).to_be_visible()
        assert_fits(priya)

    nina.goto("/")
    within_phone_width(nina.get_by_test_id("incoming-handover").first.locator("td[data-label=Readiness]"))
    assert_fits(nina)
    screenshot(nina, "home-operations-phone.png")
    nina.get_by_role("navigation", name="Main").get_by_role("link", name="Teams").click()
    nina.get_by_role("link", name="IT Service Desk").first.click()
    expect(nina.locator("#team-load svg.chart-narrow")).to_be_visible()
    assert_fits(nina)

    felix.goto("/")
    waiting = felix.get_by_test_id("to-verify-group").filter(has_text="FC14-LAUNCH")
    expect(waiting.get_by_test_id("to-verify-count")).to_contain_text(re.compile(r"\d+ items"))
    waiting.get_by_role("link").click()  # the handover page, filtered to what needs him
    expect(felix.get_by_test_id("needs-me-filter")).to_contain_text("Showing only what needs you")
    expect(felix.get_by_test_id("item-verify").first).to_be_visible()
    assert_fits(felix)

    amara.goto("/")
    amara.get_by_role("link", name="WMS-UPGRADE").first.click()
    within_phone_width(amara.locator(".timeline .step", has_text="Monitoring"))
    assert_fits(amara)
