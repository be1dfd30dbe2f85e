"""The handover services: every move of docs/domain.md "Handover" and "Checklist items".

Each move is allowed from the right state by the right role, and then writes its activity row (who, verb, from,
to) at a known moment (``records``); otherwise it is refused with the rule it applied and writes nothing at all
(``refused``). The small template gives, per risk, one mandatory project-side and one mandatory operations-side
item, plus one optional project-side item.
"""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.errors import Conflict, IllegalTransition, InvalidInput, NotPermitted
from handover import services as hs
from handover.choices import (
    ActivityVerb,
    ConditionStatus,
    DecisionKind,
    EventType,
    HandoverStatus,
    ItemStatus,
    Risk,
    Side,
)
from handover.models import (
    Activity,
    Comment,
    Condition,
    Decision,
    Event,
    Evidence,
    Handover,
    TemplateItem,
    WebhookSubscription,
)
from handover.selectors import readiness_from_items
from projects import services as ps
from projects.choices import Stage
from tests.factories import ProjectFactory, ServiceFactory, TeamFactory, TemplateFactory, UserFactory

from .conftest import EVIDENCE_URL, complete_items, item_of, optional_item, verify_items

pytestmark = pytest.mark.django_db

STATUS_CHANGED = ActivityVerb.STATUS_CHANGED
ITEM_STATUS_CHANGED = ActivityVerb.ITEM_STATUS_CHANGED

PREPARING = HandoverStatus.PREPARING
SUBMITTED = HandoverStatus.SUBMITTED
RETURNED = HandoverStatus.RETURNED
ACCEPTED = HandoverStatus.ACCEPTED
CONDITIONAL = HandoverStatus.ACCEPTED_WITH_CONDITIONS
HYPERCARE = HandoverStatus.HYPERCARE
COMPLETED = HandoverStatus.COMPLETED
CANCELLED = HandoverStatus.CANCELLED
ACCEPTED_STATES = [ACCEPTED, CONDITIONAL, HYPERCARE, COMPLETED]


def today(days: int = 0) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


def assign_to_member(item, people):
    return hs.item_update(item=item, by=people.manager, assignee=people.member)


@pytest.fixture
def other_handover(people, team, template) -> Handover:
    """A second project's preparing handover, to the same team."""
    project = ProjectFactory(code="ERP-2026", manager=people.manager, receiving_team=team)
    project = ps.project_transition(project=project, to=Stage.PLANNING, by=people.manager)
    return hs.handover_create(
        project=project, template=template, operations_owner=people.owner, target_date=today(40), by=people.manager
    )


def create(project, by, **overrides) -> Handover:
    return hs.handover_create(project=project, by=by, **overrides)


# ================================================================================================ create


@pytest.fixture
def create_args(template, owner) -> dict:
    return {"template": template, "operations_owner": owner, "target_date": today(30)}


def test_create_copies_template_items_and_plans_the_project(planning_project, template, people, create_args, records):
    with records(None, (people.manager, ActivityVerb.CREATED, "", PREPARING)) as moment:
        handover = create(planning_project, people.manager, **create_args)

    handover.refresh_from_db()
    assert handover.status == PREPARING
    assert (handover.created_by, handover.created_at, handover.status_changed_at) == (people.manager, moment, moment)
    assert (handover.template, handover.template_version) == (template, template.version)
    assert handover.receiving_team == planning_project.receiving_team
    assert handover.operations_owner == people.owner
    copied = list(
        handover.items.order_by("position").values_list(
            "template_item", "title", "guidance", "risk", "side", "mandatory", "position", "status"
        )
    )
    assert copied == [
        (t.pk, t.title, t.guidance, t.risk, t.side, t.mandatory, t.position, ItemStatus.OPEN)
        for t in template.items.order_by("position")
    ]
    assert len(copied) == 7
    planning_project.refresh_from_db()
    assert planning_project.has_handover_plan is True


def test_later_template_edits_do_not_rewrite_the_checklist(handover, template):
    titles = list(handover.items.order_by("position").values_list("title", flat=True))
    TemplateItem.objects.filter(template=template).update(title="Rewritten", mandatory=False)
    assert list(handover.items.order_by("position").values_list("title", flat=True)) == titles
    assert handover.items.filter(mandatory=True).count() == 6


def test_admin_may_create_a_handover(planning_project, people, create_args, records):
    with records(None, (people.admin, ActivityVerb.CREATED, "", PREPARING)):
        handover = create(planning_project, people.admin, **create_args)
    assert handover.created_by == people.admin


@pytest.mark.parametrize("who", ["member", "owner", "lead", "ops_member", "viewer"])
def test_create_refused_for_anyone_but_manager_or_admin(who, planning_project, people, create_args, refused):
    with refused(NotPermitted, rule="manager_only"):
        create(planning_project, getattr(people, who), **create_args)


@pytest.mark.parametrize("who", ["owner", "ops_member", "lead"])
def test_operations_owner_may_be_any_member_or_the_lead_of_the_team(
    who, planning_project, people, create_args, records
):
    with records(None, (people.manager, ActivityVerb.CREATED, "", PREPARING)):
        handover = create(planning_project, people.manager, **{**create_args, "operations_owner": getattr(people, who)})
    assert handover.operations_owner == getattr(people, who)


@pytest.mark.parametrize("outsider", ["viewer", "member", "other_team_member"])
def test_create_refused_when_owner_not_in_receiving_team(outsider, planning_project, people, create_args, refused):
    other_team_member = UserFactory(username="elsewhere")
    TeamFactory(name="Facilities", members=[other_team_member])
    user = other_team_member if outsider == "other_team_member" else getattr(people, outsider)
    with refused(InvalidInput, rule="owner_not_in_team", field="operations_owner"):
        create(planning_project, people.manager, **{**create_args, "operations_owner": user})


def test_create_accepts_a_service_of_the_receiving_team(planning_project, team, people, create_args, records):
    service = ServiceFactory(team=team, name="CRM platform")
    with records(None, (people.manager, ActivityVerb.CREATED, "", PREPARING)):
        handover = create(planning_project, people.manager, service=service, **create_args)
    assert handover.service == service


def test_create_refused_for_a_service_of_another_team(planning_project, people, create_args, refused):
    service = ServiceFactory(team=TeamFactory(name="Facilities"), name="Office FC-14")
    with refused(InvalidInput, rule="service_not_in_team", field="service"):
        create(planning_project, people.manager, service=service, **create_args)


def test_create_refused_for_an_inactive_template(planning_project, people, create_args, refused):
    retired = TemplateFactory(name="Retired roll-out", is_active=False)
    with refused(InvalidInput, rule="template_inactive", field="template"):
        create(planning_project, people.manager, **{**create_args, "template": retired})


def test_create_refused_without_a_receiving_team(people, create_args, refused):
    project = ProjectFactory(code="NO-TEAM", manager=people.manager, receiving_team=None)
    with refused(InvalidInput, rule="receiving_team_required", field="receiving_team"):
        create(project, people.manager, **create_args)


@pytest.mark.parametrize("existing", [PREPARING, SUBMITTED, RETURNED, ACCEPTED, COMPLETED])
def test_create_refused_while_the_project_has_an_active_handover(existing, handover_in, people, create_args, refused):
    current = handover_in(existing)
    with refused(IllegalTransition, rule="one_active_handover"):
        create(current.project, people.manager, **create_args)
    assert Handover.objects.filter(project=current.project).count() == 1


def test_create_allowed_again_after_cancel(handover, people, create_args, records):
    """GIVEN a cancelled handover WHEN the manager plans a new one THEN it is created and the project planned again."""
    project = handover.project
    hs.handover_cancel(handover=handover, by=people.manager, reason="Wrong template.")
    project.refresh_from_db()
    assert project.has_handover_plan is False

    with records(None, (people.manager, ActivityVerb.CREATED, "", PREPARING)):
        again = create(project, people.manager, **create_args)

    assert again.pk != handover.pk
    assert sorted(project.handovers.values_list("status", flat=True)) == [CANCELLED, PREPARING]
    project.refresh_from_db()
    assert project.has_handover_plan is True


# ================================================================================================ submit


@pytest.mark.parametrize("who", ["manager", "admin"])
def test_submit_moves_a_ready_handover_to_operations(who, ready_handover, people, records):
    by = getattr(people, who)
    with records(ready_handover, (by, STATUS_CHANGED, PREPARING, SUBMITTED)) as moment:
        handover = hs.handover_submit(handover=ready_handover, by=by)
    handover.refresh_from_db()
    assert (handover.status, handover.submitted_at, handover.status_changed_at) == (SUBMITTED, moment, moment)


@pytest.mark.parametrize("who", ["member", "owner", "lead", "ops_member", "viewer"])
def test_submit_refused_for_anyone_but_the_manager(who, ready_handover, people, refused):
    with refused(NotPermitted, rule="manager_only", watch=[ready_handover]):
        hs.handover_submit(handover=ready_handover, by=getattr(people, who))


def test_submit_refused_while_a_mandatory_item_is_open(handover, people, refused):
    still_open = item_of(handover, Risk.ADOPTION, Side.OPERATIONS)
    complete_items(handover, people, handover.items.filter(mandatory=True).exclude(pk=still_open.pk))
    with refused(IllegalTransition, rule="submit_mandatory_open", says=still_open.title, watch=[handover]) as error:
        hs.handover_submit(handover=handover, by=people.manager)
    done_titles = handover.items.filter(status=ItemStatus.DONE).values_list("title", flat=True)
    assert not [title for title in done_titles if title in error.value.message]


def test_submit_not_blocked_by_open_optional_items(ready_handover, people, records):
    assert optional_item(ready_handover).status == ItemStatus.OPEN
    with records(ready_handover, (people.manager, STATUS_CHANGED, PREPARING, SUBMITTED)):
        assert hs.handover_submit(handover=ready_handover, by=people.manager).status == SUBMITTED


def test_submit_allowed_with_items_done_waived_or_not_applicable(handover, people, records):
    """GIVEN mandatory items done (unverified), waived (approval pending) and not applicable WHEN the manager submits
    THEN it is submitted: submitting only needs the project side's work finished."""
    waived, not_applicable = item_of(handover, Risk.FAILURE), item_of(handover, Risk.ADOPTION)
    hs.item_waive(item=waived, by=people.manager, justification="Covered by the vendor's DR test.")
    hs.item_mark_not_applicable(item=not_applicable, by=people.manager, reason="No end users: back-office only.")
    complete_items(handover, people)
    assert set(handover.items.filter(mandatory=True).values_list("status", flat=True)) == {
        ItemStatus.DONE,
        ItemStatus.WAIVED,
        ItemStatus.NOT_APPLICABLE,
    }
    with records(handover, (people.manager, STATUS_CHANGED, PREPARING, SUBMITTED)):
        assert hs.handover_submit(handover=handover, by=people.manager).status == SUBMITTED


def test_submit_from_returned_passes_through_preparing(submitted_handover, people, records):
    """GIVEN a handover returned without items WHEN the manager resubmits THEN the history shows
    returned → preparing → submitted, both by the manager at the same moment."""
    returned = hs.handover_return(handover=submitted_handover, by=people.owner, reason="Confirm the go-live date.")
    with records(
        returned,
        (people.manager, STATUS_CHANGED, RETURNED, PREPARING),
        (people.manager, STATUS_CHANGED, PREPARING, SUBMITTED),
    ) as moment:
        handover = hs.handover_submit(handover=returned, by=people.manager)
    handover.refresh_from_db()
    assert (handover.status, handover.submitted_at) == (SUBMITTED, moment)


@pytest.mark.parametrize("state", [SUBMITTED, ACCEPTED, CONDITIONAL, HYPERCARE, COMPLETED, CANCELLED])
def test_submit_refused_unless_preparing_or_returned(state, handover_in, people, refused):
    handover = handover_in(state)
    with refused(IllegalTransition, rule="handover_transition", watch=[handover]):
        hs.handover_submit(handover=handover, by=people.manager)


def test_submit_refused_with_a_stale_version(ready_handover, people, refused):
    with refused(Conflict, rule="stale_version", watch=[ready_handover]):
        hs.handover_submit(handover=ready_handover, by=people.manager, expected_version=ready_handover.version - 1)


# ================================================================================================ accept


def _submitted_with_unverified(handover, people, drive_to_submitted):
    """Submitted, with every mandatory item verified except the operations-side failure item (done only)."""
    unverified = item_of(handover, Risk.FAILURE, Side.OPERATIONS)
    complete_items(handover, people)
    verify_items(handover, people, handover.items.filter(status=ItemStatus.DONE).exclude(pk=unverified.pk))
    return hs.handover_submit(handover=handover, by=people.manager), unverified


def readiness_of(handover) -> dict:
    # The in-memory calculation, as the snapshot uses; test_readiness.py checks it against the database query.
    return readiness_from_items(handover.items.all()).as_dict()


def _snapshot_statuses(decision: Decision) -> dict[int, str]:
    return {row["id"]: row["status"] for row in decision.snapshot["items"]}


@pytest.mark.parametrize("who", ["owner", "lead", "admin"])
def test_accept_freezes_the_checklist_and_records_the_handover_date(who, submitted_handover, people, records):
    by = getattr(people, who)
    with records(submitted_handover, (by, STATUS_CHANGED, SUBMITTED, ACCEPTED)) as moment:
        handover = hs.handover_accept(handover=submitted_handover, by=by, note="Runs fine in staging.")

    handover.refresh_from_db()
    assert (handover.status, handover.accepted_at, handover.decided_at) == (ACCEPTED, moment, moment)
    handover.project.refresh_from_db()
    assert handover.project.actual_handover == timezone.localdate(moment)
    decision = Decision.objects.get(handover=handover)
    assert (decision.kind, decision.decided_by, decision.decided_at) == (DecisionKind.ACCEPTED, by, moment)
    assert decision.reason == "Runs fine in staging."
    assert _snapshot_statuses(decision) == dict(handover.items.values_list("pk", "status"))
    assert decision.snapshot["readiness"] == readiness_of(handover)
    assert not Condition.objects.exists()


@pytest.mark.parametrize("who", ["manager", "member", "ops_member", "viewer"])
def test_accept_refused_for_anyone_but_owner_lead_or_admin(who, submitted_handover, people, refused):
    with refused(NotPermitted, rule="owner_only", watch=[submitted_handover]):
        hs.handover_accept(handover=submitted_handover, by=getattr(people, who))


def test_accept_refused_with_an_unverified_mandatory_item(handover, people, drive_to_submitted, refused):
    submitted, unverified = _submitted_with_unverified(handover, people, drive_to_submitted)
    with refused(IllegalTransition, rule="accept_mandatory_unverified", says=unverified.title, watch=[submitted]):
        hs.handover_accept(handover=submitted, by=people.owner)


def test_accept_refused_while_a_waiver_waits_for_approval(handover, people, refused, records):
    """GIVEN the manager waived a mandatory item (pending) and submitted WHEN the owner accepts THEN it is refused;
    once the owner approves the waiver, accepting succeeds."""
    waived = item_of(handover, Risk.INEFFICIENCY)
    hs.item_waive(item=waived, by=people.manager, justification="SLA copied from the old CRM contract.")
    complete_items(handover, people)
    verify_items(handover, people)
    submitted = hs.handover_submit(handover=handover, by=people.manager)

    with refused(IllegalTransition, rule="accept_mandatory_unverified", says=waived.title, watch=[submitted, waived]):
        hs.handover_accept(handover=submitted, by=people.owner)

    hs.item_approve_waiver(item=waived, by=people.owner)
    with records(submitted, (people.owner, STATUS_CHANGED, SUBMITTED, ACCEPTED)):
        assert hs.handover_accept(handover=submitted, by=people.owner).status == ACCEPTED


def test_accept_counts_not_applicable_mandatory_items_as_settled(handover, people, records):
    hs.item_mark_not_applicable(item=item_of(handover, Risk.ADOPTION), by=people.manager, reason="No end users.")
    complete_items(handover, people)
    verify_items(handover, people)
    submitted = hs.handover_submit(handover=handover, by=people.manager)
    with records(submitted, (people.owner, STATUS_CHANGED, SUBMITTED, ACCEPTED)):
        assert hs.handover_accept(handover=submitted, by=people.owner).status == ACCEPTED


NOT_SUBMITTED = [PREPARING, RETURNED, ACCEPTED, CONDITIONAL, HYPERCARE, COMPLETED, CANCELLED]


@pytest.mark.parametrize("state", NOT_SUBMITTED)
def test_accept_refused_unless_submitted(state, handover_in, people, refused):
    handover = handover_in(state)
    with refused(IllegalTransition, rule="not_submitted", watch=[handover]):
        hs.handover_accept(handover=handover, by=people.owner)


# ================================================================================ accept with conditions


def test_accept_with_conditions_attaches_each_condition(submitted_handover, people, records):
    with records(submitted_handover, (people.owner, STATUS_CHANGED, SUBMITTED, CONDITIONAL)) as moment:
        conditions = [
            hs.ConditionInput(text="Restore drill with night shift.", owner=people.ops_member, due_date=today(14)),
            {"text": "Publish the FAQ.", "owner": people.manager, "due_date": today()},  # due today is not past
        ]
        handover = hs.handover_accept_with_conditions(
            handover=submitted_handover, by=people.owner, conditions=conditions, note="Two follow-ups."
        )

    handover.refresh_from_db()
    assert (handover.status, handover.accepted_at, handover.decided_at) == (CONDITIONAL, moment, moment)
    handover.project.refresh_from_db()
    assert handover.project.actual_handover == timezone.localdate(moment)
    decision = Decision.objects.get(handover=handover)
    assert (decision.kind, decision.decided_by, decision.reason) == (
        DecisionKind.ACCEPTED_WITH_CONDITIONS,
        people.owner,
        "Two follow-ups.",
    )
    assert _snapshot_statuses(decision) == dict(handover.items.values_list("pk", "status"))
    assert decision.snapshot["readiness"] == readiness_of(handover)
    day = timezone.localdate(moment)
    rows = list(Condition.objects.order_by("text").values_list("text", "owner", "due_date", "status", "decision"))
    assert rows == [
        ("Publish the FAQ.", people.manager.pk, day, ConditionStatus.OPEN, decision.pk),
        ("Restore drill with night shift.", people.ops_member.pk, day + dt.timedelta(days=14), "open", decision.pk),
    ]


@pytest.mark.parametrize("state", NOT_SUBMITTED)
def test_accept_with_conditions_refused_unless_submitted(state, handover_in, people, refused):
    handover = handover_in(state)
    condition = {"text": "Restore drill.", "owner": people.ops_member, "due_date": today(7)}
    with refused(IllegalTransition, rule="not_submitted", watch=[handover]):
        hs.handover_accept_with_conditions(handover=handover, by=people.owner, conditions=[condition])


def test_accept_with_conditions_refused_for_a_condition_owner_outside_the_handover(submitted_handover, people, refused):
    condition = {"text": "Restore drill.", "owner": people.viewer, "due_date": today(7)}
    with refused(
        InvalidInput,
        rule="condition_owner_not_participant",
        field="conditions[0].owner",
        watch=[submitted_handover],
    ):
        hs.handover_accept_with_conditions(handover=submitted_handover, by=people.owner, conditions=[condition])


def test_accept_with_conditions_refused_for_too_many_conditions(submitted_handover, people, refused):
    condition = {"text": "Restore drill.", "owner": people.ops_member, "due_date": today(7)}
    with refused(InvalidInput, rule="too_many_conditions", field="conditions", watch=[submitted_handover]):
        hs.handover_accept_with_conditions(
            handover=submitted_handover, by=people.owner, conditions=[condition] * (hs.MAX_CONDITIONS + 1)
        )


def test_accept_with_conditions_refused_without_conditions(submitted_handover, people, refused):
    with refused(InvalidInput, rule="conditions_required", field="conditions", watch=[submitted_handover]):
        hs.handover_accept_with_conditions(handover=submitted_handover, by=people.owner, conditions=[])


@pytest.mark.parametrize(
    ("change", "rule", "field"),
    [
        ({"text": ""}, "condition_text_required", "conditions[1].text"),
        ({"text": "   "}, "condition_text_required", "conditions[1].text"),
        ({"owner": None}, "condition_owner_required", "conditions[1].owner"),
        ({"due_date": None}, "condition_due_required", "conditions[1].due_date"),
        ({"due_date": "yesterday"}, "condition_due_past", "conditions[1].due_date"),
    ],
    ids=["no-text", "blank-text", "no-owner", "no-due-date", "due-in-the-past"],
)
def test_accept_with_conditions_refused_for_an_incomplete_condition(
    change, rule, field, submitted_handover, people, refused
):
    good = {"text": "Restore drill.", "owner": people.ops_member, "due_date": today(7)}
    bad = {**good, **change}
    if bad["due_date"] == "yesterday":
        bad["due_date"] = today(-1)
    with refused(InvalidInput, rule=rule, field=field, watch=[submitted_handover]):
        hs.handover_accept_with_conditions(handover=submitted_handover, by=people.owner, conditions=[good, bad])


@pytest.mark.parametrize("who", ["manager", "member", "ops_member", "viewer"])
def test_accept_with_conditions_refused_for_anyone_but_owner_lead_or_admin(who, submitted_handover, people, refused):
    condition = {"text": "Restore drill.", "owner": people.ops_member, "due_date": today(7)}
    with refused(NotPermitted, rule="owner_only", watch=[submitted_handover]):
        hs.handover_accept_with_conditions(handover=submitted_handover, by=getattr(people, who), conditions=[condition])


def test_accept_with_conditions_refused_with_an_unverified_mandatory_item(
    handover, people, drive_to_submitted, refused
):
    submitted, unverified = _submitted_with_unverified(handover, people, drive_to_submitted)
    condition = {"text": "Verify it later.", "owner": people.ops_member, "due_date": today(7)}
    with refused(IllegalTransition, rule="accept_mandatory_unverified", says=unverified.title, watch=[submitted]):
        hs.handover_accept_with_conditions(handover=submitted, by=people.owner, conditions=[condition])


# ================================================================================================ return


def test_return_sends_items_back_and_snapshots_them_as_they_were(handover, people, drive_to_submitted, records):
    """GIVEN a submitted handover with a verified mandatory item and a done optional item WHEN the owner returns it
    sending both back THEN both are open with the reason, the return is counted, and the decision's snapshot still
    shows them verified and done."""
    submitted = drive_to_submitted(handover, optional_done=True)
    verified, done = item_of(submitted), optional_item(submitted)
    untouched = item_of(submitted, Risk.ADOPTION, Side.OPERATIONS)
    readiness_before = readiness_of(submitted)
    reason = "The restore test evidence is a screenshot of the wrong system."

    with records(
        submitted,
        (people.owner, ITEM_STATUS_CHANGED, ItemStatus.VERIFIED, ItemStatus.OPEN, verified),
        (people.owner, ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.OPEN, done),
        (people.owner, STATUS_CHANGED, SUBMITTED, RETURNED, None),
    ) as moment:
        returned = hs.handover_return(handover=submitted, by=people.owner, reason=reason, items=[verified, done])

    returned.refresh_from_db()
    assert (returned.status, returned.return_count, returned.decided_at) == (RETURNED, 1, moment)
    for item in (verified, done):
        item.refresh_from_db()
        assert (item.status, item.sent_back_reason) == (ItemStatus.OPEN, reason)
        assert (item.done_by, item.done_at, item.verified_by, item.verified_at) == (None, None, None, None)
    untouched.refresh_from_db()
    assert untouched.status == ItemStatus.VERIFIED
    decision = Decision.objects.get(handover=returned)
    assert (decision.kind, decision.decided_by, decision.decided_at, decision.reason) == (
        DecisionKind.RETURNED,
        people.owner,
        moment,
        reason,
    )
    snapshot = _snapshot_statuses(decision)
    assert (snapshot[verified.pk], snapshot[done.pk]) == (ItemStatus.VERIFIED, ItemStatus.DONE)
    assert decision.snapshot["readiness"] == readiness_before
    assert decision.snapshot["sent_back"] == [
        {"id": item.pk, "title": item.title, "reason": reason} for item in sorted((verified, done), key=_position)
    ]


def _position(item):
    return (item.position, item.pk)


def test_return_hands_back_the_current_version(handover, people, drive_to_submitted):
    """The handover returned by the service is what the database holds, so a client can chain the next call with
    ``expected_version``."""
    submitted = drive_to_submitted(handover, optional_done=True)
    returned = hs.handover_return(
        handover=submitted, by=people.owner, reason="Redo.", items=[item_of(submitted), optional_item(submitted)]
    )
    assert returned.version == Handover.objects.get(pk=returned.pk).version


@pytest.mark.parametrize("reason", ["", "   "])
def test_return_refused_without_a_reason(reason, submitted_handover, people, refused):
    with refused(InvalidInput, rule="reason_required", field="reason", watch=[submitted_handover]):
        hs.handover_return(handover=submitted_handover, by=people.owner, reason=reason)


def test_return_refused_for_an_item_of_another_handover(submitted_handover, other_handover, people, refused):
    foreign = item_of(other_handover)
    with refused(InvalidInput, rule="item_not_in_handover", field="items", watch=[submitted_handover, foreign]):
        hs.handover_return(
            handover=submitted_handover,
            by=people.owner,
            reason="Wrong evidence.",
            items=[item_of(submitted_handover), foreign],
        )


def test_return_refused_for_an_item_that_is_not_done(submitted_handover, people, refused):
    still_open = optional_item(submitted_handover)
    with refused(IllegalTransition, rule="item_transition", field="items", watch=[submitted_handover, still_open]):
        hs.handover_return(handover=submitted_handover, by=people.owner, reason="Do this too.", items=[still_open])


@pytest.mark.parametrize("who", ["manager", "member", "ops_member", "viewer"])
def test_return_refused_for_anyone_but_owner_lead_or_admin(who, submitted_handover, people, refused):
    with refused(NotPermitted, rule="owner_only", watch=[submitted_handover]):
        hs.handover_return(handover=submitted_handover, by=getattr(people, who), reason="Not ready.")


@pytest.mark.parametrize("state", NOT_SUBMITTED)
def test_return_refused_unless_submitted(state, handover_in, people, refused):
    handover = handover_in(state)
    with refused(IllegalTransition, rule="not_submitted", watch=[handover]):
        hs.handover_return(handover=handover, by=people.owner, reason="Not ready.")


def test_return_count_increments_on_each_return(submitted_handover, people):
    handover = hs.handover_return(handover=submitted_handover, by=people.owner, reason="First look: dates.")
    handover = hs.handover_submit(handover=handover, by=people.manager)
    handover = hs.handover_return(handover=handover, by=people.lead, reason="Second look: contacts.")
    handover.refresh_from_db()
    assert handover.return_count == 2
    assert list(handover.decisions.values_list("kind", flat=True)) == [DecisionKind.RETURNED, DecisionKind.RETURNED]


# ============================================================================= returned → preparing


RESUMING_CHANGES = {
    "item_complete": (
        lambda h, item, p: hs.item_complete(item=item, by=p.manager, evidence_url=EVIDENCE_URL),
        [(ActivityVerb.EVIDENCE_ADDED, "", ""), (ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.DONE)],
    ),
    "handover_update": (
        lambda h, item, p: hs.handover_update(handover=h, by=p.manager, deliverables="CRM plus the mail gateway."),
        [(ActivityVerb.UPDATED, "", "")],
    ),
    "item_update": (
        lambda h, item, p: hs.item_update(item=item, by=p.manager, due_date=today(5)),
        [(ActivityVerb.ITEM_UPDATED, "", "")],
    ),
    "item_waive": (
        lambda h, item, p: hs.item_waive(item=item, by=p.manager, justification="Vendor covers it."),
        [(ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.WAIVED)],
    ),
    "item_mark_not_applicable": (
        lambda h, item, p: hs.item_mark_not_applicable(item=item, by=p.manager, reason="No restore: stateless."),
        [(ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.NOT_APPLICABLE)],
    ),
    "item_add": (
        lambda h, item, p: hs.item_add(handover=h, by=p.manager, title="Second restore test", risk=Risk.FAILURE),
        [(ActivityVerb.ITEM_ADDED, "", ItemStatus.OPEN)],
    ),
}


@pytest.mark.parametrize("change", RESUMING_CHANGES)
def test_returned_handover_resumes_preparing_on_the_managers_next_change(change, returned_handover, people, records):
    action, rows = RESUMING_CHANGES[change]
    sent_back = item_of(returned_handover)
    with records(
        returned_handover,
        (people.manager, STATUS_CHANGED, RETURNED, PREPARING),
        *[(people.manager, *row) for row in rows],
    ):
        action(returned_handover, sent_back, people)
    returned_handover.refresh_from_db()
    assert returned_handover.status == PREPARING


def test_returned_handover_stays_returned_on_an_operations_change(returned_handover, people, records):
    item = item_of(returned_handover)
    with records(returned_handover, (people.owner, ActivityVerb.ITEM_UPDATED, "", "")):
        hs.item_update(item=item, by=people.owner, title="Restore tested against the RPO of 1 hour")
    returned_handover.refresh_from_db()
    assert returned_handover.status == RETURNED


# ============================================================================================= hypercare


@pytest.mark.parametrize("state", [ACCEPTED, CONDITIONAL])
@pytest.mark.parametrize("who", ["owner", "lead", "admin"])
def test_start_hypercare_after_acceptance(state, who, handover_in, people, records):
    handover, by = handover_in(state), getattr(people, who)
    with records(handover, (by, STATUS_CHANGED, state, HYPERCARE)) as moment:
        ends_on = today(21)
        hs.handover_start_hypercare(
            handover=handover, by=by, ends_on=ends_on, exit_criteria="  Under 5 P2 incidents a week.  "
        )
    handover.refresh_from_db()
    assert (handover.status, handover.hypercare_started_at, handover.hypercare_ends_on) == (HYPERCARE, moment, ends_on)
    assert handover.hypercare_exit_criteria == "Under 5 P2 incidents a week."


@pytest.mark.parametrize("who", ["manager", "member", "ops_member", "viewer"])
def test_start_hypercare_refused_for_anyone_but_owner_lead_or_admin(who, accepted_handover, people, refused):
    with refused(NotPermitted, rule="owner_only", watch=[accepted_handover]):
        hs.handover_start_hypercare(
            handover=accepted_handover, by=getattr(people, who), ends_on=today(21), exit_criteria="Stable."
        )


@pytest.mark.parametrize("state", [PREPARING, SUBMITTED, RETURNED, HYPERCARE, COMPLETED, CANCELLED])
def test_start_hypercare_refused_unless_accepted(state, handover_in, people, refused):
    handover = handover_in(state)
    with refused(IllegalTransition, rule="handover_transition", watch=[handover]):
        hs.handover_start_hypercare(handover=handover, by=people.owner, ends_on=today(21), exit_criteria="Stable.")


@pytest.mark.parametrize("criteria", ["", "   "])
def test_start_hypercare_refused_without_exit_criteria(criteria, accepted_handover, people, refused):
    with refused(InvalidInput, rule="exit_criteria_required", field="exit_criteria", watch=[accepted_handover]):
        hs.handover_start_hypercare(
            handover=accepted_handover, by=people.owner, ends_on=today(21), exit_criteria=criteria
        )


@pytest.mark.parametrize("days", [0, -1, None], ids=["today", "yesterday", "missing"])
def test_start_hypercare_refused_unless_it_ends_after_today(days, accepted_handover, people, refused):
    ends_on = None if days is None else today(days)
    with refused(InvalidInput, rule="hypercare_end_in_past", field="ends_on", watch=[accepted_handover]):
        hs.handover_start_hypercare(handover=accepted_handover, by=people.owner, ends_on=ends_on, exit_criteria="Ok.")


# ============================================================================================== complete


@pytest.mark.parametrize("who", ["owner", "lead", "admin"])
def test_complete_ends_hypercare(who, hypercare_handover, people, records):
    by = getattr(people, who)
    with records(hypercare_handover, (by, STATUS_CHANGED, HYPERCARE, COMPLETED)) as moment:
        hs.handover_complete(handover=hypercare_handover, by=by, note="Stable for three weeks.")
    hypercare_handover.refresh_from_db()
    assert (hypercare_handover.status, hypercare_handover.completed_at) == (COMPLETED, moment)


def test_complete_leaves_open_conditions_open(conditional_handover, people):
    handover = hs.handover_start_hypercare(
        handover=conditional_handover, by=people.owner, ends_on=today(10), exit_criteria="Stable."
    )
    hs.handover_complete(handover=handover, by=people.owner)
    assert list(Condition.objects.values_list("status", flat=True)) == [ConditionStatus.OPEN]


@pytest.mark.parametrize("who", ["manager", "member", "ops_member", "viewer"])
def test_complete_refused_for_anyone_but_owner_lead_or_admin(who, hypercare_handover, people, refused):
    with refused(NotPermitted, rule="owner_only", watch=[hypercare_handover]):
        hs.handover_complete(handover=hypercare_handover, by=getattr(people, who))


@pytest.mark.parametrize("state", [PREPARING, SUBMITTED, RETURNED, ACCEPTED, CONDITIONAL, COMPLETED, CANCELLED])
def test_complete_refused_outside_hypercare(state, handover_in, people, refused):
    handover = handover_in(state)
    with refused(IllegalTransition, rule="handover_transition", watch=[handover]):
        hs.handover_complete(handover=handover, by=people.owner)


# ================================================================================================ cancel


@pytest.mark.parametrize("state", [PREPARING, SUBMITTED, RETURNED])
@pytest.mark.parametrize("who", ["manager", "owner"])
def test_cancel_withdraws_the_handover_before_acceptance(state, who, handover_in, people, records):
    handover, by = handover_in(state), getattr(people, who)
    with records(handover, (by, STATUS_CHANGED, state, CANCELLED)):
        hs.handover_cancel(handover=handover, by=by, reason="  The project was re-scoped.  ")
    handover.refresh_from_db()
    assert (handover.status, handover.cancel_reason) == (CANCELLED, "The project was re-scoped.")
    handover.project.refresh_from_db()
    assert handover.project.has_handover_plan is False


@pytest.mark.parametrize("who", ["lead", "admin"])
def test_cancel_allowed_for_lead_and_admin(who, handover, people, records):
    by = getattr(people, who)
    with records(handover, (by, STATUS_CHANGED, PREPARING, CANCELLED)):
        assert hs.handover_cancel(handover=handover, by=by, reason="Duplicate.").status == CANCELLED


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"])
def test_cancel_refused_for_anyone_but_manager_or_owner(who, handover, people, refused):
    with refused(NotPermitted, rule="participant_only", watch=[handover]):
        hs.handover_cancel(handover=handover, by=getattr(people, who), reason="Not needed.")


@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_refused_without_a_reason(reason, handover, people, refused):
    with refused(InvalidInput, rule="reason_required", field="reason", watch=[handover]):
        hs.handover_cancel(handover=handover, by=people.manager, reason=reason)


@pytest.mark.parametrize("state", [ACCEPTED, CONDITIONAL, HYPERCARE, COMPLETED, CANCELLED])
@pytest.mark.parametrize("who", ["manager", "owner"])
def test_cancel_refused_after_acceptance(state, who, handover_in, people, refused):
    handover = handover_in(state)
    with refused(IllegalTransition, rule="handover_transition", watch=[handover]):
        hs.handover_cancel(handover=handover, by=getattr(people, who), reason="Too late.")


# ========================================================================================= item complete


@pytest.mark.parametrize("who", ["manager", "admin", "member"], ids=["manager", "admin", "assigned-member"])
def test_project_item_completed_by_manager_or_assigned_member(who, handover, people, records):
    item, by = item_of(handover), getattr(people, who)
    if who == "member":
        item = assign_to_member(item, people)
    with records(
        handover,
        (by, ActivityVerb.EVIDENCE_ADDED, "", "", item),
        (by, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.DONE, item),
    ) as moment:
        hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL, evidence_text="Restore took 20 minutes.")
    item.refresh_from_db()
    assert (item.status, item.done_by, item.done_at, item.status_changed_at) == (ItemStatus.DONE, by, moment, moment)
    evidence = Evidence.objects.get(item=item)
    assert (evidence.url, evidence.text, evidence.added_by, evidence.added_at) == (
        EVIDENCE_URL,
        "Restore took 20 minutes.",
        by,
        moment,
    )


@pytest.mark.parametrize("who", ["member", "owner", "lead", "ops_member", "viewer"], ids=lambda w: f"{w}-unassigned")
def test_project_item_refused_for_anyone_but_manager_or_assignee(who, handover, people, refused):
    item = item_of(handover)
    with refused(NotPermitted, rule="responsible_side_only", watch=[handover, item]):
        hs.item_complete(item=item, by=getattr(people, who), evidence_url=EVIDENCE_URL)


def test_project_item_refused_for_a_member_assigned_another_item(handover, people, refused):
    assign_to_member(item_of(handover, Risk.ADOPTION), people)
    item = item_of(handover, Risk.FAILURE)
    with refused(NotPermitted, rule="responsible_side_only", watch=[handover, item]):
        hs.item_complete(item=item, by=people.member, evidence_url=EVIDENCE_URL)


@pytest.mark.parametrize("who", ["owner", "lead", "ops_member", "admin"])
def test_operations_item_completed_by_the_operations_team(who, handover, people, records):
    item, by = item_of(handover, Risk.FAILURE, Side.OPERATIONS), getattr(people, who)
    with records(
        handover,
        (by, ActivityVerb.EVIDENCE_ADDED, "", "", item),
        (by, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.DONE, item),
    ):
        hs.item_complete(item=item, by=by, evidence_text="On-call rota published.")
    item.refresh_from_db()
    assert (item.status, item.done_by) == (ItemStatus.DONE, by)


@pytest.mark.parametrize("who", ["manager", "member", "viewer"])
def test_operations_item_refused_for_the_project_side(who, handover, people, refused):
    item = item_of(handover, Risk.FAILURE, Side.OPERATIONS)
    with refused(NotPermitted, rule="responsible_side_only", watch=[handover, item]):
        hs.item_complete(item=item, by=getattr(people, who), evidence_text="Done.")


@pytest.mark.parametrize(("url", "text"), [("", ""), ("  ", "   ")])
def test_complete_refused_without_evidence(url, text, handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="evidence_required", field="evidence", watch=[handover, item]):
        hs.item_complete(item=item, by=people.manager, evidence_url=url, evidence_text=text)


def test_complete_uses_evidence_already_attached(handover, people, records):
    item = item_of(handover)
    hs.evidence_add(item=item, by=people.manager, url=EVIDENCE_URL)
    with records(handover, (people.manager, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.DONE, item)):
        hs.item_complete(item=item, by=people.manager)
    assert Evidence.objects.filter(item=item).count() == 1


@pytest.mark.parametrize("status", [ItemStatus.DONE, ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE])
def test_complete_refused_unless_open(status, handover, people, refused):
    item = _item_in(status, handover, people)
    with refused(IllegalTransition, rule="item_transition", watch=[handover, item]):
        hs.item_complete(item=item, by=people.manager, evidence_url=EVIDENCE_URL)


def _item_in(status: str, handover, people, side: Side = Side.PROJECT):
    """The mandatory failure item of ``side`` brought to ``status`` through the services."""
    item = item_of(handover, Risk.FAILURE, side)
    if status in (ItemStatus.DONE, ItemStatus.VERIFIED):
        complete_items(handover, people, [item])
    if status == ItemStatus.VERIFIED:
        verify_items(handover, people, [item])
    if status == ItemStatus.WAIVED:
        hs.item_waive(item=item, by=people.manager, justification="Vendor runs it.")
    if status == ItemStatus.NOT_APPLICABLE:
        hs.item_mark_not_applicable(item=item, by=people.manager, reason="Nothing to restore.")
    item.refresh_from_db()
    assert item.status == status
    return item


# =========================================================================================== item verify


VERIFICATIONS = [
    # (side, who completes, who verifies)
    (Side.PROJECT, "manager", "owner"),
    (Side.PROJECT, "manager", "lead"),
    (Side.PROJECT, "manager", "admin"),
    (Side.OPERATIONS, "owner", "ops_member"),
    (Side.OPERATIONS, "ops_member", "owner"),
    (Side.OPERATIONS, "ops_member", "lead"),
]


@pytest.mark.parametrize(("side", "completer", "verifier"), VERIFICATIONS)
def test_verify_a_done_item(side, completer, verifier, handover, people, records):
    item, by = item_of(handover, Risk.FAILURE, side), getattr(people, verifier)
    hs.item_complete(item=item, by=getattr(people, completer), evidence_url=EVIDENCE_URL)
    with records(handover, (by, ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.VERIFIED, item)) as moment:
        hs.item_verify(item=item, by=by, note="Checked the restore log.")
    item.refresh_from_db()
    assert (item.status, item.verified_by, item.verified_at) == (ItemStatus.VERIFIED, by, moment)
    assert item.done_by == getattr(people, completer)


@pytest.mark.parametrize("who", ["ops_member", "manager", "member", "viewer"])
def test_verify_project_item_refused_for_anyone_but_owner_lead_or_admin(who, handover, people, refused):
    item = _item_in(ItemStatus.DONE, handover, people)
    with refused(NotPermitted, rule="operations_only", watch=[handover, item]):
        hs.item_verify(item=item, by=getattr(people, who))


@pytest.mark.parametrize("who", ["manager", "member", "viewer"])
def test_verify_operations_item_refused_for_the_project_side(who, handover, people, refused):
    item = _item_in(ItemStatus.DONE, handover, people, Side.OPERATIONS)
    with refused(NotPermitted, rule="operations_only", watch=[handover, item]):
        hs.item_verify(item=item, by=getattr(people, who))


@pytest.mark.parametrize(
    ("side", "who"),
    [(Side.OPERATIONS, "owner"), (Side.OPERATIONS, "ops_member"), (Side.OPERATIONS, "lead"), (Side.PROJECT, "admin")],
)
def test_verify_refused_for_whoever_completed_the_item(side, who, handover, people, refused):
    item, by = item_of(handover, Risk.FAILURE, side), getattr(people, who)
    hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL)
    with refused(NotPermitted, rule="four_eyes", watch=[handover, item]):
        hs.item_verify(item=item, by=by)


@pytest.mark.parametrize("status", [ItemStatus.OPEN, ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE])
def test_verify_refused_unless_done(status, handover, people, refused):
    item = _item_in(status, handover, people)
    with refused(IllegalTransition, rule="item_transition", watch=[handover, item]):
        hs.item_verify(item=item, by=people.lead)


# ======================================================================================== item send back


@pytest.mark.parametrize(
    ("side", "completer", "who"), [(Side.PROJECT, "manager", "owner"), (Side.OPERATIONS, "owner", "ops_member")]
)
def test_send_back_a_done_item(side, completer, who, handover, people, records):
    item, by = item_of(handover, Risk.FAILURE, side), getattr(people, who)
    hs.item_complete(item=item, by=getattr(people, completer), evidence_url=EVIDENCE_URL)
    with records(handover, (by, ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.OPEN, item)):
        hs.item_send_back(item=item, by=by, reason="  The runbook misses the failover steps.  ")
    item.refresh_from_db()
    assert (item.status, item.sent_back_reason) == (ItemStatus.OPEN, "The runbook misses the failover steps.")
    assert (item.done_by, item.done_at) == (None, None)
    assert handover.activity.last().message == "The runbook misses the failover steps."


@pytest.mark.parametrize("reason", ["", "   "])
def test_send_back_refused_without_a_reason(reason, handover, people, refused):
    item = _item_in(ItemStatus.DONE, handover, people)
    with refused(InvalidInput, rule="reason_required", field="reason", watch=[handover, item]):
        hs.item_send_back(item=item, by=people.owner, reason=reason)


@pytest.mark.parametrize("status", [ItemStatus.OPEN, ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE])
def test_send_back_refused_unless_done(status, handover, people, refused):
    item = _item_in(status, handover, people)
    with refused(IllegalTransition, rule="item_transition", watch=[handover, item]):
        hs.item_send_back(item=item, by=people.owner, reason="Again.")


@pytest.mark.parametrize("who", ["ops_member", "manager", "member", "viewer"])
def test_send_back_project_item_refused_for_anyone_but_owner_lead_or_admin(who, handover, people, refused):
    item = _item_in(ItemStatus.DONE, handover, people)
    with refused(NotPermitted, rule="operations_only", watch=[handover, item]):
        hs.item_send_back(item=item, by=getattr(people, who), reason="Again.")


# ============================================================================================ item waive


@pytest.mark.parametrize("who", ["owner", "lead", "admin"])
def test_waiver_by_the_operations_owner_is_approved_at_once(who, handover, people, records):
    item, by = item_of(handover), getattr(people, who)
    with records(handover, (by, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.WAIVED, item)) as moment:
        hs.item_waive(item=item, by=by, justification="  The vendor runs restores monthly.  ")
    item.refresh_from_db()
    assert item.status == ItemStatus.WAIVED
    assert item.waiver_justification == "The vendor runs restores monthly."
    assert (item.waiver_requested_by, item.waiver_approved_by, item.waiver_approved_at) == (by, by, moment)
    assert item.waiver_approved is True


def test_waiver_by_the_manager_waits_for_the_owners_approval(handover, people, records):
    item = item_of(handover)
    with records(handover, (people.manager, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.WAIVED, item)):
        hs.item_waive(item=item, by=people.manager, justification="The vendor runs restores monthly.")
    item.refresh_from_db()
    assert (item.status, item.waiver_requested_by, item.waiver_approved_by) == (
        ItemStatus.WAIVED,
        people.manager,
        None,
    )
    assert item.waiver_approved is False
    version = item.version

    with records(handover, (people.owner, ActivityVerb.WAIVER_APPROVED, "", "", item)) as moment:
        hs.item_approve_waiver(item=item, by=people.owner)
    item.refresh_from_db()
    assert (item.status, item.waiver_approved_by, item.waiver_approved_at) == (ItemStatus.WAIVED, people.owner, moment)
    assert item.version == version + 1


@pytest.mark.parametrize("who", ["manager", "member", "ops_member", "viewer"])
def test_approve_waiver_refused_for_anyone_but_owner_lead_or_admin(who, handover, people, refused):
    item = _item_in(ItemStatus.WAIVED, handover, people)
    with refused(NotPermitted, rule="owner_only", watch=[handover, item]):
        hs.item_approve_waiver(item=item, by=getattr(people, who))


@pytest.mark.parametrize("state", ["approved", ItemStatus.OPEN, ItemStatus.DONE])
def test_approve_waiver_refused_unless_a_waiver_is_pending(state, handover, people, refused):
    item = item_of(handover)
    if state == "approved":
        hs.item_waive(item=item, by=people.owner, justification="Vendor runs it.")
    elif state == ItemStatus.DONE:
        complete_items(handover, people, [item])
    with refused(IllegalTransition, rule="waiver_not_pending", watch=[handover, item]):
        hs.item_approve_waiver(item=item, by=people.lead)


@pytest.mark.parametrize("justification", ["", "   "])
@pytest.mark.parametrize("who", ["manager", "owner"])
def test_waive_refused_without_a_justification(who, justification, handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="justification_required", field="justification", watch=[handover, item]):
        hs.item_waive(item=item, by=getattr(people, who), justification=justification)


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"])
def test_waive_refused_for_anyone_but_manager_or_owner(who, handover, people, refused):
    item = item_of(handover)
    with refused(NotPermitted, rule="participant_only", watch=[handover, item]):
        hs.item_waive(item=item, by=getattr(people, who), justification="Not needed.")


@pytest.mark.parametrize("status", [ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE])
def test_waive_refused_for_a_settled_item(status, handover, people, refused):
    item = _item_in(status, handover, people)
    with refused(IllegalTransition, rule="item_transition", watch=[handover, item]):
        hs.item_waive(item=item, by=people.owner, justification="Not needed.")


def test_waive_a_done_item(handover, people, records):
    item = _item_in(ItemStatus.DONE, handover, people)
    with records(handover, (people.owner, ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.WAIVED, item)):
        hs.item_waive(item=item, by=people.owner, justification="Evidence is enough; no test needed.")


# =================================================================================== item not applicable


@pytest.mark.parametrize("who", ["manager", "owner"])
def test_mark_not_applicable_with_a_reason(who, handover, people, records):
    item, by = item_of(handover, Risk.ADOPTION), getattr(people, who)
    with records(handover, (by, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.NOT_APPLICABLE, item)):
        hs.item_mark_not_applicable(item=item, by=by, reason="  Back-office only: no end users.  ")
    item.refresh_from_db()
    assert (item.status, item.not_applicable_reason) == (ItemStatus.NOT_APPLICABLE, "Back-office only: no end users.")


@pytest.mark.parametrize("reason", ["", "   "])
def test_mark_not_applicable_refused_without_a_reason(reason, handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="reason_required", field="reason", watch=[handover, item]):
        hs.item_mark_not_applicable(item=item, by=people.manager, reason=reason)


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"])
def test_mark_not_applicable_refused_for_anyone_but_manager_or_owner(who, handover, people, refused):
    item = item_of(handover)
    with refused(NotPermitted, rule="participant_only", watch=[handover, item]):
        hs.item_mark_not_applicable(item=item, by=getattr(people, who), reason="Not needed.")


@pytest.mark.parametrize("status", [ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE])
def test_mark_not_applicable_refused_for_a_settled_item(status, handover, people, refused):
    item = _item_in(status, handover, people)
    with refused(IllegalTransition, rule="item_transition", watch=[handover, item]):
        hs.item_mark_not_applicable(item=item, by=people.owner, reason="Not needed.")


# =========================================================================================== item reopen


@pytest.mark.parametrize("status", [ItemStatus.DONE, ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE])
def test_owner_reopens_any_item(status, handover, people, records):
    item = _item_in(status, handover, people)
    with records(handover, (people.owner, ITEM_STATUS_CHANGED, status, ItemStatus.OPEN, item)):
        hs.item_reopen(item=item, by=people.owner, reason="Needs another look.")
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN
    assert (item.done_by, item.verified_by, item.waiver_requested_by, item.waiver_approved_by) == (None,) * 4
    assert (item.waiver_justification, item.not_applicable_reason) == ("", "")


@pytest.mark.parametrize(
    ("status", "who"),
    [
        (ItemStatus.DONE, "manager"),
        (ItemStatus.DONE, "member"),
        (ItemStatus.WAIVED, "manager"),
        (ItemStatus.NOT_APPLICABLE, "manager"),
    ],
    ids=["done-by-manager", "done-by-assigned-member", "waiver-pending", "not-applicable"],
)
def test_project_side_takes_back_its_own_item(status, who, handover, people, records):
    item, by = item_of(handover), getattr(people, who)
    if who == "member":
        item = assign_to_member(item, people)
        hs.item_complete(item=item, by=people.member, evidence_url=EVIDENCE_URL)
    else:
        item = _item_in(status, handover, people)
    with records(handover, (by, ITEM_STATUS_CHANGED, status, ItemStatus.OPEN, item)):
        hs.item_reopen(item=item, by=by)
    item.refresh_from_db()
    assert item.status == ItemStatus.OPEN


def test_project_side_cannot_undo_a_verification(handover, people, refused):
    item = _item_in(ItemStatus.VERIFIED, handover, people)
    with refused(NotPermitted, rule="owner_only", watch=[handover, item]):
        hs.item_reopen(item=item, by=people.manager)


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"], ids=["unassigned-member", "ops_member", "viewer"])
def test_reopen_refused_for_anyone_but_owner_or_the_project_side(who, handover, people, refused):
    item = _item_in(ItemStatus.DONE, handover, people)
    with refused(NotPermitted, rule="participant_only", watch=[handover, item]):
        hs.item_reopen(item=item, by=getattr(people, who))


@pytest.mark.parametrize("status", [ItemStatus.DONE, ItemStatus.VERIFIED])
@pytest.mark.parametrize("reason", ["", "   "])
def test_owner_reopening_done_work_needs_a_reason(status, reason, handover, people, refused):
    """Reopening done work is sending it back (DOMAIN: done → open with a reason); undoing a verification too."""
    item = _item_in(status, handover, people)
    with refused(InvalidInput, rule="reason_required", field="reason", watch=[handover, item]):
        hs.item_reopen(item=item, by=people.owner, reason=reason)


def test_owner_reopening_done_work_records_the_reason_as_sent_back(handover, people):
    item = _item_in(ItemStatus.DONE, handover, people)
    hs.item_reopen(item=item, by=people.owner, reason="The link is to the old wiki.")
    item.refresh_from_db()
    assert (item.status, item.sent_back_reason) == (ItemStatus.OPEN, "The link is to the old wiki.")


def test_operations_team_takes_back_its_own_item_without_touching_a_returned_handover(
    returned_handover, people, records
):
    """GIVEN a returned handover whose operations-side item an operations member completed
    WHEN that member takes the item back THEN the item is open and the handover stays returned: only the
    project side's change resumes preparing."""
    item = item_of(returned_handover, Risk.FAILURE, Side.OPERATIONS)
    hs.item_reopen(item=item, by=people.owner, reason="Redo with the new rota.")
    hs.item_complete(item=item, by=people.ops_member, evidence_text="Rota v2.")
    with records(returned_handover, (people.ops_member, ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.OPEN, item)):
        hs.item_reopen(item=item, by=people.ops_member)
    returned_handover.refresh_from_db()
    assert returned_handover.status == RETURNED


def test_manager_cannot_take_back_operations_work(handover, people, refused):
    item = _item_in(ItemStatus.DONE, handover, people, side=Side.OPERATIONS)
    with refused(NotPermitted, rule="participant_only", watch=[handover, item]):
        hs.item_reopen(item=item, by=people.manager)


def test_reopen_refused_for_an_open_item(handover, people, refused):
    item = item_of(handover)
    with refused(IllegalTransition, rule="item_transition", watch=[handover, item]):
        hs.item_reopen(item=item, by=people.owner)


# =========================================================================================== item update


@pytest.mark.parametrize("who", ["manager", "owner"])
def test_item_update_plans_assignee_due_date_and_guidance(who, handover, people, records):
    item, by = item_of(handover), getattr(people, who)
    with records(handover, (by, ActivityVerb.ITEM_UPDATED, "", "", item)):
        due = today(9)
        hs.item_update(item=item, by=by, assignee=people.member, due_date=due, guidance="Use the DR runbook.")
    item.refresh_from_db()
    assert (item.assignee, item.due_date, item.guidance) == (people.member, due, "Use the DR runbook.")
    assert set(handover.activity.last().data["changes"]) == {"assignee", "due_date", "guidance"}


OWNER_ONLY_CHANGES = {
    "title": "Restore tested against the RPO",
    "mandatory": False,
    "risk": Risk.ADOPTION,
    "side": Side.OPERATIONS,
}


@pytest.mark.parametrize("field", OWNER_ONLY_CHANGES)
def test_item_update_of_what_operations_accepts_is_owner_only(field, handover, people, refused, records):
    item = item_of(handover)
    change = {field: OWNER_ONLY_CHANGES[field]}
    with refused(NotPermitted, rule="owner_only", watch=[handover, item]):
        hs.item_update(item=item, by=people.manager, **change)
    with records(handover, (people.owner, ActivityVerb.ITEM_UPDATED, "", "", item)):
        hs.item_update(item=item, by=people.owner, **change)
    item.refresh_from_db()
    assert getattr(item, field) == OWNER_ONLY_CHANGES[field]


def test_item_update_refused_for_an_assignee_outside_the_handover(handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="assignee_not_participant", field="assignee", watch=[handover, item]):
        hs.item_update(item=item, by=people.manager, assignee=people.viewer)


def test_item_add_refused_for_an_assignee_outside_the_handover(handover, people, refused):
    with refused(InvalidInput, rule="assignee_not_participant", field="assignee", watch=[handover]):
        hs.item_add(handover=handover, by=people.manager, title="Runbook", risk=Risk.FAILURE, assignee=people.viewer)


def test_a_return_costs_the_same_queries_however_many_items_it_sends_back(handover, people, drive_to_submitted):
    """GIVEN a webhook subscriber (so every item sent back is also an ``item.updated`` event) WHEN operations
    returns the handover sending back one item, and later eight THEN both returns send the same statements, and
    each item sent back still has its activity entry and its event."""
    WebhookSubscription.objects.create(owner=people.admin, url="https://hooks.example.com/in", secret="s" * 32)
    for n in range(5):  # with the template's three, eight project-side items
        hs.item_add(handover=handover, by=people.manager, title=f"Extra {n}", risk=Risk.ADOPTION)
    drive_to_submitted(handover)
    done = list(handover.items.filter(mandatory=True, side=Side.PROJECT).order_by("position"))
    assert len(done) == 8

    def send_back(items) -> int:
        with CaptureQueriesContext(connection) as captured:
            hs.handover_return(
                handover=Handover.objects.get(pk=handover.pk), by=people.owner, reason="Not yet.", items=items
            )
        return len(captured.captured_queries)

    one = send_back(done[:1])
    complete_items(handover, people, done[:1])
    hs.handover_submit(handover=Handover.objects.get(pk=handover.pk), by=people.manager)
    eight = send_back(done)

    assert eight == one
    moved = Activity.objects.filter(handover=handover, verb=ActivityVerb.ITEM_STATUS_CHANGED, to_state=ItemStatus.OPEN)
    assert moved.count() == 1 + 8
    events = Event.objects.filter(handover=handover, type=EventType.ITEM_UPDATED, payload__data__change__to="open")
    assert events.count() == 1 + 8
    assert set(handover.items.filter(pk__in=[i.pk for i in done]).values_list("status", "sent_back_reason")) == {
        (ItemStatus.OPEN, "Not yet.")
    }


def test_item_update_refused_for_a_protected_field(handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="field_not_editable", field="status", watch=[handover, item]):
        hs.item_update(item=item, by=people.owner, status=ItemStatus.VERIFIED)


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"])
def test_item_update_refused_for_anyone_but_manager_or_owner(who, handover, people, refused):
    item = item_of(handover)
    with refused(NotPermitted, rule="participant_only", watch=[handover, item]):
        hs.item_update(item=item, by=getattr(people, who), due_date=today(3))


# ============================================================================================== item add


@pytest.mark.parametrize("who", ["manager", "owner"])
def test_item_add_appends_an_open_item(who, handover, people, records):
    by = getattr(people, who)
    with records(handover, (by, ActivityVerb.ITEM_ADDED, "", ItemStatus.OPEN)):
        item = hs.item_add(
            handover=handover, by=by, title="Mail gateway failover tested", risk=Risk.FAILURE, side=Side.OPERATIONS
        )
    item.refresh_from_db()
    assert (item.handover, item.status, item.mandatory, item.risk, item.side) == (
        handover,
        ItemStatus.OPEN,
        True,
        Risk.FAILURE,
        Side.OPERATIONS,
    )
    assert item.position == 100  # after the optional item at 99
    assert handover.activity.last().item == item


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"])
def test_item_add_refused_for_anyone_but_manager_or_owner(who, handover, people, refused):
    with refused(NotPermitted, rule="participant_only", watch=[handover]):
        hs.item_add(handover=handover, by=getattr(people, who), title="Extra", risk=Risk.FAILURE)


def test_item_add_refused_for_an_unknown_risk(handover, people, refused):
    with refused(InvalidInput, rule="invalid_choice", field="risk", watch=[handover]):
        hs.item_add(handover=handover, by=people.manager, title="Extra", risk="boredom")


def test_item_add_refused_without_a_title(handover, people, refused):
    with refused(InvalidInput, rule="invalid_field", field="title", watch=[handover]):
        hs.item_add(handover=handover, by=people.manager, title="   ", risk=Risk.FAILURE)


# ========================================================================================== evidence add


EVIDENCE_ADDERS = [
    (Side.PROJECT, "manager"),
    (Side.PROJECT, "member"),  # assigned
    (Side.PROJECT, "owner"),
    (Side.OPERATIONS, "ops_member"),
    (Side.OPERATIONS, "lead"),
]


@pytest.mark.parametrize(("side", "who"), EVIDENCE_ADDERS)
def test_evidence_added_by_those_who_work_or_verify_the_item(side, who, handover, people, records):
    item, by = item_of(handover, Risk.FAILURE, side), getattr(people, who)
    if who == "member":
        item = assign_to_member(item, people)
    with records(handover, (by, ActivityVerb.EVIDENCE_ADDED, "", "", item)) as moment:
        evidence = hs.evidence_add(item=item, by=by, url=EVIDENCE_URL, text="Restore log")
    evidence.refresh_from_db()
    assert (evidence.item, evidence.url, evidence.text, evidence.added_by, evidence.added_at) == (
        item,
        EVIDENCE_URL,
        "Restore log",
        by,
        moment,
    )


EVIDENCE_REFUSED = [
    (Side.PROJECT, "member"),  # not assigned
    (Side.PROJECT, "ops_member"),
    (Side.PROJECT, "viewer"),
    (Side.OPERATIONS, "manager"),
    (Side.OPERATIONS, "member"),
]


@pytest.mark.parametrize(("side", "who"), EVIDENCE_REFUSED)
def test_evidence_add_refused_for_anyone_else(side, who, handover, people, refused):
    item = item_of(handover, Risk.FAILURE, side)
    with refused(NotPermitted, rule="participant_only", watch=[handover, item]):
        hs.evidence_add(item=item, by=getattr(people, who), url=EVIDENCE_URL)


def test_evidence_add_refused_when_empty(handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="evidence_required", watch=[handover, item]):
        hs.evidence_add(item=item, by=people.manager, url=" ", text="  ")


def test_evidence_add_refused_for_a_malformed_link(handover, people, refused):
    item = item_of(handover)
    with refused(InvalidInput, rule="invalid_field", field="url", watch=[handover, item]):
        hs.evidence_add(item=item, by=people.manager, url="not a link")


# =========================================================================================== comment add


@pytest.mark.parametrize("who", ["manager", "member", "owner", "lead", "ops_member", "admin"])
def test_participants_comment(who, handover, people, records):
    by = getattr(people, who)
    with records(handover, (by, ActivityVerb.COMMENTED, "", "", None)) as moment:
        comment = hs.comment_add(handover=handover, by=by, body="  Who owns the licence renewal?  ")
    comment.refresh_from_db()
    assert (comment.handover, comment.item, comment.author, comment.body, comment.created_at) == (
        handover,
        None,
        by,
        "Who owns the licence renewal?",
        moment,
    )


def test_comment_on_an_item(handover, people, records):
    item = item_of(handover)
    with records(handover, (people.ops_member, ActivityVerb.COMMENTED, "", "", item)):
        comment = hs.comment_add(handover=handover, item=item, by=people.ops_member, body="Which backup tool?")
    assert comment.item == item


@pytest.mark.parametrize("state", [SUBMITTED, ACCEPTED, COMPLETED, CANCELLED])
def test_comments_are_welcome_in_any_state(state, handover_in, people, records):
    handover = handover_in(state)
    with records(handover, (people.member, ActivityVerb.COMMENTED, "", "")):
        hs.comment_add(handover=handover, by=people.member, body="Thanks, all.")


def test_comment_refused_for_a_viewer(handover, people, refused):
    with refused(NotPermitted, rule="participant_only", watch=[handover]):
        hs.comment_add(handover=handover, by=people.viewer, body="Looks late.")


def test_comment_refused_on_an_item_of_another_handover(handover, other_handover, people, refused):
    with refused(InvalidInput, rule="item_not_in_handover", field="item", watch=[handover]):
        hs.comment_add(handover=handover, item=item_of(other_handover), by=people.manager, body="Wrong place.")


@pytest.mark.parametrize("body", ["", "   "])
def test_comment_refused_without_a_body(body, handover, people, refused):
    with refused(InvalidInput, rule="body_required", field="body", watch=[handover]):
        hs.comment_add(handover=handover, by=people.manager, body=body)
    assert not Comment.objects.exists()


# =================================================================================== condition mark met


@pytest.mark.parametrize("who", ["ops_member", "owner", "lead"], ids=["condition-owner", "owner", "lead"])
def test_condition_marked_met(who, conditional_handover, people, records):
    condition, by = Condition.objects.get(), getattr(people, who)
    with records(
        conditional_handover, (by, ActivityVerb.CONDITION_MET, ConditionStatus.OPEN, ConditionStatus.MET)
    ) as moment:
        hs.condition_mark_met(condition=condition, by=by, note="  Drill held on the 3rd.  ")
    condition.refresh_from_db()
    assert (condition.status, condition.met_by, condition.met_at, condition.met_note) == (
        ConditionStatus.MET,
        by,
        moment,
        "Drill held on the 3rd.",
    )


@pytest.mark.parametrize("who", ["manager", "member", "viewer"])
def test_condition_mark_met_refused_for_anyone_but_its_owner_or_the_operations_owner(
    who, conditional_handover, people, refused
):
    with refused(NotPermitted, rule="condition_owner_only", watch=[conditional_handover]):
        hs.condition_mark_met(condition=Condition.objects.get(), by=getattr(people, who))


def test_condition_mark_met_refused_when_already_met(conditional_handover, people, refused):
    condition = Condition.objects.get()
    hs.condition_mark_met(condition=condition, by=people.ops_member)
    with refused(IllegalTransition, rule="condition_met", watch=[conditional_handover]):
        hs.condition_mark_met(condition=condition, by=people.owner)


# ============================================================================ while submitted / accepted


@pytest.fixture
def busy_submitted(handover, people, drive_to_submitted) -> SimpleNamespace:
    """Submitted, every mandatory item verified, the optional item done by the manager, and an open optional
    project-side item, an open and a done operations-side item that operations added after submission."""
    handover = drive_to_submitted(handover, optional_done=True)
    open_project = hs.item_add(
        handover=handover, by=people.owner, title="Floor walkers briefed", risk=Risk.ADOPTION, mandatory=False
    )
    open_operations = hs.item_add(
        handover=handover,
        by=people.owner,
        title="Night shift shadowed",
        risk=Risk.INEFFICIENCY,
        side=Side.OPERATIONS,
        mandatory=False,
    )
    done_operations = hs.item_add(
        handover=handover,
        by=people.owner,
        title="Spare parts stocked",
        risk=Risk.FAILURE,
        side=Side.OPERATIONS,
        mandatory=False,
    )
    done_operations = hs.item_complete(item=done_operations, by=people.ops_member, evidence_text="Shelf B3.")
    handover.refresh_from_db()
    return SimpleNamespace(
        handover=handover,
        open_item=open_project,
        open_operations_item=open_operations,
        done_item=optional_item(handover),
        verified_item=item_of(handover),
        done_operations_item=done_operations,
    )


PROJECT_SIDE_CHANGES = {
    "item_complete": lambda s, p: hs.item_complete(item=s.open_item, by=p.manager, evidence_text="Held."),
    "item_waive": lambda s, p: hs.item_waive(item=s.open_item, by=p.manager, justification="Not needed."),
    "item_mark_not_applicable": lambda s, p: hs.item_mark_not_applicable(item=s.open_item, by=p.manager, reason="No."),
    "item_reopen": lambda s, p: hs.item_reopen(item=s.done_item, by=p.manager, reason="Redo."),
    "item_update": lambda s, p: hs.item_update(item=s.open_item, by=p.manager, due_date=today(3)),
    "item_add": lambda s, p: hs.item_add(handover=s.handover, by=p.manager, title="Extra", risk=Risk.FAILURE),
    "handover_update": lambda s, p: hs.handover_update(handover=s.handover, by=p.manager, deliverables="More."),
    "evidence_add": lambda s, p: hs.evidence_add(item=s.done_item, by=p.manager, url=EVIDENCE_URL),
}


@pytest.mark.parametrize("change", PROJECT_SIDE_CHANGES)
def test_project_side_waits_while_submitted(change, busy_submitted, people, refused):
    s = busy_submitted
    with refused(IllegalTransition, rule="awaiting_decision", watch=[s.handover, s.open_item, s.done_item]):
        PROJECT_SIDE_CHANGES[change](s, people)


OPERATIONS_SIDE_CHANGES = {
    "item_complete": (
        lambda s, p: hs.item_complete(item=s.open_operations_item, by=p.ops_member, evidence_text="Shadowed."),
        ("ops_member", ActivityVerb.EVIDENCE_ADDED, "", ""),
    ),
    "item_verify": (
        lambda s, p: hs.item_verify(item=s.done_item, by=p.owner),
        ("owner", ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.VERIFIED),
    ),
    "item_send_back": (
        lambda s, p: hs.item_send_back(item=s.done_item, by=p.owner, reason="Wrong link."),
        ("owner", ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.OPEN),
    ),
    "item_waive": (
        lambda s, p: hs.item_waive(item=s.open_item, by=p.owner, justification="Not needed."),
        ("owner", ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.WAIVED),
    ),
    "item_mark_not_applicable": (
        lambda s, p: hs.item_mark_not_applicable(item=s.open_item, by=p.owner, reason="No floor."),
        ("owner", ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.NOT_APPLICABLE),
    ),
    "item_reopen": (
        lambda s, p: hs.item_reopen(item=s.verified_item, by=p.owner, reason="Re-check."),
        ("owner", ITEM_STATUS_CHANGED, ItemStatus.VERIFIED, ItemStatus.OPEN),
    ),
    "item_update": (
        lambda s, p: hs.item_update(item=s.open_item, by=p.owner, title="Floor walkers trained"),
        ("owner", ActivityVerb.ITEM_UPDATED, "", ""),
    ),
    "item_add": (
        lambda s, p: hs.item_add(handover=s.handover, by=p.owner, title="Extra", risk=Risk.FAILURE),
        ("owner", ActivityVerb.ITEM_ADDED, "", ItemStatus.OPEN),
    ),
    "evidence_add": (
        lambda s, p: hs.evidence_add(item=s.done_item, by=p.owner, text="Walked through it with tier 2."),
        ("owner", ActivityVerb.EVIDENCE_ADDED, "", ""),
    ),
    "ops_member_takes_back_its_item": (
        lambda s, p: hs.item_reopen(item=s.done_operations_item, by=p.ops_member),
        ("ops_member", ITEM_STATUS_CHANGED, ItemStatus.DONE, ItemStatus.OPEN),
    ),
}


@pytest.mark.parametrize("change", OPERATIONS_SIDE_CHANGES)
def test_operations_side_works_while_submitted(change, busy_submitted, people, records):
    s = busy_submitted
    action, (who, *first_row) = OPERATIONS_SIDE_CHANGES[change]
    expected = [(getattr(people, who), *first_row)]
    if change == "item_complete":
        expected.append((people.ops_member, ITEM_STATUS_CHANGED, ItemStatus.OPEN, ItemStatus.DONE))
    with records(s.handover, *expected):
        action(s, people)
    s.handover.refresh_from_db()
    assert s.handover.status == SUBMITTED


@pytest.fixture(params=ACCEPTED_STATES)
def frozen(request, busy_submitted, people) -> SimpleNamespace:
    """``busy_submitted`` accepted (with or without conditions), then taken to hypercare and completion."""
    s, owner = busy_submitted, people.owner
    if request.param == CONDITIONAL:
        condition = {"text": "Drill.", "owner": people.ops_member, "due_date": today(7)}
        handover = hs.handover_accept_with_conditions(handover=s.handover, by=owner, conditions=[condition])
    else:
        handover = hs.handover_accept(handover=s.handover, by=owner)
    if request.param in (HYPERCARE, COMPLETED):
        handover = hs.handover_start_hypercare(handover=handover, by=owner, ends_on=today(9), exit_criteria="Calm.")
    if request.param == COMPLETED:
        handover = hs.handover_complete(handover=handover, by=owner)
    handover.refresh_from_db()
    assert handover.status == request.param
    s.handover = handover
    return s


CHECKLIST_CHANGES = {
    "manager-completes": lambda s, p: hs.item_complete(item=s.open_item, by=p.manager, evidence_text="Held."),
    "ops-completes": lambda s, p: hs.item_complete(item=s.open_operations_item, by=p.ops_member, evidence_text="Ok."),
    "owner-verifies": lambda s, p: hs.item_verify(item=s.done_item, by=p.owner),
    "owner-sends-back": lambda s, p: hs.item_send_back(item=s.done_item, by=p.owner, reason="Wrong."),
    "owner-waives": lambda s, p: hs.item_waive(item=s.open_item, by=p.owner, justification="Later."),
    "manager-waives": lambda s, p: hs.item_waive(item=s.open_item, by=p.manager, justification="Later."),
    "owner-not-applicable": lambda s, p: hs.item_mark_not_applicable(item=s.open_item, by=p.owner, reason="No."),
    "manager-not-applicable": lambda s, p: hs.item_mark_not_applicable(item=s.open_item, by=p.manager, reason="No."),
    "owner-reopens": lambda s, p: hs.item_reopen(item=s.verified_item, by=p.owner, reason="Re-check."),
    "manager-reopens": lambda s, p: hs.item_reopen(item=s.done_item, by=p.manager, reason="Redo."),
    "owner-updates-item": lambda s, p: hs.item_update(item=s.open_item, by=p.owner, title="Renamed"),
    "manager-updates-item": lambda s, p: hs.item_update(item=s.open_item, by=p.manager, due_date=today(3)),
    "owner-adds-item": lambda s, p: hs.item_add(handover=s.handover, by=p.owner, title="Extra", risk=Risk.FAILURE),
    "manager-adds-item": lambda s, p: hs.item_add(handover=s.handover, by=p.manager, title="X", risk=Risk.FAILURE),
    "manager-adds-evidence": lambda s, p: hs.evidence_add(item=s.done_item, by=p.manager, url=EVIDENCE_URL),
    "manager-edits-plan": lambda s, p: hs.handover_update(handover=s.handover, by=p.manager, deliverables="More."),
}


@pytest.mark.parametrize("change", CHECKLIST_CHANGES)
def test_checklist_is_frozen_after_acceptance(change, frozen, people, refused):
    s = frozen
    watch = [s.handover, s.open_item, s.open_operations_item, s.done_item, s.verified_item]
    with refused(IllegalTransition, rule="handover_closed_for_changes", watch=watch):
        CHECKLIST_CHANGES[change](s, people)


# ===================================================================================== plan edits (update)


@pytest.mark.parametrize("who", ["manager", "owner"])
def test_plan_edit_records_what_changed(who, handover, people, records):
    by, before, target = getattr(people, who), handover.target_date, today(45)
    with records(handover, (by, ActivityVerb.UPDATED, "", "")):
        hs.handover_update(handover=handover, by=by, target_date=target, deliverables="CRM and the mail gateway.")
    handover.refresh_from_db()
    assert (handover.target_date, handover.deliverables) == (target, "CRM and the mail gateway.")
    changes = handover.activity.get(verb=ActivityVerb.UPDATED).data["changes"]
    assert changes["target_date"] == [before.isoformat(), target.isoformat()]


@pytest.mark.parametrize("who", ["member", "ops_member", "viewer"])
def test_plan_edit_refused_for_anyone_but_manager_or_owner(who, handover, people, refused):
    with refused(NotPermitted, rule="participant_only", watch=[handover]):
        hs.handover_update(handover=handover, by=getattr(people, who), deliverables="Mine now.")


@pytest.mark.parametrize("new_owner", [None, "viewer"], ids=["no-one", "outside-the-team"])
def test_plan_edit_refused_for_an_owner_outside_the_team(new_owner, handover, people, refused):
    owner = getattr(people, new_owner) if new_owner else None
    with refused(InvalidInput, rule="owner_not_in_team", field="operations_owner", watch=[handover]):
        hs.handover_update(handover=handover, by=people.manager, operations_owner=owner)


def test_plan_edit_refused_for_a_blank_target_date(handover, people, refused):
    with refused(InvalidInput, rule="target_date_required", field="target_date", watch=[handover]):
        hs.handover_update(handover=handover, by=people.manager, target_date=None)


def test_the_manager_cannot_be_the_operations_owner(planning_project, people, team, template, refused):
    """Two-sided sign-off: a manager who also sits in the receiving team still cannot accept their own work."""
    team.members.add(people.manager)
    with refused(InvalidInput, rule="owner_is_manager", field="operations_owner"):
        hs.handover_create(
            project=planning_project,
            template=template,
            operations_owner=people.manager,
            target_date=today(30),
            by=people.manager,
        )


def test_plan_edit_refused_when_the_manager_is_named_owner(handover, people, team, refused):
    team.members.add(people.manager)
    with refused(InvalidInput, rule="owner_is_manager", field="operations_owner", watch=[handover]):
        hs.handover_update(handover=handover, by=people.owner, operations_owner=people.manager)


def test_hypercare_window_moves_during_hypercare(hypercare_handover, people, records):
    ends_on = today(60)
    with records(hypercare_handover, (people.owner, ActivityVerb.UPDATED, "", "")):
        hs.handover_update(
            handover=hypercare_handover,
            by=people.owner,
            hypercare_ends_on=ends_on,
            hypercare_exit_criteria="  Two quiet weeks.  ",
        )
    hypercare_handover.refresh_from_db()
    assert (hypercare_handover.hypercare_ends_on, hypercare_handover.hypercare_exit_criteria) == (
        ends_on,
        "Two quiet weeks.",
    )


@pytest.mark.parametrize(
    ("change", "rule", "field"),
    [
        ({"hypercare_ends_on": None}, "hypercare_end_in_past", "hypercare_ends_on"),
        ({"hypercare_ends_on": "today"}, "hypercare_end_in_past", "hypercare_ends_on"),
        ({"hypercare_ends_on": "yesterday"}, "hypercare_end_in_past", "hypercare_ends_on"),
        ({"hypercare_exit_criteria": ""}, "exit_criteria_required", "exit_criteria"),
        ({"hypercare_exit_criteria": "  "}, "exit_criteria_required", "exit_criteria"),
    ],
    ids=["no-end", "ends-today", "ended-yesterday", "no-criteria", "blank-criteria"],
)
def test_hypercare_window_keeps_an_end_after_today_and_exit_criteria(
    change, rule, field, hypercare_handover, people, refused
):
    days = {"today": 0, "yesterday": -1}
    change = {k: today(days[v]) if v in days else v for k, v in change.items()}
    with refused(InvalidInput, rule=rule, field=field, watch=[hypercare_handover]):
        hs.handover_update(handover=hypercare_handover, by=people.owner, **change)


def test_hypercare_window_is_the_operations_owners(hypercare_handover, people, refused):
    with refused(NotPermitted, rule="owner_only", watch=[hypercare_handover]):
        hs.handover_update(handover=hypercare_handover, by=people.manager, hypercare_ends_on=today(60))


# ============================================================================== people leave, projects end


def test_an_owner_who_left_the_team_no_longer_decides(submitted_handover, people, team, refused):
    """GIVEN a submitted handover WHEN its operations owner leaves the receiving team THEN they may not decide
    it any more; the lead still may."""
    from operations import services as ops

    ops.team_remove_member(team=team, by=people.lead, user=people.owner)
    with refused(NotPermitted, rule="owner_only", watch=[submitted_handover]):
        hs.handover_accept(handover=submitted_handover, by=people.owner)
    assert hs.handover_accept(handover=submitted_handover, by=people.lead).status == ACCEPTED


OPEN_HANDOVER_MOVES = {
    "submit": ("handover", lambda h, p: hs.handover_submit(handover=h, by=p.manager)),
    "accept": ("submitted_handover", lambda h, p: hs.handover_accept(handover=h, by=p.owner)),
    "return": ("submitted_handover", lambda h, p: hs.handover_return(handover=h, by=p.owner, reason="No.")),
    "complete-item": (
        "handover",
        lambda h, p: hs.item_complete(item=item_of(h), by=p.manager, evidence_url=EVIDENCE_URL),
    ),
    "verify-item": ("handover", lambda h, p: hs.item_verify(item=item_of(h), by=p.owner)),
}


@pytest.mark.parametrize("stage", [Stage.CLOSED, Stage.CANCELLED])
@pytest.mark.parametrize("move", OPEN_HANDOVER_MOVES)
def test_an_open_handover_of_a_final_project_is_frozen(move, stage, request, people, refused):
    """The lifecycle never leaves an open handover on a closed or cancelled project (the gates refuse it); if one
    is there anyway (an old import, a data fix), nothing moves it."""
    fixture, action = OPEN_HANDOVER_MOVES[move]
    handover = request.getfixturevalue(fixture)
    if move == "verify-item":
        complete_items(handover, people, [item_of(handover)])
    type(handover.project).objects.filter(pk=handover.project_id).update(stage=stage)
    handover.refresh_from_db()
    with refused(IllegalTransition, rule="project_final", watch=[handover]):
        action(handover, people)


# ================================================================================ the two sides stay apart


@pytest.fixture
def manager_leads_the_team(team, people):
    """The project's manager is made the receiving team's lead (a small organisation, or an admin's slip)."""
    team.lead = people.manager
    team.save(update_fields=["lead"])
    return people.manager


DECISIONS = {
    "accept": lambda h, by: hs.handover_accept(handover=h, by=by),
    "accept-with-conditions": lambda h, by: hs.handover_accept_with_conditions(
        handover=h, by=by, conditions=[{"text": "Drill.", "owner": by, "due_date": today(7)}]
    ),
    "return": lambda h, by: hs.handover_return(handover=h, by=by, reason="Not ready."),
}


@pytest.mark.parametrize("decision", DECISIONS)
def test_a_manager_who_leads_the_receiving_team_cannot_decide_their_own_handover(
    decision, submitted_handover, manager_leads_the_team, refused
):
    with refused(NotPermitted, rule="owner_only", watch=[submitted_handover]):
        DECISIONS[decision](submitted_handover, manager_leads_the_team)


@pytest.mark.parametrize("decision", DECISIONS)
def test_an_administrator_who_manages_the_project_cannot_decide_its_handover(
    decision, submitted_handover, people, refused
):
    """Administrators may do everything, except sign off both sides of their own project."""
    project = submitted_handover.project
    type(project).objects.filter(pk=project.pk).update(manager=people.admin)
    submitted_handover.refresh_from_db()
    with refused(NotPermitted, rule="owner_only", watch=[submitted_handover]):
        DECISIONS[decision](submitted_handover, people.admin)


@pytest.mark.parametrize("side", [Side.PROJECT, Side.OPERATIONS])
def test_a_manager_on_the_receiving_team_verifies_nothing(side, handover, people, team, refused):
    team.members.add(people.manager)
    item = item_of(handover, Risk.FAILURE, side)
    complete_items(handover, people, [item])
    with refused(NotPermitted, rule="operations_only", watch=[handover, item]):
        hs.item_verify(item=item, by=people.manager)


def test_a_manager_on_the_receiving_team_does_none_of_operations_own_items(submitted_handover, people, team, refused):
    """GIVEN the manager sits on the receiving team and an operations-side item was reopened while operations
    reviews THEN the manager can neither complete it nor add evidence to it: the side that hands over does not do
    the receiving side's work, from any seat."""
    team.members.add(people.manager)
    item = item_of(submitted_handover, Risk.FAILURE, Side.OPERATIONS)
    hs.item_reopen(item=item, by=people.owner, reason="Run the restore drill again.")
    item.refresh_from_db()
    with refused(NotPermitted, rule="responsible_side_only", watch=[submitted_handover, item]):
        hs.item_complete(item=item, by=people.manager, evidence_url="https://wiki.example.com/drill")
    with refused(NotPermitted, rule="participant_only", watch=[submitted_handover, item]):
        hs.evidence_add(item=item, by=people.manager, text="Done it myself.")

    hs.item_complete(item=item, by=people.ops_member, evidence_url="https://wiki.example.com/drill")
    item.refresh_from_db()
    with refused(NotPermitted, rule="participant_only", watch=[submitted_handover, item]):
        hs.item_reopen(item=item, by=people.manager)


def test_a_waiver_by_a_manager_who_leads_the_team_still_waits_for_approval(handover, manager_leads_the_team):
    item = item_of(handover)
    hs.item_waive(item=item, by=manager_leads_the_team, justification="The vendor runs it.")
    item.refresh_from_db()
    assert (item.status, item.waiver_approved_by) == (ItemStatus.WAIVED, None)


# ------------------------------------------------------------------------------------------- text bounds

TOO_LONG = "x" * 10_001


def _done_item(h, p):
    complete_items(h, p, [item_of(h)])


def _no_handover(h, p):
    hs.handover_cancel(handover=h, by=p.manager, reason="Re-planned.")


# case: (handover status, setup or None, the call with an over-long text, the field it names)
LONG_TEXT = {
    "accept note": ("submitted", None, lambda h, p: hs.handover_accept(handover=h, by=p.owner, note=TOO_LONG), "note"),
    "conditional acceptance note": (
        "submitted",
        None,
        lambda h, p: hs.handover_accept_with_conditions(
            handover=h, by=p.owner, note=TOO_LONG, conditions=[hs.ConditionInput("Drill.", p.owner, today(7))]
        ),
        "note",
    ),
    "completion note": (
        "hypercare",
        None,
        lambda h, p: hs.handover_complete(handover=h, by=p.owner, note=TOO_LONG),
        "note",
    ),
    "verification note": (
        "preparing",
        _done_item,
        lambda h, p: hs.item_verify(item=item_of(h), by=p.owner, note=TOO_LONG),
        "note",
    ),
    "reopening reason": (
        "preparing",
        _done_item,
        lambda h, p: hs.item_reopen(item=item_of(h), by=p.manager, reason=TOO_LONG),
        "reason",
    ),
    "return reason": (
        "submitted",
        None,
        lambda h, p: hs.handover_return(handover=h, by=p.owner, reason=TOO_LONG),
        "reason",
    ),
    "condition met note": (
        "accepted_with_conditions",
        None,
        lambda h, p: hs.condition_mark_met(condition=h.conditions.get(), by=p.owner, note=TOO_LONG),
        "note",
    ),
    "project cancel reason": (
        "preparing",
        _no_handover,
        lambda h, p: ps.project_transition(project=h.project, to=Stage.CANCELLED, by=p.manager, reason=TOO_LONG),
        "reason",
    ),
}


@pytest.mark.parametrize("case", LONG_TEXT)
def test_free_text_longer_than_ten_thousand_characters_is_refused_naming_it(case, handover_in, people, refused):
    """Every note and reason a person types is bounded alike, and the refusal says what in words, not a path."""
    status, setup, call, field = LONG_TEXT[case]
    handover = handover_in(status)
    if setup is not None:
        setup(handover, people)
    with refused(InvalidInput, rule="too_long", field=field) as error:
        call(Handover.objects.get(pk=handover.pk), people)
    assert "longer than 10,000 characters" in error.value.message
    assert not {"[", "_"} & set(error.value.message)  # words, not a field path such as conditions[0].text
