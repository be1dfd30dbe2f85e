"""The handover page and its neighbours as a reader meets them: blocked moves say why, the checklist opens where
something waits on you and filters to it, decisions show what they sent back, conditions can be added row by row
without JavaScript, notifications open their handover, and the team's load counts only what is still coming."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from handover import services as hs
from handover.choices import HandoverStatus, ItemStatus, Risk, Side, StallRule
from handover.models import Condition, Decision
from tests.factories import ProjectFactory

from .conftest import EVIDENCE_URL, item_of
from .test_views import body, flag, notify, plan, row_html, tid, url

pytestmark = pytest.mark.django_db


def groups_of(html: str) -> dict[str, str]:
    """Each risk group's ``<details>`` opening tag, by risk."""
    return {m["risk"]: m[0] for m in re.finditer(r'<details class="risk-details"[^>]*data-risk="(?P<risk>\w+)">', html)}


# ------------------------------------------------------------------------------------------ blocked moves


def test_submit_is_shown_disabled_with_the_gate_while_items_are_open(client_for, manager, handover):
    html = body(client_for(manager).get(url("handover:detail", handover.pk)))

    assert re.search(r'<button type="button" [^>]*disabled aria-describedby="gate-submit"[^>]*"handover-submit"', html)
    gate = html[html.index(tid("handover-gate-submit")) :].split("</p>")[0]
    assert "Submitting needs every mandatory item done, waived or not applicable; 6 still open:" in gate
    assert tid("submit-form") not in html


def test_accept_is_shown_disabled_with_the_gate_until_verified_and_return_stays_open(
    client_for, manager, owner, ops_member, handover
):
    for item in handover.items.filter(mandatory=True):
        hs.item_complete(item=item, by=ops_member if item.side == Side.OPERATIONS else manager, evidence_text="Ok.")
    hs.handover_submit(handover=handover, by=manager)

    html = body(client_for(owner).get(url("handover:detail", handover.pk)))

    assert 'disabled aria-describedby="gate-accept" data-testid="handover-accept"' in html
    assert 'disabled aria-describedby="gate-accept" data-testid="handover-accept-with-conditions"' in html
    assert "Accepting needs every mandatory item verified, waived with approval or not applicable; 6 not yet" in html
    assert tid("accept-form") not in html
    assert tid("handover-return-open") in html


def test_once_the_gate_opens_the_buttons_are_live(client_for, owner, submitted_handover):
    html = body(client_for(owner).get(url("handover:detail", submitted_handover.pk)))

    assert tid("accept-form") in html
    assert tid("accept-with-conditions-form") in html
    assert "gate-accept" not in html


# ------------------------------------------------------------------------------------- groups and filter


def test_the_risk_groups_open_where_something_waits_on_the_viewer(client_for, manager, owner, viewer, handover):
    """GIVEN the failure items done and every other item open WHEN each reads the page THEN the manager finds the
    failure group closed (its items wait on operations) and the others open, the owner the failure group open (an
    item to verify), a viewer every group closed."""
    for side in Side:
        item = item_of(handover, Risk.FAILURE, side)
        hs.item_complete(item=item, by=manager if side == Side.PROJECT else owner, evidence_text="Done.")

    as_manager = groups_of(body(client_for(manager).get(url("handover:detail", handover.pk))))
    as_owner = groups_of(body(client_for(owner).get(url("handover:detail", handover.pk))))
    as_viewer = groups_of(body(client_for(viewer).get(url("handover:detail", handover.pk))))

    assert " open " in as_manager["inefficiency"]
    assert " open " in as_manager["adoption"]
    assert " open " not in as_manager["failure"]
    assert " open " in as_owner["failure"]  # the project-side item to verify (the other is their own work)
    assert not any(" open " in tag for tag in as_viewer.values())
    assert len(as_viewer) == 3


def test_only_what_needs_me_keeps_just_those_items_without_javascript(client_for, manager, handover):
    """GIVEN two of the three project-side items done WHEN the manager asks for only what needs them (a plain
    link, ``?needs=me``) THEN the page lists the one left, and says what it hides."""
    left = item_of(handover, Risk.ADOPTION)
    for risk in (Risk.INEFFICIENCY, Risk.FAILURE):
        hs.item_complete(item=item_of(handover, risk), by=manager, evidence_url=EVIDENCE_URL)
    client = client_for(manager)

    full = body(client.get(url("handover:detail", handover.pk)))
    filtered = body(client.get(url("handover:detail", handover.pk), {"needs": "me"}))

    assert "Only what needs me (1)" in full
    assert full.count(tid("item-row")) == 7
    assert filtered.count(tid("item-row")) == 1
    assert f'id="item-{left.pk}"' in filtered
    assert "Showing only what needs you (1)" in filtered
    assert "Nothing here needs you." in filtered
    assert "other items of this risk hidden" in filtered
    assert tid("item-complete") in row_html(filtered, left.pk)
    assert all(" open " in tag for tag in groups_of(filtered).values())


def test_the_risk_summary_counts_what_needs_you(client_for, manager, handover):
    html = body(client_for(manager).get(url("handover:detail", handover.pk)))

    summary = html[html.index('id="risk-summary-failure"') :].split("</span>")[0]
    assert "2 items" in summary
    assert "1 needs you" in summary  # the project-side item; the operations side completes its own


# ------------------------------------------------------------------------------------ decisions and flash


def test_a_return_shows_which_items_it_sent_back(client_for, owner, returned_handover):
    sent = item_of(returned_handover)

    html = body(client_for(owner).get(url("handover:detail", returned_handover.pk)))

    decision = html[html.index(tid("decision")) :]
    block = decision[decision.index(tid("decision-sent-back")) :].split("</div>")[0]
    assert "Sent back to the project (1)" in block
    assert f'href="#item-{sent.pk}">{sent.title}</a>' in block


def test_a_decision_without_the_sent_back_record_still_renders(client_for, owner, returned_handover):
    decision = Decision.objects.get(handover=returned_handover)
    decision.snapshot.pop("sent_back", None)
    decision.save(update_fields=["snapshot"])

    response = client_for(owner).get(url("handover:detail", returned_handover.pk))

    assert response.status_code == 200
    assert tid("decision") in body(response)
    assert tid("decision-sent-back") not in body(response)


def test_a_moves_flash_is_cleared_from_other_rows_by_the_next_move(client_for, manager, handover):
    first, second = item_of(handover, Risk.FAILURE), item_of(handover, Risk.ADOPTION)
    client = client_for(manager, htmx=True)

    done = client.post(url("handover:item-action", first.pk, "complete"), {f"i{first.pk}-complete-text": "Ok."})
    again = client.post(url("handover:item-action", second.pk, "complete"), {f"i{second.pk}-complete-text": "Ok."})

    assert tid("item-flash") in body(done)
    assert body(again).count(tid("item-flash")) == 1  # its own row's; the browser walk sees the first one go
    page = body(client_for(manager).get(url("handover:detail", handover.pk)))
    # Each item move first clears the flashes of earlier moves on the page: js/app.js, on htmx:beforeRequest inside
    # #checklist (a file, since the CSP allows no inline handler; the browser walk sees the first flash go).
    assert '<section id="checklist"' in page
    assert '<script src="/static/js/app.js" defer></script>' in page


def test_the_activity_log_shows_the_latest_and_loads_older_entries_on_demand(client_for, manager, handover):
    """GIVEN 45 comments (and the handover's creation) WHEN the page is read THEN it shows the latest 20 and a link
    to the next 20, whose chunk (htmx) links to the last ones; without htmx the same chunk is a page."""
    for n in range(45):
        hs.comment_add(handover=handover, by=manager, body=f"Note {n}")
    client = client_for(manager)

    html = body(client.get(url("handover:detail", handover.pk)))
    activity = html[html.index('id="activity"') :].split("</section>")[0]
    older = re.search(r'href="([^"]+)" hx-get="\1"[^>]*data-testid="activity-older"', activity)
    chunk = body(client_for(manager, htmx=True).get(older.group(1)))
    last = re.search(r'href="([^"]+)"[^>]*data-testid="activity-older"', chunk)
    rest = body(client_for(manager, htmx=True).get(last.group(1)))
    page = client.get(older.group(1))

    assert activity.count("<li><time") == 20
    assert "Note 44" in activity
    assert "Note 25" in activity
    assert "Note 24" not in activity
    assert "<html" not in chunk
    assert chunk.count("<li><time") == 20
    assert "Note 24" in chunk
    assert "Note 5" in chunk
    assert "Note 4" not in chunk
    assert rest.count("<li><time") == 6
    assert "Note 0" in rest
    assert tid("activity-older") not in rest
    assert page.status_code == 200
    assert "<html" in body(page)
    assert "Note 24" in body(page)


# --------------------------------------------------------------------------------- accept with conditions


def _rows(data: dict) -> int:
    return int(data["conditions-TOTAL_FORMS"])


def test_add_another_condition_keeps_the_rows_and_adds_one_without_writing(
    client_for, owner, ops_member, submitted_handover
):
    """GIVEN the accept-with-conditions form with one row filled WHEN "Add another condition" is pressed (a plain
    post, no JavaScript) THEN the page comes back 200 with the typed row and one empty row, and nothing is written."""
    client = client_for(owner)
    page = body(client.get(url("handover:detail", submitted_handover.pk)))
    assert page.count(tid("condition-row")) == 1
    assert tid("add-condition") in page
    soon = (timezone.localdate() + dt.timedelta(days=7)).isoformat()

    response = client.post(
        url("handover:accept-with-conditions", submitted_handover.pk),
        {
            "awc-note": "Two follow-ups.",
            "conditions-TOTAL_FORMS": "1",
            "conditions-INITIAL_FORMS": "0",
            "conditions-0-text": "Run a restore drill.",
            "conditions-0-owner": ops_member.pk,
            "conditions-0-due_date": soon,
            "add_condition": "1",
        },
    )

    html = body(response)
    assert response.status_code == 200
    assert html.count(tid("condition-row")) == 2
    assert "Run a restore drill." in html
    assert f'<option value="{ops_member.pk}" selected>' in html
    assert f'value="{soon}"' in html
    assert "Two follow-ups." in html
    assert re.search(r'<details class="disclosure" id="accept-with-conditions" open>', html)
    assert 'name="conditions-1-text"' in html
    assert "autofocus" in html
    assert tid("field-error") not in html
    submitted_handover.refresh_from_db()
    assert submitted_handover.status == HandoverStatus.SUBMITTED


def test_five_conditions_are_accepted_and_ten_rows_is_the_most_offered(
    client_for, owner, ops_member, submitted_handover
):
    soon = (timezone.localdate() + dt.timedelta(days=7)).isoformat()
    data = {"conditions-TOTAL_FORMS": "5", "conditions-INITIAL_FORMS": "0"}
    for index in range(5):
        data |= {
            f"conditions-{index}-text": f"Follow-up {index}",
            f"conditions-{index}-owner": ops_member.pk,
            f"conditions-{index}-due_date": soon,
        }
    client = client_for(owner)
    full = client.post(
        url("handover:accept-with-conditions", submitted_handover.pk),
        {**data, "conditions-TOTAL_FORMS": "10", "add_condition": "1"},
    )
    assert body(full).count(tid("condition-row")) == 10
    assert tid("add-condition") not in body(full)

    accepted = client.post(url("handover:accept-with-conditions", submitted_handover.pk), data)

    assert accepted.status_code == 302
    assert Condition.objects.filter(handover=submitted_handover).count() == 5


# ---------------------------------------------------------------------------------------- notifications


def test_opening_a_notification_marks_it_read_and_lands_on_its_handover(client_for, manager, viewer, handover):
    stall = flag(handover, StallRule.IDLE)
    mine, theirs = notify(manager, stall), notify(viewer, stall)
    client = client_for(manager)
    home = body(client.get(reverse("home")))
    assert url("handover:notification-open", mine.pk) in home

    response = client.get(url("handover:notification-open", mine.pk))

    assert response.status_code == 302
    assert response["Location"] == url("handover:detail", handover.pk) + "#stalls"
    mine.refresh_from_db()
    assert mine.read_at is not None
    assert client.get(url("handover:notification-open", theirs.pk)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert client.post(url("handover:notification-open", mine.pk)).status_code == 405


# -------------------------------------------------------------------------------------------- team load


def test_the_team_load_counts_only_handovers_still_coming_and_marks_this_week(
    client_for, viewer, manager, team, template, owner, accepted_handover
):
    """GIVEN one accepted handover (not coming any more) and two preparing ones, one due this week WHEN the team
    page is read THEN the chart counts two, marks this week, and a later one is mentioned under it."""
    soon = plan(ProjectFactory(manager=manager, receiving_team=team), template, owner, target_in=0)
    plan(ProjectFactory(manager=manager, receiving_team=team), template, owner, target_in=200)

    html = body(client_for(viewer).get(url("operations:team", team.pk)))

    load = html[html.index('id="team-load"') : html.index('id="team-handovers"')]
    assert 'class="chart-current"' in load
    assert ">this week</text>" in load
    assert "(this week): 1 handover(s) due" in load
    assert "No handover is due" not in load
    assert "1 due after it" in load
    # accepted_handover is due in 30 days, inside the window, yet no longer coming: the wide chart shows one bar
    # with a value label (this week's), the others are zero and unlabelled.
    wide = load[load.index("chart-wide") : load.index("chart-narrow")]
    assert re.findall(r'class="chart-value" text-anchor="middle">(\d+)<', wide) == ["1"]
    assert soon.status == HandoverStatus.PREPARING


def test_an_empty_team_load_says_so(client_for, viewer, team):
    html = body(client_for(viewer).get(url("operations:team", team.pk)))

    load = html[html.index('id="team-load"') : html.index('id="team-handovers"')]
    assert "No handover is due to Service desk between" in load
    assert ">Nothing due in these weeks.</text>" in load  # short enough for the narrow drawing
    assert 'class="chart-current"' in load  # the week is marked even with nothing in it


def test_nothing_to_verify_for_a_handover_done_by_oneself(client_for, ops_member, handover):
    hs.item_complete(item=item_of(handover, side=Side.OPERATIONS), by=ops_member, evidence_text="Mine.")

    html = body(client_for(ops_member).get(reverse("home")))

    assert "Nothing to verify." in html
    assert ItemStatus.DONE in handover.items.values_list("status", flat=True)


def test_a_move_on_an_item_that_moved_on_meanwhile_says_why_on_its_row(client_for, owner, lead, manager, handover):
    """GIVEN an item the lead verified while the owner's page still offered "Verify" WHEN the owner presses it
    THEN 409, and the row (which no longer offers it) says why."""
    item = item_of(handover)
    hs.item_complete(item=item, by=manager, evidence_text="Done.")
    hs.item_verify(item=item, by=lead)

    response = client_for(owner, htmx=True).post(url("handover:item-action", item.pk, "verify"), {})

    assert response.status_code == 409
    row = row_html(body(response), item.pk)
    assert "Only a done item can be verified; this one is verified." in row
    assert tid("item-verify") not in row


def test_an_htmx_move_counts_what_needs_you_again_and_keeps_the_pages_filter(client_for, manager, handover):
    item = item_of(handover, Risk.FAILURE)
    page_url = "http://testserver" + url("handover:detail", handover.pk) + "?needs=me"
    client = client_for(manager, htmx=True)

    response = client.post(
        url("handover:item-action", item.pk, "complete"),
        {f"i{item.pk}-complete-text": "Done."},
        headers={"HX-Current-URL": page_url},
    )

    html = body(response)
    toggle = html[html.index('id="needs-me-filter"') :].split("</p>")[0]
    assert 'hx-swap-oob="true"' in toggle
    assert "Showing only what needs you (2)" in toggle  # three project-side items needed the manager; one is done
