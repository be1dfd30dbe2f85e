"""The web UI: every page answers the right people, refuses the others (403, or 404 where a confidential project
must not be seen to exist), each form goes through its service and shows the service's refusal next to the field,
htmx requests get their partial, and no page's query count grows with the rows it shows."""

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from handover import services as hs
from handover.choices import (
    Channel,
    ConditionStatus,
    DeliveryStatus,
    HandoverStatus,
    ItemStatus,
    NotificationKind,
    Risk,
    Side,
    StallRule,
)
from handover.models import Comment, Condition, Handover, Notification, StallFlag, TemplateItem
from operations.models import KpiReading
from projects import services as ps
from projects.choices import Stage
from projects.models import Project
from tests.factories import (
    KpiFactory,
    ProjectFactory,
    ServiceFactory,
    TeamFactory,
    TemplateFactory,
    UserFactory,
)

from .conftest import EVIDENCE_URL, complete_all, item_of

pytestmark = pytest.mark.django_db

User = get_user_model()


# ------------------------------------------------------------------------------------------------- helpers


def url(name: str, *args) -> str:
    return reverse(name, args=args)


def body(response) -> str:
    return response.content.decode()


def tid(name: str) -> str:
    return f'data-testid="{name}"'


def row_html(html: str, item_pk: int) -> str:
    """The part of a handover page from an item's row to the next item's row."""
    marker = f'id="item-{item_pk}" {tid("item-row")}'
    start = html.index(marker)
    end = html.find(tid("item-row"), start + len(marker))
    return html[start : end if end != -1 else len(html)]


def card_html(html: str, code: str) -> str:
    """A project's card on the portfolio board."""
    start = html.index(f'data-project="{code}"')
    return html[start : html.index("</li>", start)]


def flag(handover: Handover, rule: str = StallRule.IDLE, **fields) -> StallFlag:
    return StallFlag.objects.create(handover=handover, rule=rule, opened_at=timezone.now(), **fields)


def notify(user, stall: StallFlag, *, kind=NotificationKind.OPENED, channel=Channel.IN_APP, read=False):
    now = timezone.now()
    return Notification.objects.create(
        recipient=user,
        channel=channel,
        flag=stall,
        kind=kind,
        status=DeliveryStatus.SENT,
        next_attempt_at=now,
        subject=f"[Handover] {kind} {stall.rule} on {stall.handover.project.code}",
        body="...",
        created_at=now,
        read_at=now if read else None,
    )


def plan(project: Project, template, owner, *, target_in: int = 30) -> Handover:
    return hs.handover_create(
        project=project,
        template=template,
        operations_owner=owner,
        target_date=timezone.localdate() + dt.timedelta(days=target_in),
        by=project.manager,
    )


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def secret_handover(manager, member, team, template, owner):
    """A handover of a confidential project: its participants see it, everyone else gets 404."""
    project = ProjectFactory(
        code="SECRET-1", name="Secret merger", manager=manager, receiving_team=team, members=[member], confidential=True
    )
    return plan(project, template, owner)


# -------------------------------------------------------------------------------------------- signing in

SIGNED_IN_PAGES = ["home", "handover:board", "handover:notifications", "operations:team-list", "projects:create"]


@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_pages_send_anonymous_visitors_to_sign_in(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_sign_in_form_signs_in_and_lands_on_home(client, manager):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert '<label for="id_username">Username' in body(page)
    assert '<label for="id_password">Password' in body(page)

    response = client.post(reverse("login"), {"username": "manager", "password": "pw-for-tests-1"})

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200


def test_a_wrong_password_is_shown_on_the_form(client, manager):
    response = client.post(reverse("login"), {"username": "manager", "password": "not-it"})

    assert response.status_code == 400
    assert tid("form-error") in body(response)
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_post_and_lands_on_sign_in(client_for, manager):
    client = client_for(manager)
    assert client.get(reverse("logout")).status_code == 405

    response = client.post(reverse("logout"))

    assert response["Location"] == reverse("login")
    assert client.get(reverse("home")).status_code == 302


def test_password_change_shows_errors_next_to_the_field_then_changes_it(client_for, manager):
    client = client_for(manager)
    assert client.get(reverse("password_change")).status_code == 200

    wrong = client.post(
        reverse("password_change"),
        {"old_password": "not-it", "new_password1": "a-longer-secret-42", "new_password2": "a-longer-secret-42"},
    )
    assert wrong.status_code == 400
    assert 'id="id_old_password_error"' in body(wrong)
    manager.refresh_from_db()
    assert manager.check_password("pw-for-tests-1")

    done = client.post(
        reverse("password_change"),
        {
            "old_password": "pw-for-tests-1",
            "new_password1": "a-longer-secret-42",
            "new_password2": "a-longer-secret-42",
        },
    )
    assert done["Location"] == reverse("password_change_done")
    manager.refresh_from_db()
    assert manager.check_password("a-longer-secret-42")


def test_navigation_shows_who_is_signed_in_and_the_unread_in_app_notifications(client_for, manager, handover):
    manager.first_name, manager.last_name = "Priya", "Shah"
    manager.save()
    idle, past = flag(handover, StallRule.IDLE), flag(handover, StallRule.PAST_TARGET)
    notify(manager, idle)
    notify(manager, past)
    notify(manager, idle, kind=NotificationKind.ESCALATED, read=True)
    notify(manager, idle, channel=Channel.EMAIL)

    html = body(client_for(manager).get(reverse("home")))

    assert "Signed in as <strong>Priya Shah</strong>" in html
    assert re.search(r'data-testid="unread-count">2<', html)
    assert 'rel="stylesheet" href="/static/css/app.css"' in html
    assert 'src="/static/django_htmx/htmx-2.min.js"' in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


# ---------------------------------------------------------------------------------------------------- home


def test_manager_home_shows_projects_readiness_and_what_waits_on_them(client_for, manager, returned_handover):
    flag(returned_handover, StallRule.IDLE)

    html = body(client_for(manager).get(reverse("home")))

    assert tid("home-manager") in html
    assert "CRM-2026" in html
    assert html.count('class="meter"') >= 3  # readiness per risk
    waiting = html[html.index(tid("waits-on-manager")) :]
    assert "was returned by operations" in waiting
    assert tid("sent-back-item") in waiting
    assert "The restore test evidence is missing." in waiting
    assert tid("stall-flag") in html
    # The manager sees the flag but may not acknowledge it: that is the operations owner's.
    assert tid("stall-acknowledge") not in html
    assert tid("home-operations") not in html


def test_operations_home_lists_incoming_by_target_and_what_waits(
    client_for, owner, manager, team, template, submitted_handover
):
    earlier = plan(ProjectFactory(code="EARLY-1", manager=manager, receiving_team=team), template, owner, target_in=5)
    hs.item_complete(item=item_of(earlier), by=manager, evidence_url=EVIDENCE_URL)
    flag(submitted_handover, StallRule.REVIEW_OVERDUE)

    html = body(client_for(owner).get(reverse("home")))

    incoming = html[html.index(tid("home-operations")) :]
    # The most urgent first: CRM-2026 has an open stall flag, so it comes before EARLY-1's earlier target date.
    assert incoming.index("CRM-2026") < incoming.index("EARLY-1")
    waits = html[html.index(tid("waits-on-operations")) :]
    assert "CRM-2026" in waits.split("Waiting for verification")[0]  # submitted: waits for the owner's decision
    # Grouped by handover: EARLY-1 with its one done item, linked to its page filtered to what needs the owner.
    group = waits[waits.index(tid("to-verify-group")) :]
    assert "EARLY-1" in group.split("</li>")[0]
    assert re.search(r'data-testid="to-verify-count">1 item<', group)
    assert "?needs=me#checklist" in group.split("</li>")[0]
    assert tid("stall-acknowledge") in html
    assert tid("stall-snooze") in html


@pytest.mark.parametrize(("who", "may_act"), [("lead", True), ("ops_member", False)])
def test_operations_team_sees_flags_and_only_owners_and_leads_get_the_forms(
    request, client_for, submitted_handover, who, may_act
):
    flag(submitted_handover, StallRule.REVIEW_OVERDUE)

    html = body(client_for(request.getfixturevalue(who)).get(reverse("home")))

    assert tid("stall-flag") in html
    assert (tid("stall-acknowledge") in html) is may_act


def test_a_viewer_home_shows_the_portfolio_chart(client_for, viewer, project):
    html = body(client_for(viewer).get(reverse("home")))

    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-columns chart-wide"' in html
    assert 'class="chart chart-columns chart-narrow"' in html  # drawn again for a phone's width
    assert "<title" in html
    assert "Projects by stage: as a table" in html


# ----------------------------------------------------------------------------------------- portfolio board


def test_board_shows_projects_by_stage_and_marks_overdue_and_stalled(client_for, viewer, handover, outsider, team):
    late = ProjectFactory(code="LATE-1", receiving_team=team, planned_handover=timezone.localdate() - dt.timedelta(1))
    ProjectFactory(code="SECRET-9", confidential=True)
    flag(handover, StallRule.IDLE)

    response = client_for(viewer).get(reverse("handover:board"))

    html = body(response)
    assert response.status_code == 200
    assert "Overdue" in card_html(html, late.code)
    assert "Stalled" in card_html(html, "CRM-2026")
    assert "Overdue" not in card_html(html, "CRM-2026")
    assert "SECRET-9" not in html
    planning = html[html.index('id="stage-planning"') : html.index('id="stage-execution"')]
    assert "CRM-2026" in planning


def test_board_filters_by_team_and_manager(client_for, viewer, project, manager):
    other = ProjectFactory(code="OTHER-1")

    by_team = body(client_for(viewer).get(reverse("handover:board"), {"team": other.receiving_team_id}))
    by_manager = body(client_for(viewer).get(reverse("handover:board"), {"manager": manager.pk}))
    nonsense = client_for(viewer).get(reverse("handover:board"), {"team": "x", "manager": "99999"})

    assert "OTHER-1" in by_team
    assert "CRM-2026" not in by_team
    assert "CRM-2026" in by_manager
    assert "OTHER-1" not in by_manager
    assert nonsense.status_code == 200
    assert "OTHER-1" in body(nonsense)
    assert "CRM-2026" in body(nonsense)


# -------------------------------------------------------------------------------------------- project page


def test_project_page_answers_everyone_who_may_see_it(client_for, viewer, project):
    response = client_for(viewer).get(url("projects:detail", project.pk))

    assert response.status_code == 200
    assert "CRM-2026" in body(response)
    assert tid("project-history") in body(response)


@pytest.mark.parametrize("who", ["manager", "member", "lead", "ops_member", "admin_user"])
def test_a_confidential_project_is_seen_by_its_participants(request, client_for, secret_handover, who):
    client = client_for(request.getfixturevalue(who))

    assert client.get(url("projects:detail", secret_handover.project_id)).status_code == 200
    assert client.get(url("handover:detail", secret_handover.pk)).status_code == 200


def test_a_confidential_project_does_not_exist_for_others(client_for, outsider, secret_handover):
    client = client_for(outsider)
    item = secret_handover.items.first()

    assert client.get(url("projects:detail", secret_handover.project_id)).status_code == 404
    assert client.get(url("handover:detail", secret_handover.pk)).status_code == 404
    assert client.post(url("handover:item-action", item.pk, "comment"), {}).status_code == 404
    assert client.post(url("handover:move", secret_handover.pk, "submit")).status_code == 404
    assert client.post(url("projects:move", secret_handover.project_id, "execution")).status_code == 404
    assert "SECRET-1" not in body(client.get(reverse("handover:board")))


def test_the_manager_gets_the_moves_and_a_blocked_move_shows_its_gate(client_for, manager, team):
    project = ProjectFactory(code="NO-TEAM", manager=manager, receiving_team=None)

    html = body(client_for(manager).get(url("projects:detail", project.pk)))

    assert tid("stage-move-planning") in html
    gate = html[html.index(tid("stage-gate-planning")) :]
    assert "Leaving initiation needs a receiving operations team." in gate
    assert 'disabled aria-describedby="gate-planning"' in html
    assert tid("plan-handover") not in html  # handover_create needs the receiving team first
    assert tid("stage-move-cancelled-open") in html


def test_a_viewer_is_offered_no_move_and_its_url_refuses(client_for, viewer, project):
    client = client_for(viewer)

    html = body(client.get(url("projects:detail", project.pk)))
    response = client.post(url("projects:move", project.pk, "planning"))

    assert "stage-move-" not in html
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.stage == Stage.INITIATION


def test_moving_forward_then_back_asks_for_a_reason(client_for, manager, project):
    client = client_for(manager)

    forward = client.post(url("projects:move", project.pk, "planning"))
    assert forward["Location"] == url("projects:detail", project.pk)
    no_reason = client.post(url("projects:move", project.pk, "initiation"), {"reason": " "})
    with_reason = client.post(url("projects:move", project.pk, "initiation"), {"reason": "Scope changed."})

    assert no_reason.status_code == 400
    assert 'id="id_move_initiation_reason_error"' in body(no_reason)
    assert "Moving a project back a stage needs a reason." in body(no_reason)
    assert with_reason.status_code == 302
    project.refresh_from_db()
    assert project.stage == Stage.INITIATION
    assert "Scope changed." in body(client.get(url("projects:detail", project.pk)))


def test_a_gate_refusal_is_shown_at_the_top_of_the_move(client_for, manager, planning_project):
    response = client_for(manager).post(url("projects:move", planning_project.pk, "execution"))

    assert response.status_code == 409
    assert "Leaving planning needs a handover plan" in body(response)
    planning_project.refresh_from_db()
    assert planning_project.stage == Stage.PLANNING


def test_creating_a_project_shows_errors_next_to_the_field(client_for, viewer, team):
    client = client_for(viewer)
    assert client.get(reverse("projects:create")).status_code == 200

    bad = client.post(reverse("projects:create"), {"code": "no good", "name": "Thing"})
    good = client.post(
        reverse("projects:create"),
        {"code": "NEW-1", "name": "New thing", "receiving_team": team.pk, "planned_handover": "2027-01-31"},
    )

    assert bad.status_code == 400
    assert 'id="id_code_error"' in body(bad)
    assert not Project.objects.filter(name="Thing").exists()
    created = Project.objects.get(code="NEW-1")
    assert good["Location"] == url("projects:detail", created.pk)
    assert created.manager == viewer
    assert created.stage == Stage.INITIATION


def test_only_the_manager_edits_the_project(client_for, manager, viewer, project, member):
    assert client_for(viewer).get(url("projects:edit", project.pk)).status_code == 403
    client = client_for(manager)
    assert client.get(url("projects:edit", project.pk)).status_code == 200

    response = client.post(
        url("projects:edit", project.pk),
        {
            "code": project.code,
            "name": "CRM roll-out, phase 2",
            "receiving_team": project.receiving_team_id,
            "members": [member.pk],
            "version": project.version,
        },
    )

    assert response["Location"] == url("projects:detail", project.pk)
    project.refresh_from_db()
    assert project.name == "CRM roll-out, phase 2"


def test_a_stale_edit_is_refused_at_the_top_of_the_form(client_for, manager, project):
    response = client_for(manager).post(
        url("projects:edit", project.pk), {"code": project.code, "name": "X", "version": project.version - 1}
    )

    assert response.status_code == 409
    assert "changed since you read it" in body(response)
    project.refresh_from_db()
    assert project.name == "CRM roll-out"


# -------------------------------------------------------------------------------------------- planning


def test_the_manager_plans_the_handover_and_errors_show_next_to_the_field(
    client_for, manager, planning_project, template, owner
):
    client = client_for(manager)
    page = client.get(url("projects:detail", planning_project.pk))
    assert tid("plan-handover") in body(page)
    assert client.get(url("handover:plan", planning_project.pk)).status_code == 200

    missing = client.post(url("handover:plan", planning_project.pk), {"template": template.pk})
    made = client.post(
        url("handover:plan", planning_project.pk),
        {"template": template.pk, "operations_owner": owner.pk, "target_date": "2027-02-01"},
    )

    assert missing.status_code == 400
    assert 'id="id_operations_owner_error"' in body(missing)
    handover = Handover.objects.get(project=planning_project)  # only the second post made one
    assert made["Location"] == url("handover:detail", handover.pk)
    assert handover.items.count() == 7


def test_planning_is_not_offered_to_others_and_refused(client_for, viewer, planning_project):
    client = client_for(viewer)

    assert tid("plan-handover") not in body(client.get(url("projects:detail", planning_project.pk)))
    assert client.get(url("handover:plan", planning_project.pk)).status_code == 403
    assert client.post(url("handover:plan", planning_project.pk), {}).status_code == 403


# ------------------------------------------------------------------------------------------- handover page


@pytest.mark.parametrize("who", ["manager", "member", "viewer", "lead", "owner", "ops_member", "admin_user"])
def test_handover_page_answers_everyone_who_may_see_it(request, client_for, handover, who):
    response = client_for(request.getfixturevalue(who)).get(url("handover:detail", handover.pk))

    assert response.status_code == 200
    html = body(response)
    assert "Readiness per risk" in html
    assert html.count(tid("item-row")) == 7
    assert 'role="img"' in html


def test_the_page_offers_each_role_its_own_moves(client_for, manager, owner, viewer, handover, ops_member):
    project_item = item_of(handover, Risk.FAILURE, Side.PROJECT)
    ops_item = item_of(handover, Risk.FAILURE, Side.OPERATIONS)
    hs.item_complete(item=ops_item, by=ops_member, evidence_text="Rota published.")

    as_manager = body(client_for(manager).get(url("handover:detail", handover.pk)))
    as_owner = body(client_for(owner).get(url("handover:detail", handover.pk)))
    as_doer = body(client_for(ops_member).get(url("handover:detail", handover.pk)))
    as_viewer = body(client_for(viewer).get(url("handover:detail", handover.pk)))

    assert tid("item-complete") in row_html(as_manager, project_item.pk)
    assert tid("item-verify") not in row_html(as_manager, ops_item.pk)
    assert tid("handover-submit") in as_manager
    assert tid("item-verify") in row_html(as_owner, ops_item.pk)
    assert tid("item-complete") not in row_html(as_owner, project_item.pk)
    assert tid("handover-submit") not in as_owner
    # Four eyes: whoever completed the item is not offered to verify it.
    assert tid("item-verify") not in row_html(as_doer, ops_item.pk)
    assert "<form" not in as_viewer.split('id="checklist"')[1].split('id="decisions"')[0]
    assert tid("handover-submit") not in as_viewer


def test_complete_over_htmx_answers_the_row_and_the_sections_it_changed(client_for, manager, handover):
    item = item_of(handover)
    prefix = f"i{item.pk}-complete"

    response = client_for(manager, htmx=True).post(
        url("handover:item-action", item.pk, "complete"), {f"{prefix}-url": EVIDENCE_URL, f"{prefix}-version": 1}
    )

    html = body(response)
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<li class="item item-done" id="item-{item.pk}"')
    assert "<html" not in html
    for section in ("handover-head", "readiness", "handover-actions", "activity", "risk-summary-failure"):
        assert re.search(rf'id="{section}"[^>]*hx-swap-oob="true"', html), section
    assert tid("item-flash") in html
    item.refresh_from_db()
    assert item.status == ItemStatus.DONE
    assert item.evidence.get().url == EVIDENCE_URL


def test_complete_without_evidence_shows_the_service_error_next_to_the_field(client_for, manager, handover):
    item = item_of(handover)

    response = client_for(manager, htmx=True).post(url("handover:item-action", item.pk, "complete"), {})

    html = body(response)
    assert response.status_code == 400  # htmx swaps it in place (base.html's htmx-config)
    assert f'id="id_i{item.pk}-complete-url_error"' in html
    assert "Completing an item needs evidence: a link or a note." in html
    assert '<details class="item-action" open>' in html
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN


def test_without_htmx_a_move_redirects_back_to_the_item(client_for, manager, handover):
    item = item_of(handover)

    response = client_for(manager).post(
        url("handover:item-action", item.pk, "complete"), {f"i{item.pk}-complete-text": "Restore tested on Tuesday."}
    )

    assert response.status_code == 302
    assert response["Location"] == url("handover:detail", handover.pk) + f"#item-{item.pk}"


def test_without_htmx_an_error_renders_the_whole_page_with_the_form_open(client_for, manager, handover):
    item = item_of(handover)

    response = client_for(manager).post(url("handover:item-action", item.pk, "not-applicable"), {})

    html = body(response)
    assert response.status_code == 400
    assert "<html" in html
    assert "A reason for not applicable is required." in row_html(html, item.pk)
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN


def test_a_stale_item_form_is_refused(client_for, manager, handover):
    item = item_of(handover)

    response = client_for(manager, htmx=True).post(
        url("handover:item-action", item.pk, "complete"),
        {f"i{item.pk}-complete-url": EVIDENCE_URL, f"i{item.pk}-complete-version": item.version + 5},
    )

    assert response.status_code == 409
    assert "changed since you read it" in body(response)
    item.refresh_from_db()
    assert (item.status, item.evidence.count()) == (ItemStatus.OPEN, 0)


def test_an_item_move_the_user_may_not_make_is_403(client_for, viewer, member, handover):
    item = item_of(handover)

    as_viewer = client_for(viewer).post(
        url("handover:item-action", item.pk, "complete"), {f"i{item.pk}-complete-url": EVIDENCE_URL}
    )
    as_member = client_for(member).post(
        url("handover:item-action", item.pk, "complete"), {f"i{item.pk}-complete-url": EVIDENCE_URL}
    )

    assert as_viewer.status_code == 403
    assert as_member.status_code == 403  # a project member completes only items assigned to them
    assert tid("forbidden") in body(as_viewer)
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN


def test_unknown_item_move_is_404(client_for, manager, handover):
    item = item_of(handover)

    assert client_for(manager).post(url("handover:item-action", item.pk, "explode")).status_code == 404
    assert client_for(manager).get(url("handover:item-action", item.pk, "complete")).status_code == 405


def test_verify_and_the_four_eyes_refusal(client_for, owner, ops_member, handover):
    item = item_of(handover, Risk.FAILURE, Side.OPERATIONS)
    hs.item_complete(item=item, by=ops_member, evidence_text="Rota published.")

    own_work = client_for(ops_member, htmx=True).post(url("handover:item-action", item.pk, "verify"))
    verified = client_for(owner, htmx=True).post(
        url("handover:item-action", item.pk, "verify"), {f"i{item.pk}-verify-note": "Checked the rota."}
    )

    assert own_work.status_code == 403
    assert verified.status_code == 200
    item.refresh_from_db()
    assert item.status == ItemStatus.VERIFIED
    assert item.verified_by == owner


def test_send_back_needs_a_reason_shown_next_to_it(client_for, owner, manager, handover):
    item = item_of(handover)
    hs.item_complete(item=item, by=manager, evidence_url=EVIDENCE_URL)
    client = client_for(owner, htmx=True)

    refused = client.post(url("handover:item-action", item.pk, "send-back"), {f"i{item.pk}-send-back-reason": ""})
    sent = client.post(
        url("handover:item-action", item.pk, "send-back"), {f"i{item.pk}-send-back-reason": "No restore log."}
    )

    assert refused.status_code == 400
    assert f'id="id_i{item.pk}-send-back-reason_error"' in body(refused)
    assert "A reason for sending the item back is required." in body(refused)
    assert tid("item-sent-back") in body(sent)
    item.refresh_from_db()
    assert (item.status, item.sent_back_reason) == (ItemStatus.OPEN, "No restore log.")


def test_a_waiver_asked_by_the_manager_waits_for_the_owner(client_for, manager, owner, handover):
    item = item_of(handover, Risk.ADOPTION, Side.PROJECT)

    client_for(manager, htmx=True).post(
        url("handover:item-action", item.pk, "waive"), {f"i{item.pk}-waive-justification": "Nobody new to train."}
    )
    page = body(client_for(owner).get(url("handover:detail", handover.pk)))
    client_for(owner, htmx=True).post(url("handover:item-action", item.pk, "approve-waiver"))

    assert tid("item-approve-waiver") in row_html(page, item.pk)
    item.refresh_from_db()
    assert item.status == ItemStatus.WAIVED
    assert item.waiver_approved_by == owner


def test_not_applicable_reopen_evidence_and_comment_on_an_item(client_for, manager, handover):
    item = item_of(handover, Risk.INEFFICIENCY, Side.PROJECT)
    client = client_for(manager, htmx=True)
    action = lambda name, data: client.post(url("handover:item-action", item.pk, name), data)  # noqa: E731

    action("not-applicable", {f"i{item.pk}-not-applicable-reason": "No vendor involved."})
    item.refresh_from_db()
    assert item.status == ItemStatus.NOT_APPLICABLE
    action("reopen", {f"i{item.pk}-reopen-reason": "A vendor after all."})
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN
    action("evidence", {f"i{item.pk}-evidence-text": "Contract draft attached."})
    commented = action("comment", {f"i{item.pk}-comment-body": "Legal is on it."})

    assert item.evidence.get().text == "Contract draft attached."
    assert Comment.objects.get(item=item).body == "Legal is on it."
    assert "Legal is on it." in body(commented)


def test_submit_refused_while_mandatory_items_are_open_then_submitted(client_for, manager, ops_member, handover):
    client = client_for(manager)

    refused = client.post(url("handover:move", handover.pk, "submit"))
    assert Handover.objects.get(pk=handover.pk).status == HandoverStatus.PREPARING
    complete_all(handover, manager, ops_member)
    submitted = client.post(url("handover:move", handover.pk, "submit"))

    assert refused.status_code == 409
    assert tid("form-error") in body(refused)
    assert "Submitting needs every mandatory item done" in body(refused)
    assert submitted["Location"] == url("handover:detail", handover.pk)
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.SUBMITTED


def test_submit_by_anyone_but_the_manager_is_403(client_for, owner, viewer, ready_handover):
    assert client_for(owner).post(url("handover:move", ready_handover.pk, "submit")).status_code == 403
    assert client_for(viewer).post(url("handover:move", ready_handover.pk, "submit")).status_code == 403
    assert client_for(owner).post(url("handover:move", ready_handover.pk, "explode")).status_code == 404


def test_accept_refused_until_verified_then_accepted(client_for, manager, owner, ops_member, handover):
    complete_all(handover, manager, ops_member)
    hs.handover_submit(handover=handover, by=manager)
    client = client_for(owner)

    refused = client.post(url("handover:move", handover.pk, "accept"), {"accept-note": ""})

    assert refused.status_code == 409
    assert "Accepting needs every mandatory item verified" in body(refused)
    handover.refresh_from_db()
    assert (handover.status, handover.decisions.count()) == (HandoverStatus.SUBMITTED, 0)
    for item in handover.items.filter(status=ItemStatus.DONE):
        hs.item_verify(item=item, by=owner)
    accepted = client.post(url("handover:move", handover.pk, "accept"), {"accept-note": "Good to go."})
    assert accepted.status_code == 302
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.ACCEPTED
    assert tid("decision") in body(client.get(url("handover:detail", handover.pk)))


def _conditions(rows: list[dict]) -> dict:
    data = {
        "conditions-TOTAL_FORMS": "3",
        "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "0",
        "conditions-MAX_NUM_FORMS": "10",
        "awc-note": "Accepted; two follow-ups.",
    }
    for index, row in enumerate(rows):
        data.update({f"conditions-{index}-{name}": value for name, value in row.items()})
    return data


def test_accept_with_conditions_shows_a_condition_error_next_to_its_field(
    client_for, owner, ops_member, submitted_handover
):
    client = client_for(owner)
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    soon = (timezone.localdate() + dt.timedelta(days=14)).isoformat()
    page = body(client.get(url("handover:detail", submitted_handover.pk)))
    assert tid("handover-accept-with-conditions") in page

    none = client.post(url("handover:accept-with-conditions", submitted_handover.pk), _conditions([]))
    late = client.post(
        url("handover:accept-with-conditions", submitted_handover.pk),
        _conditions([{"text": "Drill", "owner": ops_member.pk, "due_date": yesterday}]),
    )
    accepted = client.post(
        url("handover:accept-with-conditions", submitted_handover.pk),
        _conditions([{"text": "Run a restore drill.", "owner": ops_member.pk, "due_date": soon}]),
    )

    assert none.status_code == late.status_code == 400
    assert "Accepting with conditions needs at least one condition." in body(none)
    assert 'id="id_conditions-0-due_date_error"' in body(late)
    assert "A condition&#x27;s due date cannot be in the past." in body(late)
    assert accepted.status_code == 302
    submitted_handover.refresh_from_db()
    assert submitted_handover.status == HandoverStatus.ACCEPTED_WITH_CONDITIONS
    condition = Condition.objects.get(handover=submitted_handover)
    assert (condition.text, condition.owner, condition.status) == ("Run a restore drill.", ops_member, "open")


def test_accept_with_conditions_is_refused_to_the_manager(client_for, manager, ops_member, submitted_handover):
    soon = (timezone.localdate() + dt.timedelta(days=14)).isoformat()

    response = client_for(manager).post(
        url("handover:accept-with-conditions", submitted_handover.pk),
        _conditions([{"text": "Drill", "owner": ops_member.pk, "due_date": soon}]),
    )

    assert response.status_code == 403


def test_return_sends_the_chosen_items_back_and_needs_a_reason(client_for, owner, submitted_handover):
    item = item_of(submitted_handover)
    client = client_for(owner)

    refused = client.post(url("handover:move", submitted_handover.pk, "return"), {"return-items": [item.pk]})
    returned = client.post(
        url("handover:move", submitted_handover.pk, "return"),
        {"return-reason": "The restore test is missing.", "return-items": [item.pk]},
    )

    assert refused.status_code == 400
    assert 'id="id_return-reason_error"' in body(refused)
    assert returned.status_code == 302
    submitted_handover.refresh_from_db()
    item.refresh_from_db()
    assert submitted_handover.status == HandoverStatus.RETURNED
    assert item.sent_back_reason == "The restore test is missing."
    html = body(client.get(url("handover:detail", submitted_handover.pk)))
    assert "The checklist as it stood" in html
    decision = submitted_handover.decisions.get()
    # The frozen checklist is loaded when asked for: fetched into its disclosure by htmx, or a page of its own.
    assert f'href="{url("handover:decision", submitted_handover.pk, decision.pk)}"' in html
    assert "Items at the decision" not in html
    assert "Items at the decision" in body(client.get(url("handover:decision", submitted_handover.pk, decision.pk)))


def test_hypercare_is_started_and_completed_by_the_owner(client_for, owner, accepted_handover):
    client = client_for(owner)
    ends = (timezone.localdate() + dt.timedelta(days=30)).isoformat()

    refused = client.post(url("handover:move", accepted_handover.pk, "start-hypercare"), {"hypercare-ends_on": ends})
    started = client.post(
        url("handover:move", accepted_handover.pk, "start-hypercare"),
        {"hypercare-ends_on": ends, "hypercare-exit_criteria": "Fewer than 5 P2 incidents a week."},
    )
    completed = client.post(url("handover:move", accepted_handover.pk, "complete"), {"complete-note": "Done."})

    assert refused.status_code == 400
    assert 'id="id_hypercare-exit_criteria_error"' in body(refused)
    assert started.status_code == completed.status_code == 302
    accepted_handover.refresh_from_db()
    assert accepted_handover.status == HandoverStatus.COMPLETED


def test_the_manager_cancels_with_a_reason_and_comments(client_for, manager, viewer, handover):
    client = client_for(manager)

    commented = client.post(url("handover:move", handover.pk, "comment"), {"comment-body": "Kick-off on Monday."})
    refused = client_for(viewer).post(url("handover:move", handover.pk, "comment"), {"comment-body": "Hi"})
    no_reason = client.post(url("handover:move", handover.pk, "cancel"), {"cancel-reason": ""})
    cancelled = client.post(url("handover:move", handover.pk, "cancel"), {"cancel-reason": "Re-scoped."})

    assert commented["Location"].endswith("#comments")
    assert refused.status_code == 403
    assert no_reason.status_code == 400
    assert 'id="id_cancel-reason_error"' in body(no_reason)
    assert cancelled.status_code == 302
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.CANCELLED
    assert "Kick-off on Monday." in body(client.get(url("handover:detail", handover.pk)))


def test_the_condition_owner_marks_it_met(client_for, ops_member, viewer, conditional_handover):
    condition = Condition.objects.get(handover=conditional_handover)

    page = body(client_for(ops_member).get(url("handover:detail", conditional_handover.pk)))
    refused = client_for(viewer).post(url("handover:condition-met", condition.pk), {})
    met = client_for(ops_member).post(url("handover:condition-met", condition.pk), {f"c{condition.pk}-note": "Done."})

    assert tid("condition-met") in page
    assert refused.status_code == 403
    assert met.status_code == 302
    condition.refresh_from_db()
    assert condition.status == ConditionStatus.MET


# ----------------------------------------------------------------------------------------------- stall flags


def test_acknowledge_over_htmx_needs_a_note_then_answers_the_flag(client_for, owner, submitted_handover):
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)
    client = client_for(owner, htmx=True)

    refused = client.post(url("handover:stall-action", stall.pk, "acknowledge"), {f"f{stall.pk}-ack-note": ""})
    acknowledged = client.post(
        url("handover:stall-action", stall.pk, "acknowledge"), {f"f{stall.pk}-ack-note": "Reviewing on Monday."}
    )

    assert refused.status_code == 400
    assert f'id="id_f{stall.pk}-ack-note_error"' in body(refused)
    assert body(acknowledged).lstrip().startswith("<article")
    assert tid("stall-acknowledged") in body(acknowledged)
    assert tid("stall-acknowledge") not in body(acknowledged)
    stall.refresh_from_db()
    assert stall.acknowledge_note == "Reviewing on Monday."


def test_snooze_into_the_past_is_refused_next_to_the_date(client_for, lead, submitted_handover):
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)
    client = client_for(lead, htmx=True)
    past = (timezone.localtime() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    later = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    prefix = f"f{stall.pk}-snooze"

    refused = client.post(url("handover:stall-action", stall.pk, "snooze"), {f"{prefix}-until": past})
    snoozed = client.post(
        url("handover:stall-action", stall.pk, "snooze"), {f"{prefix}-until": later, f"{prefix}-reason": "Holidays."}
    )

    assert refused.status_code == 400
    assert f'id="id_{prefix}-until_error"' in body(refused)
    assert "Snooze until a moment in the future." in body(refused)
    assert snoozed.status_code == 200
    stall.refresh_from_db()
    assert stall.snooze_reason == "Holidays."


def test_without_htmx_acknowledge_goes_back_to_the_page_it_came_from(client_for, owner, submitted_handover):
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)

    response = client_for(owner).post(
        url("handover:stall-action", stall.pk, "acknowledge"),
        {f"f{stall.pk}-ack-note": "On it.", "next": "/"},
    )
    evil = client_for(owner).post(
        url("handover:stall-action", stall.pk, "snooze"),
        {
            f"f{stall.pk}-snooze-until": (timezone.localtime() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
            f"f{stall.pk}-snooze-reason": "Later.",
            "next": "https://evil.example.com/",
        },
    )

    assert response["Location"] == "/"
    assert evil["Location"] == url("handover:detail", submitted_handover.pk) + "#stalls"


@pytest.mark.parametrize("who", ["manager", "ops_member", "viewer"])
def test_only_the_owner_or_lead_may_act_on_a_flag(request, client_for, submitted_handover, who):
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)

    response = client_for(request.getfixturevalue(who)).post(
        url("handover:stall-action", stall.pk, "acknowledge"), {f"f{stall.pk}-ack-note": "Mine now."}
    )

    assert response.status_code == 403
    stall.refresh_from_db()
    assert stall.acknowledged_at is None


def test_a_flag_on_a_confidential_handover_does_not_exist_for_others(client_for, outsider, secret_handover):
    stall = flag(secret_handover)

    response = client_for(outsider).post(url("handover:stall-action", stall.pk, "acknowledge"), {})

    assert response.status_code == 404


# --------------------------------------------------------------------------------------------- notifications


def test_notifications_are_listed_and_marked_read(client_for, manager, viewer, handover):
    idle, past = flag(handover, StallRule.IDLE), flag(handover, StallRule.PAST_TARGET)
    first, second = notify(manager, idle), notify(manager, past)
    someone_elses = notify(viewer, idle)
    client = client_for(manager)

    page = body(client.get(reverse("handover:notifications")))
    one = client.post(reverse("handover:notifications-read"), {"id": [first.pk, someone_elses.pk]})

    assert page.count(tid("notification")) == 2
    assert tid("notifications-mark-all-read") in page
    assert one["Location"] == reverse("handover:notifications")
    first.refresh_from_db(), second.refresh_from_db(), someone_elses.refresh_from_db()
    assert first.read_at is not None
    assert second.read_at is None
    assert someone_elses.read_at is None
    client.post(reverse("handover:notifications-read"), {"all": "1"})
    second.refresh_from_db()
    assert second.read_at is not None
    assert tid("unread-count") not in body(client.get(reverse("handover:notifications")))


def test_someone_who_left_a_confidential_projects_team_no_longer_reads_about_it(client_for, ops_member, team, handover):
    """GIVEN a team member notified about a confidential project's handover WHEN they leave the receiving team
    THEN the notice is gone from their inbox, its count, their home page, the API and its own link."""
    type(handover.project).objects.filter(pk=handover.project_id).update(confidential=True)
    notice = notify(ops_member, flag(handover, StallRule.PAST_TARGET))
    client = client_for(ops_member)
    assert body(client.get(reverse("handover:notifications"))).count(tid("notification")) == 1

    team.members.remove(ops_member)

    assert tid("notification") not in body(client.get(reverse("handover:notifications")))
    assert tid("unread-count") not in body(client.get(reverse("home")))
    assert client.get("/api/v1/notifications/").json()["count"] == 0
    assert client.get(reverse("handover:notification-open", args=[notice.pk])).status_code == 404


@pytest.mark.parametrize("bad", ["²", "abc", "9" * 5000, ""])
def test_marking_read_refuses_an_id_that_is_not_a_number(bad, client_for, manager, handover):
    mine = notify(manager, flag(handover, StallRule.IDLE))

    response = client_for(manager).post(reverse("handover:notifications-read"), {"id": [mine.pk, bad]})

    assert response.status_code == 400
    assert "id:" in response.content.decode()
    mine.refresh_from_db()
    assert mine.read_at is None


# ---------------------------------------------------------------------------------------- operations teams


def test_team_pages_show_the_load_the_kpis_and_the_decision_times(client_for, viewer, team, accepted_handover):
    kpi = KpiFactory(service=ServiceFactory(team=team, name="CRM platform"), name="Weekly active users")
    for days, value in ((20, 30), (10, 55), (1, 71)):
        KpiReading.objects.create(kpi=kpi, value=value, measured_at=timezone.now() - dt.timedelta(days=days))
    client = client_for(viewer)

    teams = body(client.get(reverse("operations:team-list")))
    page = body(client.get(url("operations:team", team.pk)))

    assert "Days from submission to decision" in teams
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-hbars chart-wide"' in teams
    assert "Handovers still coming to Service desk, per week of their target date" in page
    assert "Weekly active users (%)" in page
    assert '<line x1="48"' in page
    assert 'class="chart-target"' in page
    assert page.count(tid("team-handover")) == 1
    assert tid("kpi-reading-add") not in page  # a viewer posts no readings


def test_a_team_member_posts_a_kpi_reading_and_errors_show_next_to_the_field(client_for, ops_member, viewer, team):
    kpi = KpiFactory(service=ServiceFactory(team=team))
    prefix = f"kpi{kpi.pk}"
    client = client_for(ops_member)

    assert tid("kpi-reading-add") in body(client.get(url("operations:team", team.pk)))
    bad = client.post(url("operations:kpi-reading", kpi.pk), {f"{prefix}-value": "lots"})
    good = client.post(url("operations:kpi-reading", kpi.pk), {f"{prefix}-value": "42.5"})
    refused = client_for(viewer).post(url("operations:kpi-reading", kpi.pk), {f"{prefix}-value": "1"})

    assert bad.status_code == 400
    assert f'id="id_{prefix}-value_error"' in body(bad)
    assert good["Location"] == url("operations:team", team.pk) + f"#kpi-{kpi.pk}"
    assert refused.status_code == 403
    assert list(KpiReading.objects.values_list("value", flat=True)) == [42.5]


def test_unknown_team_is_404(client_for, viewer):
    assert client_for(viewer).get(url("operations:team", 999999)).status_code == 404


# -------------------------------------------------------------------------------------------- query counts


def count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(context.captured_queries)


def _projects_with_handovers(count: int, *, manager, team, owner, template) -> list[Handover]:
    """``count`` projects of ``manager`` to ``team``, each with a handover (an item done, an open flag)."""
    handovers = []
    for _ in range(count):
        project = ProjectFactory(manager=manager, receiving_team=team)
        handover = plan(project, template, owner)
        hs.item_complete(item=item_of(handover), by=manager, evidence_url=EVIDENCE_URL)
        flag(handover, StallRule.IDLE)
        notify(manager, handover.stall_flags.get())
        notify(owner, handover.stall_flags.get())
        handovers.append(handover)
    return handovers


@pytest.fixture
def grows(db, manager, team, owner, template):
    """``grows(n)`` adds ``n`` more projects with handovers; the counts are compared between 3 and 15 rows."""
    return lambda n: _projects_with_handovers(n, manager=manager, team=team, owner=owner, template=template)


# The pinned number of queries of each page, the same at 3 rows and at 15. A change here is a visible decision.
EXPECTED = {
    # Each bounded section reads its first rows and its total in one query; readiness from the stored counters.
    "home-manager": 13,  # with the receiving teams' members, for the flags' offers (one query, not one per flag)
    "home-owner": 13,  # the items to verify, grouped per handover (two), the receiving teams' members (one)
    "board": 10,  # teams, managers, grouped counts, ranked ids, their projects, live handovers, saved views
    "notifications": 5,
    "handover-manager": 13,
    "handover-owner": 13,  # the owner decides only while still on the receiving team: one membership query
    "item-move-htmx": 21,  # the move itself (locks, history, outbox) and the re-read page sections
    "project": 7,
    "team": 12,
    "teams": 5,
}


@pytest.mark.parametrize(
    ("page", "who", "path"),
    [
        ("home-manager", "manager", "/"),
        ("home-owner", "owner", "/"),
        ("board", "viewer", "/portfolio/"),
        ("notifications", "manager", "/notifications/"),
    ],
)
def test_list_pages_do_not_query_per_row(request, client_for, grows, django_assert_num_queries, page, who, path):
    client = client_for(request.getfixturevalue(who))
    grows(3)
    few = count_queries(client, path)
    grows(12)

    many = count_queries(client, path)

    assert few == many, f"{page}: {few} queries for 3 rows, {many} for 15"
    with django_assert_num_queries(EXPECTED[page]):
        client.get(path)


def _long_checklist(size: int):
    template = TemplateFactory(with_items=False)
    for position in range(size):
        TemplateItem.objects.create(
            template=template,
            key=f"item-{position}",
            title=f"Item {position}",
            risk=list(Risk)[position % 3],
            side=list(Side)[position % 2],
            position=position,
        )
    return template


@pytest.mark.parametrize("who", ["manager", "owner"])
def test_the_handover_page_does_not_query_per_item(request, client_for, manager, ops_member, owner, team, who):
    """GIVEN checklists of 3 and of 15 items, each done with evidence, commented and flagged WHEN the page is read
    THEN it takes the same number of queries."""
    counts = []
    for size in (3, 15):
        project = ProjectFactory(manager=manager, receiving_team=team)
        handover = plan(project, _long_checklist(size), owner)
        for item in handover.items.all():
            by = manager if item.side == Side.PROJECT else ops_member
            hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL)
            hs.comment_add(handover=handover, by=manager, body="Looks right.", item=item)
        flag(handover, StallRule.VERIFICATION_WAITING)
        counts.append(count_queries(client_for(request.getfixturevalue(who)), url("handover:detail", handover.pk)))

    assert counts[0] == counts[1], counts
    assert counts[1] == EXPECTED[f"handover-{who}"]


def test_the_htmx_answer_to_an_item_move_does_not_query_per_item(client_for, manager, owner, team):
    counts = []
    for size in (3, 15):
        project = ProjectFactory(manager=manager, receiving_team=team)
        handover = plan(project, _long_checklist(size), owner)
        item = handover.items.filter(side=Side.PROJECT).first()
        client = client_for(manager, htmx=True)
        with CaptureQueriesContext(connection) as context:
            client.post(url("handover:item-action", item.pk, "comment"), {f"i{item.pk}-comment-body": "Hi"})
        counts.append(len(context.captured_queries))

    assert counts[0] == counts[1], counts
    assert counts[1] == EXPECTED["item-move-htmx"]


def test_the_project_page_does_not_query_per_event_or_member(client_for, viewer, manager, team):
    counts = []
    for size in (3, 15):
        project = ProjectFactory(manager=manager, receiving_team=team, members=UserFactory.create_batch(size))
        for n in range(size):
            ps.project_update(project=project, by=manager, description=f"Revision {n}")
        counts.append(count_queries(client_for(viewer), url("projects:detail", project.pk)))

    assert counts[0] == counts[1], counts
    assert counts[1] == EXPECTED["project"]


def test_the_team_pages_do_not_query_per_team_service_or_kpi(client_for, viewer, manager, owner, template):
    team_counts, list_counts = [], []
    for size in (3, 15):
        team = TeamFactory(members=[owner])
        service = ServiceFactory(team=team)
        for n in range(size):
            kpi = KpiFactory(service=service, name=f"KPI {size}-{n}")
            KpiReading.objects.create(kpi=kpi, value=n, measured_at=timezone.now() - dt.timedelta(days=n))
            project = ProjectFactory(manager=manager, receiving_team=team)
            handover = plan(project, template, owner)
            complete_all(handover, manager, owner)
            hs.handover_submit(handover=handover, by=manager)
        team_counts.append(count_queries(client_for(viewer), url("operations:team", team.pk)))
        list_counts.append(count_queries(client_for(viewer), reverse("operations:team-list")))

    assert team_counts[0] == team_counts[1], team_counts
    assert list_counts[0] == list_counts[1], list_counts
    assert (team_counts[1], list_counts[1]) == (EXPECTED["team"], EXPECTED["teams"])
