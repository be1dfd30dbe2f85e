"""The project-wide standard for forms: invalid input is answered with a 4xx and a message naming the field (400 for
input, 409 when the state refuses the move), never a 200, never a 500, never a half-written record; a move the user
may not make is refused (403) before its form is even read, whatever was posted; and the error pages are the
product's own."""

import datetime as dt
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from handover import services as hs
from handover.choices import HandoverStatus, ItemStatus, Side, StallRule
from handover.models import Activity, Condition, Decision, Handover
from operations.models import KpiReading
from projects.choices import Stage
from tests.factories import KpiFactory, ServiceFactory

from .conftest import EVIDENCE_URL, item_of
from .test_views import body, flag, tid, url

pytestmark = pytest.mark.django_db


def _writes(handover: Handover) -> tuple:
    """What a refused move must leave as it was."""
    handover.refresh_from_db()
    return (
        handover.status,
        handover.version,
        Activity.objects.filter(handover=handover).count(),
        Decision.objects.filter(handover=handover).count(),
        Condition.objects.filter(handover=handover).count(),
        list(handover.items.order_by("pk").values_list("status", "version")),
    )


# ------------------------------------------------------------------------------------ the role comes first

# Every handover move with a body that would not even validate (no formset management form, no fields).
HANDOVER_MOVES = [
    ("handover:move", "submit"),
    ("handover:move", "accept"),
    ("handover:move", "return"),
    ("handover:move", "start-hypercare"),
    ("handover:move", "complete"),
    ("handover:move", "cancel"),
    ("handover:move", "comment"),
    ("handover:accept-with-conditions", None),
]


@pytest.mark.parametrize(("name", "action"), HANDOVER_MOVES)
def test_a_viewer_is_refused_every_handover_move_before_its_form_is_read(
    client_for, viewer, submitted_handover, name, action
):
    """GIVEN a viewer (no role on the handover) WHEN they post any handover move, even without the formset's
    management form THEN it is 403 and nothing is written."""
    before = _writes(submitted_handover)
    args = [submitted_handover.pk] + ([action] if action else [])

    response = client_for(viewer).post(url(name, *args), {"awc-note": "x"})

    assert response.status_code == 403
    assert tid("forbidden") in body(response)
    assert _writes(submitted_handover) == before


def test_accept_with_conditions_without_the_management_form_is_400_for_the_owner(client_for, owner, submitted_handover):
    before = _writes(submitted_handover)

    response = client_for(owner).post(url("handover:accept-with-conditions", submitted_handover.pk), {"awc-note": "x"})

    assert response.status_code == 400
    assert tid("field-error") in body(response)  # "ManagementForm data is missing...", next to the conditions
    assert _writes(submitted_handover) == before


@pytest.mark.parametrize("who", ["manager", "viewer", "ops_member"])
def test_deciding_is_refused_to_everyone_but_the_owner_and_lead_whatever_is_posted(
    request, client_for, submitted_handover, ops_member, who
):
    soon = (timezone.localdate() + dt.timedelta(days=7)).isoformat()
    data = {
        "conditions-TOTAL_FORMS": "1",
        "conditions-INITIAL_FORMS": "0",
        "conditions-0-text": "Drill.",
        "conditions-0-owner": ops_member.pk,
        "conditions-0-due_date": soon,
    }
    before = _writes(submitted_handover)

    client = client_for(request.getfixturevalue(who))
    responses = [
        client.post(url("handover:accept-with-conditions", submitted_handover.pk), data),
        client.post(url("handover:move", submitted_handover.pk, "accept"), {}),
        client.post(url("handover:move", submitted_handover.pk, "return"), {"return-reason": "No."}),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert _writes(submitted_handover) == before


@pytest.mark.parametrize(
    ("action", "data"),
    [("complete", {}), ("verify", {}), ("send-back", {}), ("waive", {}), ("not-applicable", {}), ("reopen", {})],
)
def test_an_item_move_without_the_role_is_403_before_validation(client_for, viewer, handover, manager, action, data):
    item = item_of(handover)
    hs.item_complete(item=item, by=manager, evidence_url=EVIDENCE_URL)
    before = _writes(handover)

    response = client_for(viewer, htmx=True).post(url("handover:item-action", item.pk, action), data)

    assert response.status_code == 403
    assert _writes(handover) == before


def test_a_stall_flag_is_refused_to_others_before_the_form_is_read(client_for, manager, submitted_handover):
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)

    garbage = client_for(manager).post(url("handover:stall-action", stall.pk, "snooze"), {"f-until": "soon"})

    assert garbage.status_code == 403
    stall.refresh_from_db()
    assert (stall.snoozed_until, stall.acknowledged_at) == (None, None)


def test_a_condition_is_marked_met_only_by_its_owner_or_the_operations_owner(
    client_for, viewer, manager, conditional_handover
):
    condition = Condition.objects.get(handover=conditional_handover)

    assert client_for(manager).post(url("handover:condition-met", condition.pk), {}).status_code == 403
    condition.refresh_from_db()
    assert condition.met_at is None


def test_a_stage_move_by_someone_else_is_403_and_a_kpi_reading_by_an_outsider_too(client_for, viewer, project, team):
    kpi = KpiFactory(service=ServiceFactory(team=team))

    move = client_for(viewer).post(url("projects:move", project.pk, "cancelled"), {"reason": ""})
    reading = client_for(viewer).post(url("operations:kpi-reading", kpi.pk), {f"kpi{kpi.pk}-value": "lots"})

    assert (move.status_code, reading.status_code) == (403, 403)
    project.refresh_from_db()
    assert project.stage == Stage.INITIATION
    assert not KpiReading.objects.exists()


# ---------------------------------------------------------------------------- 400 and 409, nothing written


def test_acknowledging_a_flag_someone_acknowledged_first_says_so_on_the_card(
    client_for, owner, lead, submitted_handover
):
    """GIVEN the owner and the lead both have the flag open WHEN the owner acknowledges first and the lead second
    THEN the lead's card comes back 409 saying it is already acknowledged, not silently without the form."""
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)
    action = url("handover:stall-action", stall.pk, "acknowledge")
    note = {f"f{stall.pk}-ack-note": "Reviewing on Monday."}
    assert client_for(owner, htmx=True).post(action, note).status_code == 200

    late = client_for(lead, htmx=True).post(action, {f"f{stall.pk}-ack-note": "I'll take it."})

    assert late.status_code == 409
    assert "already acknowledged" in body(late)
    stall.refresh_from_db()
    assert (stall.acknowledged_by, stall.acknowledge_note) == (owner, "Reviewing on Monday.")


def test_marking_a_condition_met_twice_says_it_is_met(client_for, ops_member, conditional_handover):
    condition = Condition.objects.get(handover=conditional_handover)
    action = url("handover:condition-met", condition.pk)
    client = client_for(ops_member)
    assert client.post(action, {f"c{condition.pk}-note": "Drill done."}).status_code == 302

    again = client.post(action, {f"c{condition.pk}-note": "Done again."})

    assert again.status_code == 409
    assert "already met" in body(again)
    condition.refresh_from_db()
    assert condition.met_note == "Drill done."


def test_an_invalid_date_is_400_with_the_field_named_and_nothing_written(client_for, owner, accepted_handover):
    before = _writes(accepted_handover)

    response = client_for(owner).post(
        url("handover:move", accepted_handover.pk, "start-hypercare"),
        {"hypercare-ends_on": "the 31st", "hypercare-exit_criteria": "Quiet."},
    )

    assert response.status_code == 400
    assert 'id="id_hypercare-ends_on_error"' in body(response)
    assert _writes(accepted_handover) == before


def test_a_move_the_state_refuses_is_409_with_the_reason(client_for, owner, accepted_handover):
    before = _writes(accepted_handover)

    response = client_for(owner).post(url("handover:move", accepted_handover.pk, "complete"), {})

    assert response.status_code == 409
    assert "A handover completes at the end of hypercare" in body(response)
    assert _writes(accepted_handover) == before


def test_a_late_condition_leaves_no_decision_and_no_condition(client_for, owner, ops_member, submitted_handover):
    """GIVEN two condition rows, the second due yesterday WHEN accepted with conditions THEN 400, the error sits
    next to the second row's date, and neither the decision nor the first condition is written."""
    before = _writes(submitted_handover)
    soon = (timezone.localdate() + dt.timedelta(days=7)).isoformat()
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()

    response = client_for(owner).post(
        url("handover:accept-with-conditions", submitted_handover.pk),
        {
            "conditions-TOTAL_FORMS": "2",
            "conditions-INITIAL_FORMS": "0",
            "conditions-0-text": "Drill.",
            "conditions-0-owner": ops_member.pk,
            "conditions-0-due_date": soon,
            "conditions-1-text": "Runbook review.",
            "conditions-1-owner": ops_member.pk,
            "conditions-1-due_date": yesterday,
        },
    )

    assert response.status_code == 400
    assert 'id="id_conditions-1-due_date_error"' in body(response)
    assert "Condition 2:" in body(response)
    assert _writes(submitted_handover) == before


def test_an_htmx_error_is_swapped_in_place_by_the_page_configuration(client_for, manager, handover):
    """The page tells htmx to swap 400/409/422 answers (their errors sit next to the fields) and to show the
    message of a 403/404/5xx page in the alert region, which js/app.js moves next to the control that was used
    (tests/browser/test_errors_in_place.py); htmx neither evaluates code nor injects style (the CSP allows neither)."""
    html = body(client_for(manager).get(url("handover:detail", handover.pk)))

    assert '<meta name="htmx-config"' in html
    assert '"code": "^(400|409|422)$", "swap": true, "error": false' in html
    assert '"target": "#htmx-error", "select": "[data-htmx-error]"' in html
    assert '"includeIndicatorStyles": false, "allowEval": false' in html
    assert 'id="htmx-error"' in html
    assert '<script src="/static/js/app.js" defer></script>' in html
    assert "hx-on" not in html


def test_an_htmx_refusal_answers_the_403_page_with_its_message_marked_for_the_alert(client_for, viewer, handover):
    item = item_of(handover)

    response = client_for(viewer, htmx=True).post(url("handover:item-action", item.pk, "complete"), {})

    assert response.status_code == 403
    assert "data-htmx-error" in body(response)


def test_the_operations_side_completing_its_own_item_over_htmx_still_works(client_for, ops_member, handover):
    item = item_of(handover, side=Side.OPERATIONS)

    response = client_for(ops_member, htmx=True).post(
        url("handover:item-action", item.pk, "complete"), {f"i{item.pk}-complete-text": "Rota published."}
    )

    assert response.status_code == 200
    item.refresh_from_db()
    assert item.status == ItemStatus.DONE


# ------------------------------------------------------------------------------------------- error pages


def test_a_missing_page_is_the_products_own_404_with_its_icon(client_for, viewer):
    response = client_for(viewer).get("/no-such-page/")

    html = body(response)
    assert response.status_code == 404
    assert tid("not-found") in html
    assert 'rel="icon" href="/static/img/favicon.svg"' in html
    assert "URLconf" not in html  # never Django's debug page


def test_favicon_ico_points_at_the_products_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"


def test_a_server_error_is_the_products_own_500_with_its_icon(viewer):
    client = Client(raise_request_exception=False)
    client.force_login(viewer)

    with mock.patch("handover.views._stage_chart_of", side_effect=RuntimeError("boom")):
        response = client.get(reverse("home"))

    html = body(response)
    assert response.status_code == 500
    assert tid("server-error") in html
    assert 'rel="icon" href="/static/img/favicon.svg"' in html
    assert "data-htmx-error" in html
    assert "boom" not in html


def test_a_handover_still_open_is_left_untouched_by_a_refused_cancel(client_for, manager, handover):
    before = _writes(handover)

    response = client_for(manager).post(url("handover:move", handover.pk, "cancel"), {"cancel-reason": "  "})

    assert response.status_code == 400
    assert _writes(handover) == before
    assert Handover.objects.get(pk=handover.pk).status == HandoverStatus.PREPARING
