"""The admin: every page opens on the demo data, and every write goes through a service.

States change only through admin actions; each action reports per object what the service did or why it refused,
and a refusal changes nothing.
"""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from handover import services
from handover.choices import ActivityVerb, DecisionKind, HandoverStatus, ItemStatus, Side
from handover.models import (
    Activity,
    ApiToken,
    ChecklistItem,
    ChecklistTemplate,
    Decision,
    Handover,
    StallFlag,
    WebhookSubscription,
)
from handover.outbox import sweep as outbox_sweep
from handover.stalls.services import detect_stalls
from handover.tokens import services as tokens
from handover.webhooks import services as webhooks
from operations.choices import StallRule
from operations.models import Kpi, KpiReading, OperationsEvent, OperationsTeam
from projects.models import Project
from tests.conftest import rolled_back_after
from tests.factories import KpiFactory
from tests.network import suite_network
from tests.projects.test_admin import action, change_url, confirm, form_data, shown

User = get_user_model()
EVIDENCE = "https://wiki.example.com/crm/evidence"


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(scope="class")
def _demo_data(django_db_setup, django_db_blocker):
    """The demo organisation, plus a row of each model the demo itself does not create; built once per class."""
    with rolled_back_after(django_db_blocker):
        call_command("seed_demo", stdout=io.StringIO())
        admin_user = User.objects.get(username="admin")
        with suite_network():  # this fixture's scope is wider than the network fixture's
            webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/handover", events=["stall.opened"])
        tokens.token_create(by=admin_user, name="Reporting sync", user=User.objects.get(username="mia.jensen"))
        Group.objects.create(name="Auditors")
        detect_stalls()  # flags, notifications, events and deliveries
        outbox_sweep.sweep()  # the sweep's bookkeeping row
        # The sign-in records (django-axes): a failed sign-in and a successful one.
        Client().post(reverse("login"), {"username": "mallory", "password": "a guess"})
        Client().post(reverse("login"), {"username": "admin", "password": "handover-demo"})
        yield


@pytest.fixture
def demo(_demo_data, db, client):
    """``_demo_data``, signed in as its admin."""
    client.force_login(User.objects.get(username="admin"))
    return client


def complete_all(handover, manager, ops_member) -> None:
    for item in handover.items.filter(mandatory=True):
        by = manager if item.side == Side.PROJECT else ops_member
        services.item_complete(item=item, by=by, evidence_url=EVIDENCE)


def verify_all(handover, owner) -> None:
    for item in handover.items.filter(status=ItemStatus.DONE):
        services.item_verify(item=item, by=owner)


# ------------------------------------------------------------------------------------------------------ pages


class TestTheAdminOnTheDemo:
    """Every admin page over the demo organisation, built once for the class."""

    @pytest.mark.django_db
    def test_every_registered_model_opens_its_list_change_and_add_pages(self, demo):
        problems = []
        for model in admin.site._registry:
            opts = model._meta
            changelist = demo.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
            if changelist.status_code != 200:
                problems.append(f"{opts.label} list: {changelist.status_code}")
                continue
            obj = model._default_manager.order_by("pk").first()
            if obj is None:
                problems.append(f"{opts.label}: the demo has no row to open")
            elif (status := demo.get(change_url(obj)).status_code) != 200:
                problems.append(f"{opts.label} change: {status}")
            if changelist.context["has_add_permission"]:
                add = demo.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
                if add.status_code != 200:
                    problems.append(f"{opts.label} add: {add.status_code}")
        assert not problems

    @pytest.mark.django_db
    def test_change_lists_do_not_query_once_per_row(self, demo, monkeypatch):
        """A page of one row and a page of a hundred take the same number of queries."""

        def queries(model, per_page: int) -> int:
            monkeypatch.setattr(admin.site._registry[model], "list_per_page", per_page)
            opts = model._meta
            with CaptureQueriesContext(connection) as captured:
                demo.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
            return len(captured)

        per_row = {}
        for model in admin.site._registry:
            if model._default_manager.count() > 1 and (one := queries(model, 1)) != (many := queries(model, 100)):
                per_row[model._meta.label] = (one, many)
        assert per_row == {}
        assert ChecklistItem.objects.count() > 100  # enough rows that a per-row query would show


@pytest.mark.django_db
def test_status_fields_are_never_form_fields(staff, handover):
    page = staff.get(change_url(handover))

    assert "status" not in page.context["adminform"].form.fields
    (items,) = [f.formset for f in page.context["inline_admin_formsets"] if f.formset.model is ChecklistItem]
    assert not {"status", "done_at", "verified_at", "verified_by"} & set(items.forms[0].fields)
    item_page = staff.get(change_url(handover.items.first()))
    assert "status" not in item_page.context["adminform"].form.fields


@pytest.mark.django_db
def test_history_is_read_only(staff, handover):
    for record in (Activity.objects.filter(handover=handover).first(), OperationsEvent.objects.first()):
        if record is None:
            continue
        opts = record._meta
        assert staff.get(change_url(record)).status_code == 200
        assert staff.post(change_url(record), {}).status_code == 403
        assert staff.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 403
        assert (
            staff.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[record.pk])).status_code == 403
        )


# ---------------------------------------------------------------------------------------------------- actions


@pytest.mark.django_db
def test_submit_moves_the_handover_and_writes_its_activity(staff, admin_user, handover, manager, ops_member):
    complete_all(handover, manager, ops_member)

    response = action(staff, Handover, "submit", [handover])

    handover.refresh_from_db()
    assert handover.status == HandoverStatus.SUBMITTED
    move = Activity.objects.filter(handover=handover, verb=ActivityVerb.STATUS_CHANGED).latest("id")
    assert (move.from_state, move.to_state, move.actor) == ("preparing", "submitted", admin_user)
    assert ("success", f"{handover}: submitted to operations.") in shown(response)


@pytest.mark.django_db
def test_submit_refused_shows_the_service_message_and_changes_nothing(staff, handover):
    activity_before = Activity.objects.filter(handover=handover).count()

    response = action(staff, Handover, "submit", [handover])

    assert response.status_code == 200
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.PREPARING
    assert Activity.objects.filter(handover=handover).count() == activity_before
    ((level, text),) = shown(response)
    assert level == "error"
    assert text.startswith(f"{handover}: Submitting needs every mandatory item done")


@pytest.mark.django_db
def test_accept_records_the_decision(staff, admin_user, handover, manager, owner, ops_member):
    complete_all(handover, manager, ops_member)
    verify_all(handover, owner)
    services.handover_submit(handover=handover, by=manager)

    response = action(staff, Handover, "accept", [handover])

    handover.refresh_from_db()
    assert handover.status == HandoverStatus.ACCEPTED
    decision = Decision.objects.get(handover=handover)
    assert (decision.kind, decision.decided_by) == (DecisionKind.ACCEPTED, admin_user)
    assert Project.objects.get(pk=handover.project_id).actual_handover == timezone.localdate()
    assert ("success", f"{handover}: accepted.") in shown(response)


@pytest.mark.django_db
def test_accept_refused_while_items_are_unverified(staff, handover, manager, ops_member):
    complete_all(handover, manager, ops_member)
    services.handover_submit(handover=handover, by=manager)

    response = action(staff, Handover, "accept", [handover])

    handover.refresh_from_db()
    assert handover.status == HandoverStatus.SUBMITTED
    assert not Decision.objects.filter(handover=handover).exists()
    ((level, text),) = shown(response)
    assert level == "error"
    assert "Accepting needs every mandatory item verified" in text


@pytest.mark.django_db
def test_cancel_asks_for_a_reason_and_records_it(staff, handover):
    page = action(staff, Handover, "cancel", [handover])
    assert page.status_code == 200
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.PREPARING

    confirm(staff, Handover, "cancel", [handover], reason="The project is being re-scoped.")

    handover.refresh_from_db()
    assert (handover.status, handover.cancel_reason) == (HandoverStatus.CANCELLED, "The project is being re-scoped.")
    assert not Project.objects.get(pk=handover.project_id).has_handover_plan
    move = Activity.objects.filter(handover=handover, verb=ActivityVerb.STATUS_CHANGED).latest("id")
    assert move.message == "The project is being re-scoped."


@pytest.mark.django_db
def test_verify_action_verifies_done_items_and_refuses_open_ones(staff, admin_user, handover, manager):
    done, still_open = handover.items.filter(side=Side.PROJECT, mandatory=True)[:2]
    services.item_complete(item=done, by=manager, evidence_url=EVIDENCE)

    response = action(staff, ChecklistItem, "verify", [done, still_open])

    done.refresh_from_db()
    still_open.refresh_from_db()
    assert (done.status, done.verified_by) == (ItemStatus.VERIFIED, admin_user)
    assert still_open.status == ItemStatus.OPEN
    assert Activity.objects.filter(item=done, to_state=ItemStatus.VERIFIED, actor=admin_user).exists()
    assert shown(response) == [
        ("success", f"CRM-2026 · {done.title}: verified."),
        ("error", f"CRM-2026 · {still_open.title}: Only a done item can be verified; this one is open."),
    ]


@pytest.mark.django_db
def test_acknowledging_a_stall_flag_asks_for_a_note_and_audits_it(staff, admin_user, handover):
    flag = StallFlag.objects.create(handover=handover, rule=StallRule.IDLE, opened_at=timezone.now())

    page = action(staff, StallFlag, "acknowledge", [flag])
    assert "Note" in page.content.decode()
    confirm(staff, StallFlag, "acknowledge", [flag], reason="Chasing the vendor for the runbook on Monday.")

    flag.refresh_from_db()
    assert (flag.acknowledged_by, flag.acknowledge_note) == (
        admin_user,
        "Chasing the vendor for the runbook on Monday.",
    )
    assert Activity.objects.filter(handover=handover, verb=ActivityVerb.STALL_ACKNOWLEDGED).exists()


@pytest.mark.django_db
def test_the_handover_page_links_to_its_own_activity(staff, handover, manager):
    other = services.handover_cancel(handover=handover, by=manager, reason="Replanned.")
    replanned = services.handover_create(
        project=other.project,
        template=other.template,
        operations_owner=other.operations_owner,
        target_date=other.target_date,
        by=manager,
    )
    page = staff.get(change_url(replanned))
    link = reverse("admin:handover_activity_changelist") + f"?handover__id__exact={replanned.pk}"
    assert link in page.content.decode()

    listing = staff.get(link)

    assert listing.status_code == 200
    assert {a.handover_id for a in listing.context["cl"].result_list} == {replanned.pk}


# ------------------------------------------------------------------------------------------------------ forms


@pytest.mark.django_db
def test_creating_a_handover_in_the_admin_copies_the_template(staff, admin_user, planning_project, template, owner):
    data = form_data(staff.get(reverse("admin:handover_handover_add")), Handover)
    target = timezone.localdate() + dt.timedelta(days=20)
    data.update(project=planning_project.pk, template=template.pk, operations_owner=owner.pk, target_date=target)

    staff.post(reverse("admin:handover_handover_add"), data, follow=True)

    handover = Handover.objects.get(project=planning_project)
    assert (handover.status, handover.created_by, handover.target_date) == ("preparing", admin_user, target)
    assert handover.items.count() == template.items.count()
    assert Activity.objects.filter(handover=handover, verb=ActivityVerb.CREATED).exists()
    assert Project.objects.get(pk=planning_project.pk).has_handover_plan


@pytest.mark.django_db
def test_a_handover_the_service_refuses_is_shown_on_the_form(staff, planning_project, template, viewer):
    """The operations owner must belong to the receiving team; the service says so and nothing is created."""
    data = form_data(staff.get(reverse("admin:handover_handover_add")), Handover)
    data.update(project=planning_project.pk, template=template.pk, operations_owner=viewer.pk, target_date="2030-01-31")

    response = staff.post(reverse("admin:handover_handover_add"), data)

    assert response.status_code == 200
    assert "The operations owner must be the lead or a member of" in response.content.decode()
    assert not Handover.objects.exists()
    assert not Project.objects.get(pk=planning_project.pk).has_handover_plan


@pytest.mark.django_db
def test_editing_the_checklist_inline_goes_through_the_item_services(staff, handover, member):
    data = form_data(staff.get(change_url(handover)), Handover)
    first = handover.items.order_by("position", "id").first()
    due = timezone.localdate() + dt.timedelta(days=9)
    index = next(key.split("-")[1] for key, value in data.items() if key.endswith("-id") and value == str(first.pk))
    data[f"items-{index}-due_date"] = due.isoformat()
    data[f"items-{index}-assignee"] = str(member.pk)
    total = int(data["items-TOTAL_FORMS"])
    data.update(
        {
            "items-TOTAL_FORMS": str(total + 1),
            f"items-{total}-title": "Reporting dashboard handed over",
            f"items-{total}-risk": "adoption",
            f"items-{total}-side": "operations",
            f"items-{total}-mandatory": "on",
            f"items-{total}-handover": str(handover.pk),
        }
    )

    staff.post(change_url(handover), data, follow=True)

    first.refresh_from_db()
    assert (first.due_date, first.assignee) == (due, member)
    updated = Activity.objects.get(handover=handover, item=first, verb=ActivityVerb.ITEM_UPDATED)
    assert set(updated.data["changes"]) == {"due_date", "assignee"}
    added = handover.items.get(title="Reporting dashboard handed over")
    assert Activity.objects.filter(item=added, verb=ActivityVerb.ITEM_ADDED).exists()


@pytest.mark.django_db
def test_editing_a_template_installs_a_new_version_and_leaves_handovers_alone(staff, handover, template):
    data = form_data(staff.get(change_url(template)), ChecklistTemplate)
    title_key = next(key for key, value in data.items() if key.endswith("-title") and value == "Nice to have")
    data[title_key] = "Super-users named in each team"

    response = staff.post(change_url(template), data, follow=True)

    assert response.status_code == 200
    old, new = ChecklistTemplate.objects.filter(name=template.name).order_by("version")
    assert (old.version, old.is_active, new.version, new.is_active) == (1, False, 2, True)
    assert new.items.filter(title="Super-users named in each team").exists()
    assert handover.items.filter(title="Nice to have").exists()  # the live handover keeps its copy


@pytest.mark.django_db
def test_saving_a_template_unchanged_installs_no_new_version(staff, template):
    staff.post(change_url(template), form_data(staff.get(change_url(template)), ChecklistTemplate), follow=True)

    assert list(ChecklistTemplate.objects.filter(name=template.name).values_list("version", "is_active")) == [(1, True)]


@pytest.mark.django_db
def test_a_template_created_in_the_admin_is_installed_by_the_service(staff):
    data = form_data(staff.get(reverse("admin:handover_checklisttemplate_add")), ChecklistTemplate)
    data.update(
        {
            "kind": "custom",
            "name": "Data platform hand-over",
            "is_active": "on",
            "items-TOTAL_FORMS": "2",
            "items-0-position": "2",
            "items-0-key": "runbooks",
            "items-0-title": "Runbooks accepted",
            "items-0-risk": "inefficiency",
            "items-0-side": "operations",
            "items-0-mandatory": "on",
            "items-1-position": "1",
            "items-1-key": "backups",
            "items-1-title": "Backups restored in a test",
            "items-1-risk": "failure",
            "items-1-side": "project",
        }
    )

    staff.post(reverse("admin:handover_checklisttemplate_add"), data, follow=True)

    template = ChecklistTemplate.objects.get(name="Data platform hand-over")
    assert (template.version, template.is_active, template.kind) == (1, True, "custom")
    rows = list(template.items.order_by("position").values_list("position", "key", "mandatory"))
    assert rows == [(1, "backups", False), (2, "runbooks", True)]


@pytest.mark.django_db
def test_a_new_token_shows_its_secret_once(staff, admin_user, viewer):
    data = form_data(staff.get(reverse("admin:handover_apitoken_add")), ApiToken)
    data.update(user=viewer.pk, name="Dashboard", read_only="on")

    response = staff.post(reverse("admin:handover_apitoken_add"), data)

    token = ApiToken.objects.get()
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert tokens.token_authenticate(secret) == token
    assert (token.user, token.read_only, token.created_by) == (viewer, True, admin_user)
    assert secret not in staff.get(reverse("admin:handover_apitoken_changelist")).content.decode()


@pytest.mark.django_db
def test_a_webhook_is_created_through_the_service_with_its_secret(staff, admin_user):
    data = form_data(staff.get(reverse("admin:handover_webhooksubscription_add")), WebhookSubscription)
    data.update(url="https://hooks.example.com/in", events=["handover.accepted", "stall.opened"])

    staff.post(reverse("admin:handover_webhooksubscription_add"), data, follow=True)

    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["handover.accepted", "stall.opened"]
    assert subscription.owner == admin_user
    assert subscription.secret.startswith("whsec_")


# --------------------------------------------------------------------------------------------- operations admin
# (Here rather than in tests/operations/, which this change does not touch: the operations admin is exercised the
# same way, through its forms, and must leave the same audit rows as the services.)


@pytest.mark.django_db
def test_a_team_created_in_the_admin_is_audited_with_its_services(staff, admin_user, lead, owner):
    data = form_data(staff.get(reverse("admin:operations_operationsteam_add")), OperationsTeam)
    data.update(
        {
            "name": "Network Operations",
            "lead": str(lead.pk),
            "members": [str(owner.pk)],
            "services-TOTAL_FORMS": "1",
            "services-0-name": "WAN",
            "services-0-is_active": "on",
        }
    )

    staff.post(reverse("admin:operations_operationsteam_add"), data, follow=True)

    team = OperationsTeam.objects.get(name="Network Operations")
    assert (team.lead, list(team.members.all())) == (lead, [owner])
    assert list(team.services.values_list("name", flat=True)) == ["WAN"]
    kinds = list(OperationsEvent.objects.filter(team=team).order_by("id").values_list("kind", "actor"))
    assert kinds == [("team_created", admin_user.pk), ("service_created", admin_user.pk)]


@pytest.mark.django_db
def test_a_kpi_reading_added_inline_is_posted_through_the_service(staff, admin_user):
    kpi = KpiFactory()
    data = form_data(staff.get(change_url(kpi)), Kpi)
    measured = timezone.localtime() - dt.timedelta(days=1)
    data.update(
        {
            "readings-TOTAL_FORMS": "1",
            "readings-0-measured_at_0": measured.date().isoformat(),
            "readings-0-measured_at_1": "09:30:00",
            "readings-0-value": "42.5",
            "readings-0-note": "From the monthly report",
        }
    )

    staff.post(change_url(kpi), data, follow=True)

    reading = KpiReading.objects.get(kpi=kpi)
    assert (reading.value, reading.recorded_by, reading.note) == (
        Decimal("42.5"),
        admin_user,
        "From the monthly report",
    )


# --------------------------------------------------------------------------------- every other admin action


def _submitted(handover, manager, owner, ops_member):
    complete_all(handover, manager, ops_member)
    verify_all(handover, owner)
    return services.handover_submit(handover=handover, by=manager)


@pytest.mark.django_db
def test_return_asks_for_a_reason_and_records_the_decision(staff, admin_user, handover, manager, owner, ops_member):
    handover = _submitted(handover, manager, owner, ops_member)

    assert "Reason" in action(staff, Handover, "return_to_project", [handover]).content.decode()
    confirm(staff, Handover, "return_to_project", [handover], reason="No restore test yet.")

    handover.refresh_from_db()
    assert (handover.status, handover.return_count) == (HandoverStatus.RETURNED, 1)
    decision = Decision.objects.get(handover=handover)
    assert (decision.kind, decision.decided_by, decision.reason) == (
        DecisionKind.RETURNED,
        admin_user,
        "No restore test yet.",
    )


@pytest.mark.django_db
def test_accept_with_a_condition_asks_for_it_and_attaches_it(staff, admin_user, handover, manager, owner, ops_member):
    handover = _submitted(handover, manager, owner, ops_member)
    due = timezone.localdate() + dt.timedelta(days=14)

    page = action(staff, Handover, "accept_with_a_condition", [handover])
    assert all(label in page.content.decode() for label in ("Condition", "Owner", "Due date"))
    refused = confirm(staff, Handover, "accept_with_a_condition", [handover], text="Tune the alerts.", owner="")
    assert "This field is required." in refused.content.decode()
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.SUBMITTED

    confirm(
        staff,
        Handover,
        "accept_with_a_condition",
        [handover],
        text="Tune the alerts.",
        owner=ops_member.pk,
        due_date=due.isoformat(),
        note="",
    )

    handover.refresh_from_db()
    assert handover.status == HandoverStatus.ACCEPTED_WITH_CONDITIONS
    (condition,) = handover.conditions.all()
    assert (condition.text, condition.owner, condition.due_date) == ("Tune the alerts.", ops_member, due)


@pytest.mark.django_db
def test_hypercare_starts_and_completes_from_the_admin(staff, handover, manager, owner, ops_member):
    handover = services.handover_accept(handover=_submitted(handover, manager, owner, ops_member), by=owner)
    ends_on = timezone.localdate() + dt.timedelta(days=30)

    confirm(
        staff,
        Handover,
        "start_hypercare",
        [handover],
        ends_on=ends_on.isoformat(),
        exit_criteria="Fewer than five P2 incidents a week.",
    )
    handover.refresh_from_db()
    assert (handover.status, handover.hypercare_ends_on) == (HandoverStatus.HYPERCARE, ends_on)

    response = action(staff, Handover, "complete_hypercare", [handover])
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.COMPLETED
    assert ("success", f"{handover}: completed.") in shown(response)


@pytest.mark.django_db
def test_start_hypercare_refused_by_the_service_is_reported(staff, handover):
    response = confirm(
        staff,
        Handover,
        "start_hypercare",
        [handover],
        ends_on=(timezone.localdate() + dt.timedelta(days=30)).isoformat(),
        exit_criteria="Calm.",
    )
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.PREPARING
    ((level, text),) = shown(response)
    assert (level, text) == ("error", f"{handover}: Hypercare starts after acceptance; the handover is preparing.")


@pytest.mark.django_db
def test_complete_asks_for_evidence_then_completes(staff, admin_user, handover):
    item = handover.items.filter(side=Side.PROJECT, mandatory=True).first()

    empty = confirm(staff, ChecklistItem, "complete", [item], url="", text=" ")
    assert "needs evidence" in empty.content.decode()
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN

    confirm(staff, ChecklistItem, "complete", [item], url=EVIDENCE, text="")
    item.refresh_from_db()
    assert (item.status, item.done_by) == (ItemStatus.DONE, admin_user)
    assert list(item.evidence.values_list("url", flat=True)) == [EVIDENCE]


ITEM_REASON_ACTIONS = [
    # (action, status before, status after, field that keeps the reason)
    ("send_back", ItemStatus.DONE, ItemStatus.OPEN, "sent_back_reason"),
    ("waive", ItemStatus.OPEN, ItemStatus.WAIVED, "waiver_justification"),
    ("mark_not_applicable", ItemStatus.OPEN, ItemStatus.NOT_APPLICABLE, "not_applicable_reason"),
    ("reopen", ItemStatus.DONE, ItemStatus.OPEN, "sent_back_reason"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "before", "after", "field"), ITEM_REASON_ACTIONS)
def test_item_actions_that_need_a_reason(name, before, after, field, staff, admin_user, handover, manager):
    item = handover.items.filter(side=Side.PROJECT, mandatory=True).first()
    if before == ItemStatus.DONE:
        services.item_complete(item=item, by=manager, evidence_url=EVIDENCE)

    assert action(staff, ChecklistItem, name, [item]).status_code == 200
    item.refresh_from_db()
    assert item.status == before
    confirm(staff, ChecklistItem, name, [item], reason="Agreed with the service desk.")

    item.refresh_from_db()
    assert (item.status, getattr(item, field)) == (after, "Agreed with the service desk.")
    move = Activity.objects.filter(item=item, verb=ActivityVerb.ITEM_STATUS_CHANGED).latest("id")
    assert (move.from_state, move.to_state, move.actor) == (before, after, admin_user)


@pytest.mark.django_db
def test_approve_waiver_approves_what_the_manager_asked_for(staff, admin_user, handover, manager):
    item = handover.items.filter(side=Side.PROJECT, mandatory=True).first()
    services.item_waive(item=item, by=manager, justification="The vendor runs it.")

    response = action(staff, ChecklistItem, "approve_waiver", [item])

    item.refresh_from_db()
    assert (item.status, item.waiver_approved_by) == (ItemStatus.WAIVED, admin_user)
    assert ("success", f"CRM-2026 · {item.title}: waiver approved.") in shown(response)


@pytest.mark.django_db
def test_condition_marked_met_from_the_admin(staff, admin_user, handover, manager, owner, ops_member):
    handover = _submitted(handover, manager, owner, ops_member)
    due = timezone.localdate() + dt.timedelta(days=7)
    services.handover_accept_with_conditions(
        handover=handover, by=owner, conditions=[{"text": "Drill.", "owner": ops_member, "due_date": due}]
    )
    condition = handover.conditions.get()

    action(staff, type(condition), "mark_met", [condition])

    condition.refresh_from_db()
    assert (condition.status, condition.met_by) == ("met", admin_user)


@pytest.mark.django_db
def test_snooze_a_week_asks_for_a_reason_and_holds_the_flag(staff, admin_user, handover):
    flag = StallFlag.objects.create(handover=handover, rule=StallRule.IDLE, opened_at=timezone.now())
    now = timezone.now()

    confirm(staff, StallFlag, "snooze_a_week", [flag], reason="Waiting for the vendor until next week.")

    flag.refresh_from_db()
    assert flag.snooze_reason == "Waiting for the vendor until next week."
    assert dt.timedelta(days=6, hours=23) < flag.snoozed_until - now < dt.timedelta(days=7, minutes=5)


@pytest.mark.django_db
def test_templates_are_deactivated_and_reactivated_through_the_service(staff, template):
    action(staff, ChecklistTemplate, "deactivate", [template])
    template.refresh_from_db()
    assert template.is_active is False

    action(staff, ChecklistTemplate, "activate", [template])
    template.refresh_from_db()
    assert template.is_active is True


@pytest.mark.django_db
def test_revoking_a_token_from_the_admin_and_twice_is_refused(staff, viewer):
    token, _ = tokens.token_create(by=viewer, name="Dashboard")

    action(staff, ApiToken, "revoke", [token])
    token.refresh_from_db()
    assert token.revoked_at is not None

    again = action(staff, ApiToken, "revoke", [token])
    assert shown(again) == [("error", f"{token}: The token is already revoked.")]
