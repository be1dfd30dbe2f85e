"""Every write to projects: creation, edits, membership and lifecycle moves, each with its history row."""

from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, DomainError, IllegalTransition, InvalidInput, NotPermitted
from config.validation import apply_changes, bounded_text, clean_or_raise

from .choices import STAGE_TRANSITIONS, MoveKind, ProjectEventKind, Stage
from .models import Project, ProjectEvent

EDITABLE_FIELDS = (
    "code",
    "name",
    "description",
    "sponsor",
    "manager",
    "receiving_team",
    "planned_start",
    "planned_handover",
    "confidential",
)


def can_manage(project: Project, user) -> bool:
    """The project's manager, or an administrator."""
    return bool(user.is_authenticated and (user.is_staff or project.manager_id == user.pk))


def _require_manager(project: Project, by, what: str) -> None:
    if not can_manage(project, by):
        raise NotPermitted(f"Only the project manager or an administrator may {what}.", rule="manager_only")


def _require_not_final(project: Project, what: str) -> None:
    if project.is_final:
        raise IllegalTransition(f"A {project.stage} project cannot {what}.", rule="project_final")


def _event(project: Project, by, kind: ProjectEventKind, *, at=None, **fields) -> ProjectEvent:
    return ProjectEvent.objects.create(project=project, kind=kind, actor=by, created_at=at or timezone.now(), **fields)


def _lock(project: Project) -> Project:
    return Project.objects.select_for_update().get(pk=project.pk)


def _save_unique(project: Project) -> None:
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError as error:
        raise InvalidInput("A project with this code already exists.", rule="code_taken", field="code") from error


@transaction.atomic
def project_create(*, by, code: str, name: str, members=(), **fields) -> Project:
    """Create a project in initiation. Any signed-in user may; they manage it unless someone else is named."""
    if not by.is_authenticated:
        raise NotPermitted("Sign in to create a project.", rule="signed_in_only")
    project = Project(code=(code or "").strip().upper(), name=(name or "").strip(), created_by=by)
    apply_changes(project, fields, allowed=EDITABLE_FIELDS)
    if "manager" not in fields:
        project.manager = by
    if project.manager_id != by.pk and not by.is_staff:
        raise NotPermitted("Only an administrator may create a project for another manager.", rule="admin_only")
    clean_or_raise(project, exclude=["members"])
    _save_unique(project)
    if members:
        project.members.add(*members)
    _event(project, by, ProjectEventKind.CREATED, to_stage=project.stage)
    return project


@transaction.atomic
def project_update(*, project: Project, by, expected_version: int | None = None, members=None, **changes) -> Project:
    """Edit the project's details and, when ``members`` is given, make them its members: one change, one new
    version. The stage moves only through ``project_transition``."""
    project = _lock(project)
    _require_manager(project, by, "edit the project")
    if expected_version is not None and project.version != expected_version:
        raise Conflict("The project changed since you read it; reload and try again.", rule="stale_version")
    if project.is_final:
        raise IllegalTransition(f"A {project.stage} project cannot be edited.", rule="project_final")
    if (
        "receiving_team" in changes
        and project.has_handover_plan
        and getattr(changes["receiving_team"], "pk", changes["receiving_team"]) != project.receiving_team_id
    ):
        raise IllegalTransition(
            "The receiving team cannot change while a handover is planned; cancel the handover first.",
            rule="receiving_team_locked",
        )
    if "manager" in changes:
        _require_manager_change_allowed(project, by, changes["manager"])
    if isinstance(changes.get("code"), str):
        changes["code"] = changes["code"].strip().upper()
    diff = apply_changes(project, changes, allowed=EDITABLE_FIELDS)
    if diff:
        if project.stage != Stage.INITIATION:
            for field in ("manager", "receiving_team"):
                if field in diff and getattr(project, f"{field}_id") is None:
                    raise InvalidInput(
                        f"A project past initiation needs a {field.replace('_', ' ')}.",
                        rule=f"{field}_required",
                        field=field,
                    )
        clean_or_raise(project, exclude=["members"])
        project.version += 1
        _save_unique(project)
        _event(project, by, ProjectEventKind.UPDATED, changes=diff)
    if members is not None and _apply_members(project, by, members) and not diff:
        project.version += 1
        project.save(update_fields=["version", "updated_at"])
    return project


def _require_manager_change_allowed(project: Project, by, manager) -> None:
    """Handing a project to another manager is an administrator's decision (as creating one for another manager
    is), and never to the operations owner of its handover: the side that hands over does not accept."""
    manager_id = getattr(manager, "pk", manager)
    if manager_id == project.manager_id:
        return
    if not by.is_staff:
        raise NotPermitted(
            "Only an administrator may hand the project to another manager.", rule="admin_only", field="manager"
        )
    # The reverse relation, not the handover model: the handover app depends on projects, not the reverse.
    live = project.handovers.exclude(status="cancelled")
    if manager_id is not None and live.filter(operations_owner_id=manager_id).exists():
        raise InvalidInput(
            "The project manager must be someone other than its handover's operations owner: the side that hands "
            "over does not accept its own work.",
            rule="owner_is_manager",
            field="manager",
        )


@transaction.atomic
def project_add_member(*, project: Project, by, user) -> None:
    project = _lock(project)
    _require_manager(project, by, "add members")
    _require_not_final(project, "take new members")
    if not project.members.filter(pk=user.pk).exists():
        project.members.add(user)
        _event(project, by, ProjectEventKind.MEMBER_ADDED, changes={"user": user.get_username()})


@transaction.atomic
def project_remove_member(*, project: Project, by, user) -> None:
    project = _lock(project)
    _require_manager(project, by, "remove members")
    _require_not_final(project, "lose members")
    if project.members.filter(pk=user.pk).exists():
        project.members.remove(user)
        _event(project, by, ProjectEventKind.MEMBER_REMOVED, changes={"user": user.get_username()})


def transition_problem(project: Project, to: str, *, by, reason: str = "") -> DomainError | None:
    """Why moving ``project`` to ``to`` is refused, or ``None`` if it is allowed.

    The one place that knows the lifecycle rules; ``project_transition`` enforces it and the UI uses it to
    show which moves are open and which gate blocks the others.
    """
    try:
        target = Stage(to)
    except ValueError:
        return InvalidInput(f"{to!r} is not a stage.", rule="unknown_stage", field="to")
    if not can_manage(project, by):
        return NotPermitted(
            "Only the project manager or an administrator may move the project's stage.", rule="manager_only"
        )
    kind = STAGE_TRANSITIONS[Stage(project.stage)].get(target)
    if kind is None:
        if project.is_final:
            return IllegalTransition(f"The project is {project.stage}; it cannot move any more.", rule="stage_final")
        return IllegalTransition(
            f"A project cannot move from {project.stage} to {target}: stages move forward one at a time, "
            "back one stage for rework, or to cancelled.",
            rule="stage_skip",
            field="to",
        )
    if kind in (MoveKind.BACK, MoveKind.CANCEL) and not (reason or "").strip():
        what = "Cancelling a project" if kind == MoveKind.CANCEL else "Moving a project back a stage"
        return InvalidInput(f"{what} needs a reason.", rule="reason_required", field="reason")
    if kind == MoveKind.FORWARD:
        return _gate_problem(project, target)
    if kind == MoveKind.CANCEL and project.has_handover_plan and project.actual_handover is None:
        # The open handover sits with operations or is being prepared; cancelling it is its own, audited decision.
        return IllegalTransition(
            "Cancelling a project with an open handover needs the handover cancelled first.",
            rule="gate_handover_open",
        )
    return None


def _gate_problem(project: Project, target: Stage) -> DomainError | None:
    if project.stage == Stage.INITIATION:
        if project.manager_id is None:
            return IllegalTransition("Leaving initiation needs a project manager.", rule="gate_manager")
        if project.receiving_team_id is None:
            return IllegalTransition(
                "Leaving initiation needs a receiving operations team.", rule="gate_receiving_team"
            )
    if project.stage == Stage.PLANNING and not project.has_handover_plan:
        return IllegalTransition(
            "Leaving planning needs a handover plan: a handover created from a template, "
            "with a target date and an operations owner.",
            rule="gate_handover_plan",
        )
    if target == Stage.CLOSED and project.actual_handover is None:
        return IllegalTransition(
            "Closing a project needs its handover accepted by operations (with or without conditions).",
            rule="gate_handover_accepted",
        )
    return None


@transaction.atomic
def project_transition(
    *, project: Project, to: str, by, reason: str = "", expected_version: int | None = None
) -> Project:
    """Move ``project`` to stage ``to``, checking the table, the reason, the role and the gates."""
    project = _lock(project)
    if expected_version is not None and project.version != expected_version:
        raise Conflict("The project changed since you read it; reload and try again.", rule="stale_version")
    problem = transition_problem(project, to, by=by, reason=reason)
    if problem is not None:
        raise problem
    reason = bounded_text(reason, field="reason", what="The reason")
    now = timezone.now()
    from_stage = project.stage
    project.stage = to
    project.stage_changed_at = now
    project.version += 1
    project.save(update_fields=["stage", "stage_changed_at", "version", "updated_at"])
    _event(
        project,
        by,
        ProjectEventKind.STAGE_CHANGED,
        at=now,
        from_stage=from_stage,
        to_stage=to,
        reason=reason,
    )
    return project


# Called by handover.services (the handover app depends on projects, not the reverse), inside its transaction.
# They leave the version alone: it guards what clients write (a stale edit is refused), and no client writes
# these; the gates that read them are checked again under the lock of every move.


def project_set_handover_plan(*, project: Project, by, planned: bool) -> None:
    """Record that the project has (or no longer has) an active handover plan."""
    updated = Project.objects.filter(pk=project.pk, has_handover_plan=not planned).update(
        has_handover_plan=planned, updated_at=timezone.now()
    )
    if updated:
        kind = ProjectEventKind.HANDOVER_PLANNED if planned else ProjectEventKind.HANDOVER_PLAN_WITHDRAWN
        _event(project, by, kind)
    project.has_handover_plan = planned


def project_record_handover_accepted(*, project: Project, by, on: date) -> None:
    """Record the date operations accepted the handover: the project's actual handover date."""
    Project.objects.filter(pk=project.pk).update(actual_handover=on, updated_at=timezone.now())
    project.actual_handover = on
    _event(project, by, ProjectEventKind.HANDOVER_ACCEPTED, changes={"actual_handover": on.isoformat()})


@transaction.atomic
def project_set_members(*, project: Project, by, members, expected_version: int | None = None) -> Project:
    """Make the project's members exactly ``members``, auditing each addition and removal."""
    project = _lock(project)
    _require_manager(project, by, "change members")
    if expected_version is not None and project.version != expected_version:
        raise Conflict("The project changed since you read it; reload and try again.", rule="stale_version")
    if _apply_members(project, by, members):
        project.version += 1
        project.save(update_fields=["version", "updated_at"])
    return project


def _apply_members(project: Project, by, members) -> bool:
    """Add and remove members of the locked ``project`` until they are ``members``; whether anything changed."""
    wanted = {user.pk: user for user in members}
    current = {user.pk: user for user in project.members.all()}
    if wanted.keys() == current.keys():
        return False
    _require_not_final(project, "change its members")
    for pk in wanted.keys() - current.keys():
        project.members.add(wanted[pk])
        _event(project, by, ProjectEventKind.MEMBER_ADDED, changes={"user": wanted[pk].get_username()})
    for pk in current.keys() - wanted.keys():
        project.members.remove(current[pk])
        _event(project, by, ProjectEventKind.MEMBER_REMOVED, changes={"user": current[pk].get_username()})
    return True
