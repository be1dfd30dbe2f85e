"""projects.services and selectors: the lifecycle of docs/domain.md "Project lifecycle", edits, membership, visibility.

Every refusal is checked to have written nothing: the stage, version and details in the database are as before and
no ProjectEvent row was added.
"""

import datetime as dt
from contextlib import contextmanager

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from config.errors import Conflict, IllegalTransition, InvalidInput, NotPermitted
from handover import services as handover_services
from handover.services import ConditionInput
from projects import services
from projects.choices import MoveKind, ProjectEventKind, Stage
from projects.models import Project, ProjectEvent
from projects.selectors import project_moves
from tests.factories import ProjectFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)

FORWARD = [
    (Stage.INITIATION, Stage.PLANNING),
    (Stage.PLANNING, Stage.EXECUTION),
    (Stage.EXECUTION, Stage.MONITORING),
    (Stage.MONITORING, Stage.CLOSURE),
    (Stage.CLOSURE, Stage.CLOSED),
]
BACK = [(to, from_stage) for from_stage, to in FORWARD[:-1]]
NON_FINAL = [Stage.INITIATION, Stage.PLANNING, Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE]
FINAL = [Stage.CLOSED, Stage.CANCELLED]
SKIPS = [
    (Stage.INITIATION, Stage.EXECUTION),
    (Stage.INITIATION, Stage.CLOSED),
    (Stage.PLANNING, Stage.MONITORING),
    (Stage.PLANNING, Stage.CLOSED),
    (Stage.EXECUTION, Stage.CLOSURE),
    (Stage.MONITORING, Stage.CLOSED),
    (Stage.EXECUTION, Stage.INITIATION),
    (Stage.CLOSURE, Stage.PLANNING),
    (Stage.CLOSURE, Stage.INITIATION),
    (Stage.PLANNING, Stage.PLANNING),
]
# Signed-in people who take part in the project or its handover but do not manage it.
NOT_MANAGERS = ["viewer", "member", "owner", "ops_member", "lead"]
MANAGERS = ["manager", "admin_user"]


def _snapshot(project: Project) -> dict:
    project.refresh_from_db()
    return {
        "stage": project.stage,
        "stage_changed_at": project.stage_changed_at,
        "version": project.version,
        "code": project.code,
        "name": project.name,
        "manager": project.manager_id,
        "receiving_team": project.receiving_team_id,
        "planned_handover": project.planned_handover,
        "confidential": project.confidential,
        "members": sorted(project.members.values_list("pk", flat=True)),
        "events": ProjectEvent.objects.count(),
    }


@contextmanager
def nothing_written(project: Project):
    """Wrap a refused call: the project row, its members and the history are the same afterwards."""
    before = _snapshot(project)
    yield
    assert _snapshot(project) == before


def _stage_event(project: Project) -> ProjectEvent:
    """The project's only stage-change row (``get`` fails if there are none or several)."""
    return ProjectEvent.objects.get(project=project, kind=ProjectEventKind.STAGE_CHANGED)


def _moves(project: Project, user) -> dict:
    return {move.to: move.blocked_by.rule if move.blocked_by else None for move in project_moves(project, user)}


# --------------------------------------------------------------------------------------------- forward moves


@pytest.mark.parametrize("actor_name", MANAGERS)
@pytest.mark.parametrize(("from_stage", "to"), FORWARD)
def test_forward_move_of_one_stage_allowed_and_recorded(request, project_at, from_stage, to, actor_name):
    """GIVEN a project whose gates are open WHEN its manager (or an admin) moves it one stage forward
    THEN the stage, time and version change and exactly one history row says from, to, who, when and why."""
    actor = request.getfixturevalue(actor_name)
    project = project_at(from_stage)

    with time_machine.travel(NOW, tick=False):
        returned = services.project_transition(project=project, to=to, by=actor)

    assert returned.stage == to
    project.refresh_from_db()
    assert project.stage == to
    assert project.stage_changed_at == NOW
    assert project.version == 2
    assert ProjectEvent.objects.filter(project=project).count() == 1
    event = _stage_event(project)
    assert event.from_stage == from_stage
    assert event.to_stage == to
    assert event.actor == actor
    assert event.created_at == NOW
    assert event.reason == ""


def test_forward_move_keeps_an_optional_reason(project_at, manager):
    project = project_at(Stage.EXECUTION)

    services.project_transition(project=project, to=Stage.MONITORING, by=manager, reason="Go-live done")

    assert _stage_event(project).reason == "Go-live done"


@pytest.mark.parametrize("actor_name", MANAGERS)
@pytest.mark.parametrize(("from_stage", "to"), SKIPS)
def test_skipping_a_stage_refused(request, project_at, from_stage, to, actor_name):
    actor = request.getfixturevalue(actor_name)
    project = project_at(from_stage)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=to, by=actor, reason="We are in a hurry")

    assert refused.value.rule == "stage_skip"
    assert refused.value.field == "to"


def test_unknown_stage_refused(project_at, manager):
    project = project_at(Stage.PLANNING)

    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_transition(project=project, to="archived", by=manager, reason="Old")

    assert refused.value.rule == "unknown_stage"
    assert refused.value.field == "to"


def test_whole_lifecycle_walked_one_stage_at_a_time_writes_one_row_per_move(project_at, manager):
    project = project_at(Stage.INITIATION, actual_handover=timezone.localdate(), has_handover_plan=True)

    for _from_stage, to in FORWARD:
        project = services.project_transition(project=project, to=to, by=manager)

    rows = list(ProjectEvent.objects.filter(project=project).values_list("from_stage", "to_stage"))
    assert rows == [(str(a), str(b)) for a, b in FORWARD]
    project.refresh_from_db()
    assert project.stage == Stage.CLOSED
    assert project.version == 1 + len(FORWARD)


# ------------------------------------------------------------------------------------------ back (rework)


@pytest.mark.parametrize("reason", ["", "   "])
@pytest.mark.parametrize(("from_stage", "to"), BACK)
def test_moving_back_one_stage_refused_without_reason(project_at, manager, from_stage, to, reason):
    project = project_at(from_stage)

    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_transition(project=project, to=to, by=manager, reason=reason)

    assert refused.value.rule == "reason_required"
    assert refused.value.field == "reason"


@pytest.mark.parametrize("actor_name", MANAGERS)
@pytest.mark.parametrize(("from_stage", "to"), BACK)
def test_moving_back_one_stage_allowed_with_reason_and_reason_stored(request, project_at, from_stage, to, actor_name):
    actor = request.getfixturevalue(actor_name)
    project = project_at(from_stage)

    with time_machine.travel(NOW, tick=False):
        services.project_transition(project=project, to=to, by=actor, reason="Load test failed at peak")

    project.refresh_from_db()
    assert project.stage == to
    assert project.version == 2
    event = _stage_event(project)
    assert (event.from_stage, event.to_stage, event.actor, event.created_at, event.reason) == (
        from_stage,
        to,
        actor,
        NOW,
        "Load test failed at peak",
    )


# ------------------------------------------------------------------------------------------------ cancel


@pytest.mark.parametrize("actor_name", MANAGERS)
@pytest.mark.parametrize("from_stage", NON_FINAL)
def test_cancelling_allowed_from_every_stage_before_closed_with_reason(request, project_at, from_stage, actor_name):
    actor = request.getfixturevalue(actor_name)
    # No open handover: none was planned yet, or (at closure) operations has accepted it.
    project = project_at(from_stage, has_handover_plan=from_stage == Stage.CLOSURE)

    with time_machine.travel(NOW, tick=False):
        services.project_transition(project=project, to=Stage.CANCELLED, by=actor, reason="Budget withdrawn")

    project.refresh_from_db()
    assert project.stage == Stage.CANCELLED
    assert project.is_final
    event = _stage_event(project)
    assert (event.from_stage, event.to_stage, event.actor, event.created_at, event.reason) == (
        from_stage,
        Stage.CANCELLED,
        actor,
        NOW,
        "Budget withdrawn",
    )


@pytest.mark.parametrize("from_stage", [Stage.PLANNING, Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE])
def test_cancelling_refused_while_the_handover_is_open(project_at, manager, from_stage):
    project = project_at(from_stage, has_handover_plan=True, actual_handover=None)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.CANCELLED, by=manager, reason="Budget withdrawn")

    assert refused.value.rule == "gate_handover_open"


def test_cancelling_allowed_once_the_open_handover_is_cancelled(handover, manager):
    """GIVEN a project in execution whose handover is still being prepared
    WHEN the manager cancels the handover, then the project
    THEN both are cancelled, each with its own reason in its own history."""
    project = services.project_transition(project=handover.project, to=Stage.EXECUTION, by=manager)
    handover_services.handover_cancel(handover=handover, by=manager, reason="Vendor withdrew the product")

    services.project_transition(project=project, to=Stage.CANCELLED, by=manager, reason="Budget withdrawn")

    project.refresh_from_db()
    assert project.stage == Stage.CANCELLED
    assert ProjectEvent.objects.get(project=project, to_stage=Stage.CANCELLED).reason == "Budget withdrawn"
    assert handover.activity.filter(to_state="cancelled", message="Vendor withdrew the product").exists()


@pytest.mark.parametrize("reason", ["", "  \n "])
@pytest.mark.parametrize("from_stage", NON_FINAL)
def test_cancelling_refused_without_reason(project_at, admin_user, from_stage, reason):
    project = project_at(from_stage)

    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_transition(project=project, to=Stage.CANCELLED, by=admin_user, reason=reason)

    assert refused.value.rule == "reason_required"
    assert refused.value.field == "reason"


@pytest.mark.parametrize("from_stage", FINAL)
def test_cancelling_refused_from_closed_or_cancelled(project_at, manager, from_stage):
    project = project_at(from_stage)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.CANCELLED, by=manager, reason="Tidy up")

    assert refused.value.rule == "stage_final"


@pytest.mark.parametrize("to", list(Stage))
@pytest.mark.parametrize("from_stage", FINAL)
def test_nothing_moves_from_closed_or_cancelled(project_at, admin_user, from_stage, to):
    project = project_at(from_stage)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=to, by=admin_user, reason="Reopen it")

    assert refused.value.rule == "stage_final"


# ------------------------------------------------------------------------------------------------- gates


def test_leaving_initiation_refused_without_manager(project_at, admin_user):
    project = project_at(Stage.INITIATION, manager=None)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.PLANNING, by=admin_user)

    assert refused.value.rule == "gate_manager"


def test_leaving_initiation_refused_without_receiving_team(project_at, manager):
    project = project_at(Stage.INITIATION, receiving_team=None)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.PLANNING, by=manager)

    assert refused.value.rule == "gate_receiving_team"


def test_leaving_initiation_allowed_once_receiving_team_named(project_at, manager, team):
    """GIVEN a project in initiation without a receiving team WHEN the manager names the team
    THEN the project may move to planning."""
    project = project_at(Stage.INITIATION, receiving_team=None)

    services.project_update(project=project, by=manager, receiving_team=team)
    services.project_transition(project=project, to=Stage.PLANNING, by=manager)

    project.refresh_from_db()
    assert project.stage == Stage.PLANNING


@pytest.mark.parametrize("missing", ["manager", "receiving_team"])
def test_cancelling_in_initiation_not_held_by_the_gates(project_at, admin_user, missing):
    project = project_at(Stage.INITIATION, **{missing: None})

    services.project_transition(project=project, to=Stage.CANCELLED, by=admin_user, reason="Never started")

    project.refresh_from_db()
    assert project.stage == Stage.CANCELLED


def test_leaving_planning_refused_without_handover_plan(planning_project, manager):
    with nothing_written(planning_project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=planning_project, to=Stage.EXECUTION, by=manager)

    assert refused.value.rule == "gate_handover_plan"


def test_leaving_planning_allowed_once_handover_planned(handover, manager):
    """GIVEN a project in planning WHEN its handover is created from a template with an owner and a target date
    THEN the project may move to execution."""
    project = handover.project

    services.project_transition(project=project, to=Stage.EXECUTION, by=manager)

    project.refresh_from_db()
    assert project.stage == Stage.EXECUTION
    event = ProjectEvent.objects.get(project=project, to_stage=Stage.EXECUTION)
    assert (event.from_stage, event.actor) == (Stage.PLANNING, manager)


def test_cancelling_the_handover_closes_the_planning_gate_again(handover, manager):
    """GIVEN a project in planning with a handover plan WHEN the handover is cancelled
    THEN leaving planning is refused again for want of a plan."""
    project = handover.project
    handover_services.handover_cancel(handover=handover, by=manager, reason="Wrong template")

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.EXECUTION, by=manager)

    assert refused.value.rule == "gate_handover_plan"


def test_moving_back_to_initiation_needs_no_handover_plan(planning_project, manager):
    services.project_transition(project=planning_project, to=Stage.INITIATION, by=manager, reason="Scope unclear")

    planning_project.refresh_from_db()
    assert planning_project.stage == Stage.INITIATION


def test_entering_closed_refused_without_accepted_handover(project_at, admin_user):
    project = project_at(Stage.CLOSURE, actual_handover=None)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.CLOSED, by=admin_user)

    assert refused.value.rule == "gate_handover_accepted"


def _to_closure(project: Project, manager) -> Project:
    for to in (Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE):
        project = services.project_transition(project=project, to=to, by=manager)
    return project


def test_entering_closed_refused_while_handover_awaits_decision(submitted_handover, manager):
    project = _to_closure(submitted_handover.project, manager)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.CLOSED, by=manager)

    assert refused.value.rule == "gate_handover_accepted"


def test_entering_closed_refused_while_handover_returned(submitted_handover, manager, owner):
    project = _to_closure(submitted_handover.project, manager)
    handover_services.handover_return(handover=submitted_handover, by=owner, reason="Runbook incomplete")

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_transition(project=project, to=Stage.CLOSED, by=manager)

    assert refused.value.rule == "gate_handover_accepted"


@pytest.mark.parametrize("with_conditions", [False, True], ids=["accepted", "accepted_with_conditions"])
def test_entering_closed_allowed_once_handover_accepted(submitted_handover, manager, owner, with_conditions):
    """GIVEN a project in closure whose handover waits for a decision WHEN operations accepts it (with or without
    conditions) THEN the project may be closed."""
    project = _to_closure(submitted_handover.project, manager)
    if with_conditions:
        condition = ConditionInput(
            text="Second on-call engineer trained", owner=owner, due_date=timezone.localdate() + dt.timedelta(days=14)
        )
        handover_services.handover_accept_with_conditions(handover=submitted_handover, by=owner, conditions=[condition])
    else:
        handover_services.handover_accept(handover=submitted_handover, by=owner)

    services.project_transition(project=project, to=Stage.CLOSED, by=manager)

    project.refresh_from_db()
    assert project.stage == Stage.CLOSED
    assert project.actual_handover == timezone.localdate()


# ------------------------------------------------------------------------------------------------- roles

ROLE_MOVES = [
    (Stage.INITIATION, Stage.PLANNING, ""),
    (Stage.PLANNING, Stage.EXECUTION, ""),
    (Stage.CLOSURE, Stage.CLOSED, ""),
    (Stage.EXECUTION, Stage.PLANNING, "Rework"),
    (Stage.MONITORING, Stage.CANCELLED, "Budget withdrawn"),
]


@pytest.mark.parametrize(("from_stage", "to", "reason"), ROLE_MOVES)
@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_stage_move_refused_to_anyone_but_manager_or_admin(request, project_at, role, from_stage, to, reason):
    actor = request.getfixturevalue(role)
    project = project_at(from_stage)

    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_transition(project=project, to=to, by=actor, reason=reason)

    assert refused.value.rule == "manager_only"


def test_manager_of_another_project_cannot_move_this_one(project_at):
    project = project_at(Stage.INITIATION)
    other_manager = ProjectFactory().manager

    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_transition(project=project, to=Stage.PLANNING, by=other_manager)

    assert refused.value.rule == "manager_only"


# ---------------------------------------------------------------------------------------- project_create


def test_project_create_makes_the_creator_manager(viewer, team):
    project = services.project_create(by=viewer, code=" crm-2027 ", name=" New CRM ", receiving_team=team)

    project.refresh_from_db()
    assert project.manager == viewer
    assert project.created_by == viewer
    assert project.code == "CRM-2027"
    assert project.name == "New CRM"
    assert project.stage == Stage.INITIATION
    assert project.version == 1
    event = ProjectEvent.objects.get(project=project)
    assert (event.kind, event.to_stage, event.actor) == (ProjectEventKind.CREATED, Stage.INITIATION, viewer)


def test_project_create_adds_the_members(manager, member, viewer):
    project = services.project_create(by=manager, code="CRM-2027", name="New CRM", members=[member, viewer])

    assert set(project.members.all()) == {member, viewer}


@pytest.mark.parametrize("code", ["", "X", "crm 2027", "-CRM", "CRM_2027", "CRM/2027", "A" * 31])
def test_project_create_refuses_invalid_code(manager, code):
    with pytest.raises(InvalidInput) as refused:
        services.project_create(by=manager, code=code, name="New CRM")

    assert refused.value.field == "code"
    assert not Project.objects.exists()
    assert not ProjectEvent.objects.exists()


def test_project_create_refuses_duplicate_code_whatever_its_case(project, manager):
    with pytest.raises(InvalidInput) as refused:
        services.project_create(by=manager, code="crm-2026", name="Another CRM")

    assert refused.value.field == "code"
    assert Project.objects.count() == 1
    assert not ProjectEvent.objects.exists()


def test_project_create_refuses_empty_name(manager):
    with pytest.raises(InvalidInput) as refused:
        services.project_create(by=manager, code="CRM-2027", name="   ")

    assert refused.value.field == "name"
    assert not Project.objects.exists()


@pytest.mark.parametrize("other_manager", ["member", None], ids=["someone_else", "nobody"])
def test_non_admin_cannot_create_a_project_for_another_manager(request, viewer, other_manager):
    named = request.getfixturevalue(other_manager) if other_manager else None

    with pytest.raises(NotPermitted) as refused:
        services.project_create(by=viewer, code="CRM-2027", name="New CRM", manager=named)

    assert refused.value.rule == "admin_only"
    assert not Project.objects.exists()
    assert not ProjectEvent.objects.exists()


def test_admin_may_create_a_project_for_another_manager(admin_user, manager):
    project = services.project_create(by=admin_user, code="CRM-2027", name="New CRM", manager=manager)

    project.refresh_from_db()
    assert project.manager == manager
    assert project.created_by == admin_user
    assert services.can_manage(project, manager)


@pytest.mark.parametrize("field", ["stage", "version", "actual_handover", "has_handover_plan", "budget"])
def test_project_create_refuses_fields_it_does_not_set(manager, field):
    with pytest.raises(InvalidInput) as refused:
        services.project_create(by=manager, code="CRM-2027", name="New CRM", **{field: "closed"})

    assert refused.value.rule == "field_not_editable"
    assert refused.value.field == field
    assert not Project.objects.exists()


# ---------------------------------------------------------------------------------------- project_update


def test_project_update_records_the_diff(project, manager):
    old_handover = project.planned_handover
    new_handover = old_handover + dt.timedelta(days=7)

    with time_machine.travel(NOW, tick=False):
        services.project_update(
            project=project, by=manager, name="CRM roll-out, phase 1", planned_handover=new_handover, sponsor=""
        )

    project.refresh_from_db()
    assert project.name == "CRM roll-out, phase 1"
    assert project.planned_handover == new_handover
    assert project.version == 2
    event = ProjectEvent.objects.get(project=project)
    assert event.kind == ProjectEventKind.UPDATED
    assert event.actor == manager
    assert event.created_at == NOW
    # sponsor was already empty: only what really changed is recorded.
    assert event.changes == {
        "name": ["CRM roll-out", "CRM roll-out, phase 1"],
        "planned_handover": [old_handover.isoformat(), new_handover.isoformat()],
    }


def test_project_update_records_related_objects_by_key(project, manager, admin_user, viewer):
    other_team = TeamFactory()

    services.project_update(project=project, by=admin_user, manager=viewer, receiving_team=other_team)

    event = ProjectEvent.objects.get(project=project)
    assert event.changes == {
        "manager": [manager.pk, viewer.pk],
        "receiving_team": [project.receiving_team_id, other_team.pk],
    }


def test_project_update_without_a_change_writes_nothing(project, manager):
    with nothing_written(project):
        services.project_update(project=project, by=manager, name=project.name, confidential=project.confidential)


def test_project_update_uppercases_the_code_and_records_what_was_stored(project, manager):
    services.project_update(project=project, by=manager, code="crm-2027")

    project.refresh_from_db()
    assert project.code == "CRM-2027"
    assert ProjectEvent.objects.get(project=project).changes == {"code": ["CRM-2026", "CRM-2027"]}


def test_project_update_with_same_code_in_lower_case_is_not_a_change(project, manager):
    with nothing_written(project):
        services.project_update(project=project, by=manager, code="crm-2026")


def test_project_update_refuses_code_of_another_project(project, manager):
    ProjectFactory(code="ERP-2026")

    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_update(project=project, by=manager, code="erp-2026")

    assert refused.value.field == "code"


def test_project_update_with_current_version_accepted(project, manager):
    services.project_update(project=project, by=manager, expected_version=1, name="CRM roll-out, phase 1")

    project.refresh_from_db()
    assert project.version == 2


def test_project_update_with_stale_version_is_a_conflict(project, manager, admin_user):
    """GIVEN the manager read version 1 WHEN an admin edits the project first
    THEN the manager's edit based on version 1 is refused and changes nothing."""
    services.project_update(project=project, by=admin_user, sponsor="CFO")

    with nothing_written(project), pytest.raises(Conflict) as refused:
        services.project_update(project=project, by=manager, expected_version=1, name="Renamed")

    assert refused.value.rule == "stale_version"


@pytest.mark.parametrize("field", ["stage", "version", "actual_handover", "has_handover_plan", "created_by", "budget"])
def test_project_update_refuses_field_it_does_not_edit_naming_it(project, manager, field):
    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_update(project=project, by=manager, name="Renamed", **{field: "closed"})

    assert refused.value.rule == "field_not_editable"
    assert refused.value.field == field


def test_receiving_team_locked_while_handover_planned(handover, manager):
    project = handover.project

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_update(project=project, by=manager, receiving_team=TeamFactory())

    assert refused.value.rule == "receiving_team_locked"


def test_receiving_team_may_be_restated_while_handover_planned(handover, manager, team):
    project = handover.project

    with nothing_written(project):
        services.project_update(project=project, by=manager, receiving_team=team)


def test_receiving_team_unlocked_after_handover_cancelled(handover, manager):
    """GIVEN a planned handover WHEN it is cancelled THEN the project may change its receiving team."""
    project = handover.project
    other_team = TeamFactory()
    handover_services.handover_cancel(handover=handover, by=manager, reason="Wrong team")

    services.project_update(project=project, by=manager, receiving_team=other_team)

    project.refresh_from_db()
    assert project.receiving_team == other_team


@pytest.mark.parametrize("stage", [s for s in NON_FINAL if s != Stage.INITIATION])
def test_manager_cannot_be_cleared_past_initiation(project_at, stage, admin_user):
    project = project_at(stage)

    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_update(project=project, by=admin_user, manager=None)

    assert refused.value.rule == "manager_required"
    assert refused.value.field == "manager"


@pytest.mark.parametrize("new_manager", ["viewer", None])
def test_only_an_administrator_hands_a_project_to_another_manager(request, project, manager, new_manager):
    new_manager = new_manager and request.getfixturevalue(new_manager)

    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_update(project=project, by=manager, manager=new_manager)

    assert refused.value.rule == "admin_only"
    assert refused.value.field == "manager"


def test_naming_the_manager_already_in_charge_is_no_change(project, manager):
    with nothing_written(project):
        services.project_update(project=project, by=manager, manager=manager)


def test_the_project_is_never_handed_to_its_handovers_operations_owner(handover, admin_user, owner):
    project = handover.project

    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_update(project=project, by=admin_user, manager=owner)

    assert refused.value.rule == "owner_is_manager"
    assert refused.value.field == "manager"


def test_the_handover_owner_may_manage_the_project_once_that_handover_is_cancelled(handover, admin_user, owner):
    handover_services.handover_cancel(handover=handover, by=admin_user, reason="Re-planned with another team.")

    services.project_update(project=handover.project, by=admin_user, manager=owner)

    handover.project.refresh_from_db()
    assert handover.project.manager == owner


def test_members_and_details_change_as_one_new_version(project, manager, member, viewer):
    version = project.version

    services.project_update(
        project=project, by=manager, expected_version=version, name="Renamed", members=[member, viewer]
    )

    project.refresh_from_db()
    assert project.version == version + 1
    assert set(project.members.all()) == {member, viewer}
    kinds = list(ProjectEvent.objects.filter(project=project).values_list("kind", flat=True))
    assert sorted(kinds) == sorted([ProjectEventKind.UPDATED, ProjectEventKind.MEMBER_ADDED])


def test_a_change_of_members_alone_is_a_new_version_and_refuses_a_stale_one(project, manager, member, viewer):
    version = project.version
    services.project_update(project=project, by=manager, expected_version=version, members=[member, viewer])
    project.refresh_from_db()
    assert project.version == version + 1

    with nothing_written(project), pytest.raises(Conflict) as refused:
        services.project_update(project=project, by=manager, expected_version=version, members=[viewer])

    assert refused.value.rule == "stale_version"
    assert set(project.members.all()) == {member, viewer}


def test_receiving_team_cannot_be_cleared_past_initiation(planning_project, manager):
    with nothing_written(planning_project), pytest.raises(InvalidInput) as refused:
        services.project_update(project=planning_project, by=manager, receiving_team=None)

    assert refused.value.field == "receiving_team"


def test_manager_and_team_may_be_cleared_in_initiation(project, admin_user):
    services.project_update(project=project, by=admin_user, manager=None, receiving_team=None)

    project.refresh_from_db()
    assert project.manager is None
    assert project.receiving_team is None


def test_planned_handover_before_the_planned_start_refused(project, manager):
    with nothing_written(project), pytest.raises(InvalidInput) as refused:
        services.project_update(
            project=project, by=manager, planned_start=dt.date(2026, 6, 1), planned_handover=dt.date(2026, 5, 1)
        )

    assert refused.value.field == "planned_handover"
    assert "before the planned start" in refused.value.message


@pytest.mark.parametrize("actor_name", MANAGERS)
@pytest.mark.parametrize("stage", FINAL)
def test_final_project_not_editable(request, project_at, stage, actor_name):
    actor = request.getfixturevalue(actor_name)
    project = project_at(stage)

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        services.project_update(project=project, by=actor, name="Renamed")

    assert refused.value.rule == "project_final"


@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_project_update_refused_to_anyone_but_manager_or_admin(request, project, role):
    actor = request.getfixturevalue(role)
    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_update(project=project, by=actor, name="Renamed")

    assert refused.value.rule == "manager_only"


# ------------------------------------------------------------------------------------------------ members


@pytest.mark.parametrize("actor_name", MANAGERS)
def test_adding_a_member_is_audited(request, project, viewer, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.project_add_member(project=project, by=actor, user=viewer)

    assert project.members.filter(pk=viewer.pk).exists()
    event = ProjectEvent.objects.get(project=project)
    assert (event.kind, event.actor, event.changes) == (ProjectEventKind.MEMBER_ADDED, actor, {"user": "viewer"})


def test_adding_an_existing_member_writes_nothing(project, manager, member):
    with nothing_written(project):
        services.project_add_member(project=project, by=manager, user=member)


@pytest.mark.parametrize("actor_name", MANAGERS)
def test_removing_a_member_is_audited(request, project, member, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.project_remove_member(project=project, by=actor, user=member)

    assert not project.members.filter(pk=member.pk).exists()
    event = ProjectEvent.objects.get(project=project)
    assert (event.kind, event.actor, event.changes) == (ProjectEventKind.MEMBER_REMOVED, actor, {"user": "member"})


def test_removing_someone_who_is_not_a_member_writes_nothing(project, manager, viewer):
    with nothing_written(project):
        services.project_remove_member(project=project, by=manager, user=viewer)


@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_adding_a_member_refused_to_anyone_but_manager_or_admin(request, project, role):
    actor = request.getfixturevalue(role)
    newcomer = UserFactory(username="newcomer")

    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_add_member(project=project, by=actor, user=newcomer)

    assert refused.value.rule == "manager_only"


@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_removing_a_member_refused_to_anyone_but_manager_or_admin(request, project, member, role):
    actor = request.getfixturevalue(role)
    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_remove_member(project=project, by=actor, user=member)

    assert refused.value.rule == "manager_only"


MEMBERSHIP_CHANGES = {
    "add": lambda project, by, newcomer, member: services.project_add_member(project=project, by=by, user=newcomer),
    "remove": lambda project, by, newcomer, member: services.project_remove_member(project=project, by=by, user=member),
    "set": lambda project, by, newcomer, member: services.project_set_members(
        project=project, by=by, members=[newcomer]
    ),
}


@pytest.mark.parametrize("change", MEMBERSHIP_CHANGES)
@pytest.mark.parametrize("stage", FINAL)
def test_final_project_keeps_its_members(project_at, manager, member, stage, change):
    project = project_at(stage)
    newcomer = UserFactory(username="newcomer")

    with nothing_written(project), pytest.raises(IllegalTransition) as refused:
        MEMBERSHIP_CHANGES[change](project, manager, newcomer, member)

    assert refused.value.rule == "project_final"


def test_restating_the_members_of_a_final_project_writes_nothing(project_at, manager, member):
    project = project_at(Stage.CLOSED)
    with nothing_written(project):
        services.project_set_members(project=project, by=manager, members=[member])


# --------------------------------------------------------------------------------------------- visibility


def test_confidential_project_hidden_from_non_participants(project, viewer):
    Project.objects.filter(pk=project.pk).update(confidential=True)
    ProjectFactory(code="OPEN-1")

    visible = Project.objects.visible_to(viewer)

    assert list(visible.values_list("code", flat=True)) == ["OPEN-1"]
    assert not visible.filter(pk=project.pk).exists()


def test_confidential_project_hidden_from_manager_of_another_project(project):
    Project.objects.filter(pk=project.pk).update(confidential=True)
    other_manager = ProjectFactory().manager

    assert not Project.objects.visible_to(other_manager).filter(pk=project.pk).exists()


@pytest.mark.parametrize("participant", ["manager", "member", "owner", "ops_member", "lead", "admin_user"])
def test_confidential_project_shown_to_its_participants_and_admins(request, project, participant):
    Project.objects.filter(pk=project.pk).update(confidential=True)

    visible = Project.objects.visible_to(request.getfixturevalue(participant))

    assert list(visible) == [project]


def test_confidential_project_listed_once_for_someone_with_several_roles(project, manager, team):
    """GIVEN the manager is also a member and in the receiving team WHEN listing THEN the project appears once."""
    Project.objects.filter(pk=project.pk).update(confidential=True)
    project.members.add(manager)
    team.members.add(manager)

    assert list(Project.objects.visible_to(manager)) == [project]


def test_non_confidential_project_visible_to_any_signed_in_user(project, viewer):
    assert list(Project.objects.visible_to(viewer)) == [project]


def test_no_project_visible_to_anonymous_user(project):
    assert not Project.objects.visible_to(AnonymousUser()).exists()


# --------------------------------------------------------------------------------------------- project_moves


def test_project_moves_names_the_receiving_team_gate(project_at, manager):
    project = project_at(Stage.INITIATION, receiving_team=None)

    assert _moves(project, manager) == {Stage.PLANNING: "gate_receiving_team", Stage.CANCELLED: None}


def test_project_moves_names_the_manager_gate(project_at, admin_user):
    project = project_at(Stage.INITIATION, manager=None)

    assert _moves(project, admin_user) == {Stage.PLANNING: "gate_manager", Stage.CANCELLED: None}


def test_project_moves_names_the_handover_plan_gate(planning_project, manager):
    assert _moves(planning_project, manager) == {
        Stage.INITIATION: None,
        Stage.EXECUTION: "gate_handover_plan",
        Stage.CANCELLED: None,
    }


def test_project_moves_open_once_handover_planned(handover, manager):
    project = Project.objects.get(pk=handover.project_id)

    assert _moves(project, manager) == {
        Stage.INITIATION: None,
        Stage.EXECUTION: None,
        Stage.CANCELLED: "gate_handover_open",
    }


def test_project_moves_names_the_acceptance_gate(project_at, manager):
    project = project_at(Stage.CLOSURE, actual_handover=None)

    assert _moves(project, manager) == {
        Stage.MONITORING: None,
        Stage.CLOSED: "gate_handover_accepted",
        Stage.CANCELLED: "gate_handover_open",
    }


@pytest.mark.parametrize("role", NOT_MANAGERS)
def test_project_moves_blocked_by_role_for_non_managers(request, project_at, role):
    project = project_at(Stage.EXECUTION)

    assert _moves(project, request.getfixturevalue(role)) == {
        Stage.PLANNING: "manager_only",
        Stage.MONITORING: "manager_only",
        Stage.CANCELLED: "manager_only",
    }


@pytest.mark.parametrize("stage", FINAL)
def test_project_moves_empty_for_final_projects(project_at, admin_user, stage):
    assert project_moves(project_at(stage), admin_user) == []


def test_project_moves_say_which_need_a_reason(project_at, manager):
    moves = {move.to: (move.kind, move.needs_reason) for move in project_moves(project_at(Stage.EXECUTION), manager)}

    assert moves == {
        Stage.PLANNING: (MoveKind.BACK, True),
        Stage.MONITORING: (MoveKind.FORWARD, False),
        Stage.CANCELLED: (MoveKind.CANCEL, True),
    }


def test_project_moves_writes_nothing(project_at, manager):
    project = project_at(Stage.PLANNING)

    with nothing_written(project):
        project_moves(project, manager)


# ------------------------------------------------------------------------------------------ stale objects


def test_former_manager_cannot_edit_through_a_copy_read_before_reassignment(project, manager, admin_user, viewer):
    """GIVEN the manager read the project WHEN an admin hands the project to someone else
    THEN the former manager's edit on the copy read earlier is refused: the role is checked on current data."""
    read_earlier = Project.objects.get(pk=project.pk)
    services.project_update(project=project, by=admin_user, manager=viewer)

    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_update(project=read_earlier, by=manager, name="Renamed")

    assert refused.value.rule == "manager_only"


def test_former_manager_cannot_move_through_a_copy_read_before_reassignment(project, manager, admin_user, viewer):
    """GIVEN the manager read the project WHEN an admin hands the project to someone else
    THEN the former manager's stage move on the copy read earlier is refused."""
    read_earlier = Project.objects.get(pk=project.pk)
    services.project_update(project=project, by=admin_user, manager=viewer)

    with nothing_written(project), pytest.raises(NotPermitted) as refused:
        services.project_transition(project=read_earlier, to=Stage.PLANNING, by=manager)

    assert refused.value.rule == "manager_only"
