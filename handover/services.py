"""Every write to handovers and their checklists: each transition, gate and role check lives here.

Each public function is one transaction. It locks the handover row first (``select_for_update``), re-reads what
it needs under the lock, checks the transition table, the gate and the role, and only then writes the change and
its activity entry. A refused call raises a ``config.errors.DomainError`` and writes nothing. Because every write
to a handover or its items takes the same lock first, two people deciding at once are serialised: the second
finds the state already moved and is refused.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.errors import Conflict, IllegalTransition, InvalidInput, NotPermitted
from config.validation import apply_changes, bounded_text, clean_or_raise, require_text
from operations.models import Service
from operations.selectors import is_team_member
from projects import services as project_services
from projects.models import Project

from . import readiness
from .audit import admin_event
from .choices import (
    HANDOVER_TRANSITIONS,
    ITEM_TRANSITIONS,
    OPEN_STATUSES,
    ActivityVerb,
    AdminEventKind,
    ConditionStatus,
    DecisionKind,
    EventType,
    HandoverStatus,
    ItemStatus,
    Risk,
    Side,
)
from .models import (
    Activity,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    Evidence,
    Handover,
    TemplateItem,
)
from .selectors import (
    can_verify_item,
    can_work_item,
    checklist_snapshot,
    handover_gates,
    is_manager,
    is_operations_owner,
    is_participant,
)
from .webhooks import services as webhooks

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# ------------------------------------------------------------------------------------------------- helpers


def _lock(handover: Handover) -> Handover:
    """Lock and re-read the handover; every write starts here so that concurrent writers queue up."""
    return (
        Handover.objects.select_for_update(of=("self",)).select_related("project", "receiving_team").get(pk=handover.pk)
    )


def _lock_item(item: ChecklistItem) -> ChecklistItem:
    handover = _lock(item.handover)
    item = ChecklistItem.objects.select_for_update().get(pk=item.pk)
    item.handover = handover
    return item


def _check_version(obj, expected_version: int | None) -> None:
    if expected_version is not None and obj.version != expected_version:
        raise Conflict(
            f"The {obj._meta.verbose_name} changed since you read it (version {expected_version}, now "
            f"{obj.version}); reload and try again.",
            rule="stale_version",
        )


def _record(
    handover: Handover,
    by,
    verb: ActivityVerb,
    *,
    now: datetime,
    item: ChecklistItem | None = None,
    from_state: str = "",
    to_state: str = "",
    message: str = "",
    data: dict | None = None,
    counts: Mapping[str, int] | None = None,
) -> Activity:
    """Write the activity entry and move the handover's last-activity time (the idle rule reads it), and its
    readiness counters by ``counts``."""
    entry = Activity(
        handover=handover,
        item=item,
        verb=verb,
        actor=by,
        from_state=from_state,
        to_state=to_state,
        message=message,
        data=data or {},
        created_at=now,
    )
    return _record_all(handover, [entry], now=now, counts=counts)[0]


def _record_all(
    handover: Handover, entries: list[Activity], *, now: datetime, counts: Mapping[str, int] | None = None
) -> list[Activity]:
    """``_record`` for many entries on one handover in two queries: one version step per entry, as one by one.

    ``counts`` moves the handover's stored readiness (``readiness.delta`` of its items before and after the
    change) in the same UPDATE: every change to an item is recorded here, under the handover's lock."""
    moved = {name: F(name) + n for name, n in (counts or {}).items()}
    Handover.objects.filter(pk=handover.pk).update(
        last_activity_at=now, version=F("version") + len(entries), updated_at=now, **moved
    )
    handover.last_activity_at = now
    handover.version += len(entries)
    for name, n in (counts or {}).items():
        setattr(handover, name, getattr(handover, name) + n)
    return Activity.objects.bulk_create(entries)


def _text(value: str | None, *, field: str, what: str, rule: str) -> str:
    return require_text(value, field=field, rule=rule, what=what)


def _move_handover(handover: Handover, to: HandoverStatus, *, by, now: datetime, message: str = "") -> None:
    """Change the handover's status after checking the transition table, and write its history row."""
    if to not in HANDOVER_TRANSITIONS[handover.status]:
        raise IllegalTransition(f"A handover cannot move from {handover.status} to {to}.", rule="handover_transition")
    from_state = handover.status
    handover.status = to
    handover.status_changed_at = now
    handover.save(update_fields=["status", "status_changed_at", *_TIMESTAMP_FIELDS, "updated_at"])
    _record(handover, by, ActivityVerb.STATUS_CHANGED, now=now, from_state=from_state, to_state=to, message=message)
    if to in STATUS_EVENTS:
        webhooks.emit(
            STATUS_EVENTS[to],
            data={
                **webhooks.handover_payload(handover),
                "from": from_state,
                "by": by.get_username(),
                "message": message,
            },
            now=now,
            handover=handover,
        )


# Webhook events for status moves (a return to preparing is not one).
STATUS_EVENTS = {
    HandoverStatus.SUBMITTED: EventType.HANDOVER_SUBMITTED,
    HandoverStatus.ACCEPTED: EventType.HANDOVER_ACCEPTED,
    HandoverStatus.ACCEPTED_WITH_CONDITIONS: EventType.HANDOVER_ACCEPTED_WITH_CONDITIONS,
    HandoverStatus.RETURNED: EventType.HANDOVER_RETURNED,
    HandoverStatus.HYPERCARE: EventType.HANDOVER_HYPERCARE_STARTED,
    HandoverStatus.COMPLETED: EventType.HANDOVER_COMPLETED,
    HandoverStatus.CANCELLED: EventType.HANDOVER_CANCELLED,
}


def _item_changed(item: ChecklistItem, by, now: datetime, change: dict) -> None:
    webhooks.emit(EventType.ITEM_UPDATED, data=_item_event(item, by, change), now=now, handover=item.handover)


def _item_event(item: ChecklistItem, by, change: dict) -> dict:
    return {
        **webhooks.handover_payload(item.handover),
        "item": {"id": item.pk, "title": item.title, "risk": item.risk, "side": item.side, "status": item.status},
        "change": change,
        "by": by.get_username(),
    }


# Timestamps that a status move may have set on the instance; saved with the status.
_TIMESTAMP_FIELDS = (
    "submitted_at",
    "decided_at",
    "accepted_at",
    "return_count",
    "hypercare_started_at",
    "hypercare_ends_on",
    "hypercare_exit_criteria",
    "completed_at",
    "cancel_reason",
)


def _require_open(handover: Handover, what: str) -> None:
    if handover.status not in OPEN_STATUSES:
        raise IllegalTransition(
            f"The handover is {handover.status}; its checklist can no longer change ({what}).",
            rule="handover_closed_for_changes",
        )
    # projects refuses to close or cancel a project while its handover is open; this keeps it true for rows
    # written some other way (a data fix, an old import).
    _require_project_active(handover.project)


def _require_project_side_can_act(handover: Handover, by, *, now: datetime) -> None:
    """Project-side changes happen while preparing; a returned handover resumes preparing on the manager's change.

    While submitted, the ball is with operations and the project side waits for the decision.
    """
    if handover.status == HandoverStatus.SUBMITTED:
        raise IllegalTransition(
            "The handover is submitted and waits for operations' decision; the project side cannot change it now.",
            rule="awaiting_decision",
        )
    _require_open(handover, "project-side change")
    if handover.status == HandoverStatus.RETURNED:
        _move_handover(handover, HandoverStatus.PREPARING, by=by, now=now, message="Resumed after return.")


def _require_can_edit(handover: Handover, by, *, owner: bool, now: datetime, what: str) -> None:
    """The operations owner may edit while the checklist is open; the project side as in
    ``_require_project_side_can_act`` (not while submitted; a returned handover resumes preparing)."""
    if owner:
        _require_open(handover, what)
    else:
        _require_project_side_can_act(handover, by, now=now)


def _require_project_active(project: Project) -> None:
    if project.is_final:
        raise IllegalTransition(f"The project is {project.stage}.", rule="project_final")


# ----------------------------------------------------------------------------------------------- creation


@transaction.atomic
def handover_create(
    *,
    project: Project,
    template: ChecklistTemplate,
    operations_owner,
    target_date: date,
    by,
    service: Service | None = None,
    deliverables: str = "",
    receiving_team=None,
) -> Handover:
    """Plan the project's handover: copy the template's items into a new checklist.

    The project manager prepares it; the operations owner must belong to the project's receiving team.
    """
    project = Project.objects.select_for_update(of=("self",)).select_related("receiving_team").get(pk=project.pk)
    if not project_services.can_manage(project, by):
        raise NotPermitted("Only the project manager or an administrator may prepare a handover.", rule="manager_only")
    _require_project_active(project)
    team = project.receiving_team
    if team is None:
        raise InvalidInput(
            "The project has no receiving operations team yet.", rule="receiving_team_required", field="receiving_team"
        )
    if receiving_team is not None and getattr(receiving_team, "pk", receiving_team) != team.pk:
        raise InvalidInput(
            f"The handover goes to the project's receiving team, {team}.",
            rule="receiving_team_mismatch",
            field="receiving_team",
        )
    if template is None or not template.is_active:
        raise InvalidInput("Choose an active checklist template.", rule="template_inactive", field="template")
    if operations_owner is None or not is_team_member(team, operations_owner):
        raise InvalidInput(
            f"The operations owner must be the lead or a member of {team}.",
            rule="owner_not_in_team",
            field="operations_owner",
        )
    _require_owner_not_manager(project, operations_owner)
    if target_date is None:
        raise InvalidInput("A target date is required.", rule="target_date_required", field="target_date")
    if service is not None and service.team_id != team.pk:
        raise InvalidInput(f"The service must be one of {team}'s.", rule="service_not_in_team", field="service")
    if Handover.objects.filter(project=project).exclude(status=HandoverStatus.CANCELLED).exists():
        raise IllegalTransition("This project already has an active handover.", rule="one_active_handover")

    now = timezone.now()
    handover = Handover(
        project=project,
        template=template,
        template_version=template.version,
        receiving_team=team,
        service=service,
        operations_owner=operations_owner,
        deliverables=deliverables or "",
        target_date=target_date,
        status=HandoverStatus.PREPARING,
        status_changed_at=now,
        last_activity_at=now,
        created_by=by,
        created_at=now,
    )
    clean_or_raise(handover, exclude=["project"])
    items = [
        ChecklistItem(
            template_item=t,
            title=t.title,
            guidance=t.guidance,
            risk=t.risk,
            mandatory=t.mandatory,
            side=t.side,
            position=t.position,
        )
        for t in template.items.all()
    ]
    # The handover is born with its readiness counted.
    for name, n in readiness.delta([], map(readiness.item_counts, items)).items():
        setattr(handover, name, n)
    try:
        with transaction.atomic():
            handover.save()
    except IntegrityError as error:  # the partial unique constraint, when two managers race
        raise IllegalTransition("This project already has an active handover.", rule="one_active_handover") from error
    for item in items:
        item.handover = handover
    ChecklistItem.objects.bulk_create(items)
    _record(handover, by, ActivityVerb.CREATED, now=now, to_state=handover.status, data={"template": str(template)})
    webhooks.emit(EventType.HANDOVER_CREATED, data=webhooks.handover_payload(handover), now=now, handover=handover)
    project_services.project_set_handover_plan(project=project, by=by, planned=True)
    return handover


def _require_owner_not_manager(project: Project, operations_owner) -> None:
    # Two-sided sign-off: the side that hands over does not accept its own work.
    if operations_owner.pk == project.manager_id:
        raise InvalidInput(
            "The operations owner must be someone other than the project manager: the side that hands over "
            "does not accept its own work.",
            rule="owner_is_manager",
            field="operations_owner",
        )


def _require_hypercare_window(ends_on, exit_criteria: str | None, *, now: datetime, field: str) -> str:
    """Hypercare has an end date after today and exit criteria (docs/domain.md "Handover"); returns them cleaned."""
    exit_criteria = _text(
        exit_criteria, field="exit_criteria", what="Hypercare exit criteria", rule="exit_criteria_required"
    )
    if not isinstance(ends_on, date) or ends_on <= timezone.localdate(now):
        raise InvalidInput("Hypercare must end after today.", rule="hypercare_end_in_past", field=field)
    return exit_criteria


HANDOVER_EDITABLE = ("deliverables", "target_date", "service", "operations_owner")
HYPERCARE_EDITABLE = ("hypercare_ends_on", "hypercare_exit_criteria")


@transaction.atomic
def handover_update(*, handover: Handover, by, expected_version: int | None = None, **changes) -> Handover:
    """Edit the plan (manager or operations owner) or the hypercare window (operations owner)."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    manager, owner = is_manager(handover, by), is_operations_owner(handover, by)
    if not (manager or owner):
        raise NotPermitted(
            "Only the project manager or the operations owner may edit the handover.", rule="participant_only"
        )
    hypercare = set(changes) & set(HYPERCARE_EDITABLE)
    if hypercare:
        if not owner:
            raise NotPermitted("Only the operations owner may change the hypercare window.", rule="owner_only")
        if handover.status != HandoverStatus.HYPERCARE:
            raise IllegalTransition("The hypercare window can change only during hypercare.", rule="not_in_hypercare")
    now = timezone.now()
    if "operations_owner" in changes:
        new_owner = changes["operations_owner"]
        if new_owner is None or not is_team_member(handover.receiving_team, new_owner):
            raise InvalidInput(
                f"The operations owner must be the lead or a member of {handover.receiving_team}.",
                rule="owner_not_in_team",
                field="operations_owner",
            )
        _require_owner_not_manager(handover.project, new_owner)
    if "target_date" in changes and changes["target_date"] is None:
        raise InvalidInput("A target date is required.", rule="target_date_required", field="target_date")
    service = changes.get("service")
    if service is not None and service.team_id != handover.receiving_team_id:
        raise InvalidInput(
            f"The service must be one of {handover.receiving_team}'s.", rule="service_not_in_team", field="service"
        )
    diff = apply_changes(handover, changes, allowed=HANDOVER_EDITABLE + HYPERCARE_EDITABLE)
    if not diff:
        return handover
    if hypercare:
        # The window keeps the shape hypercare started with: an end date after today and exit criteria.
        handover.hypercare_exit_criteria = _require_hypercare_window(
            handover.hypercare_ends_on,
            handover.hypercare_exit_criteria,
            now=now,
            field="hypercare_ends_on",
        )
        if "hypercare_exit_criteria" in diff:
            diff["hypercare_exit_criteria"][1] = handover.hypercare_exit_criteria
    clean_or_raise(handover, exclude=["project"])
    if set(diff) - hypercare:
        _require_can_edit(handover, by, owner=owner, now=now, what="edit the plan")
    handover.save(update_fields=[*diff, "updated_at"])
    _record(handover, by, ActivityVerb.UPDATED, now=now, data={"changes": diff})
    return handover


# ---------------------------------------------------------------------------------------- status moves


@transaction.atomic
def handover_submit(*, handover: Handover, by, expected_version: int | None = None) -> Handover:
    """The manager hands the checklist to operations: every mandatory item done, waived or not applicable."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    if not is_manager(handover, by):
        raise NotPermitted("Only the project manager may submit the handover.", rule="manager_only")
    _require_project_active(handover.project)
    if handover.status not in (HandoverStatus.PREPARING, HandoverStatus.RETURNED):
        raise IllegalTransition(f"A handover cannot be submitted while {handover.status}.", rule="handover_transition")
    blocked = handover_gates(handover.items.all()).get("submit")
    if blocked:
        raise IllegalTransition(blocked, rule="submit_mandatory_open")
    now = timezone.now()
    if handover.status == HandoverStatus.RETURNED:
        _move_handover(handover, HandoverStatus.PREPARING, by=by, now=now, message="Resumed after return.")
    handover.submitted_at = now
    _move_handover(handover, HandoverStatus.SUBMITTED, by=by, now=now)
    return handover


def _require_decision_possible(handover: Handover, by) -> None:
    if not is_operations_owner(handover, by):
        raise NotPermitted(
            "Only the operations owner or the receiving team's lead may decide on the handover.", rule="owner_only"
        )
    if handover.status != HandoverStatus.SUBMITTED:
        raise IllegalTransition(
            f"Only a submitted handover can be decided; this one is {handover.status}.", rule="not_submitted"
        )
    _require_project_active(handover.project)


def _require_acceptable(handover: Handover) -> None:
    blocked = handover_gates(handover.items.all()).get("accept")
    if blocked:
        raise IllegalTransition(blocked, rule="accept_mandatory_unverified")


def _decide(
    handover: Handover, by, kind: DecisionKind, *, now: datetime, reason: str = "", **snapshot_extra
) -> Decision:
    return Decision.objects.create(
        handover=handover,
        kind=kind,
        decided_by=by,
        decided_at=now,
        reason=reason,
        snapshot={**checklist_snapshot(handover), **snapshot_extra},
    )


@dataclass(frozen=True)
class ConditionInput:
    """One condition of a conditional acceptance, as given by the operations owner."""

    text: str
    owner: "User"
    due_date: date


def _accept(handover: Handover, by, *, kind: DecisionKind, note: str, conditions: Sequence[ConditionInput]):
    _require_decision_possible(handover, by)
    _require_acceptable(handover)
    note = bounded_text(note, field="note", what="The note")
    now = timezone.now()
    decision = _decide(handover, by, kind, now=now, reason=note)
    for condition in conditions:
        Condition.objects.create(
            handover=handover,
            decision=decision,
            text=condition.text,
            owner=condition.owner,
            due_date=condition.due_date,
        )
    handover.decided_at = handover.accepted_at = now
    _move_handover(handover, HandoverStatus(kind.value), by=by, now=now, message=note)
    project_services.project_record_handover_accepted(project=handover.project, by=by, on=timezone.localdate(now))
    return handover


@transaction.atomic
def handover_accept(*, handover: Handover, by, note: str = "", expected_version: int | None = None) -> Handover:
    """The operations owner accepts: every mandatory item verified, approved-waived or not applicable."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    return _accept(handover, by, kind=DecisionKind.ACCEPTED, note=note, conditions=())


@transaction.atomic
def handover_accept_with_conditions(
    *,
    handover: Handover,
    by,
    conditions: Sequence[ConditionInput | dict],
    note: str = "",
    expected_version: int | None = None,
) -> Handover:
    """Accept, attaching follow-on conditions (each with an owner, a due date and a text)."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    _require_decision_possible(handover, by)
    if not conditions:
        raise InvalidInput(
            "Accepting with conditions needs at least one condition.", rule="conditions_required", field="conditions"
        )
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInput(
            f"A decision takes at most {MAX_CONDITIONS} conditions.", rule="too_many_conditions", field="conditions"
        )
    cleaned = [_clean_condition(handover, c, index) for index, c in enumerate(conditions)]
    return _accept(handover, by, kind=DecisionKind.ACCEPTED_WITH_CONDITIONS, note=note, conditions=cleaned)


MAX_CONDITIONS = 50
MAX_ITEMS_PER_CALL = 500


def _clean_condition(handover: Handover, condition: ConditionInput | dict, index: int) -> ConditionInput:
    # A dict comes from a request as given: any of its values may be missing or of the wrong type.
    if isinstance(condition, dict):
        raw_text, owner, due_date = condition.get("text", ""), condition.get("owner"), condition.get("due_date")
    else:
        raw_text, owner, due_date = condition.text, condition.owner, condition.due_date
    field = f"conditions[{index}]"
    text = _text(raw_text, field=f"{field}.text", what="A condition's text", rule="condition_text_required")
    if owner is None or not getattr(owner, "is_active", False):
        raise InvalidInput(
            "A condition needs an active owner.", rule="condition_owner_required", field=f"{field}.owner"
        )
    if not is_participant(handover, owner):
        raise InvalidInput(
            "A condition's owner must take part in the handover (the receiving team, the manager or a member).",
            rule="condition_owner_not_participant",
            field=f"{field}.owner",
        )
    if not isinstance(due_date, date):
        raise InvalidInput("A condition needs a due date.", rule="condition_due_required", field=f"{field}.due_date")
    if due_date < timezone.localdate():
        raise InvalidInput(
            "A condition's due date cannot be in the past.", rule="condition_due_past", field=f"{field}.due_date"
        )
    return ConditionInput(text=text, owner=owner, due_date=due_date)


@transaction.atomic
def handover_return(
    *,
    handover: Handover,
    by,
    reason: str,
    items: Sequence[ChecklistItem | int] = (),
    expected_version: int | None = None,
) -> Handover:
    """The operations owner returns the handover with a reason, usually sending items back to the project."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    _require_decision_possible(handover, by)
    reason = _text(reason, field="reason", what="A reason for returning the handover", rule="reason_required")
    item_ids = {i.pk if isinstance(i, ChecklistItem) else i for i in items}
    if len(item_ids) > MAX_ITEMS_PER_CALL:
        raise InvalidInput(
            f"A return sends back at most {MAX_ITEMS_PER_CALL} items.", rule="too_many_items", field="items"
        )
    sent_back = list(ChecklistItem.objects.select_for_update().filter(handover=handover, pk__in=item_ids))
    if len(sent_back) != len(item_ids):
        raise InvalidInput(
            "Some items are not on this handover's checklist.", rule="item_not_in_handover", field="items"
        )
    for item in sent_back:
        if item.status not in (ItemStatus.DONE, ItemStatus.VERIFIED):
            raise IllegalTransition(
                f"Only done or verified items can be sent back; {item.title!r} is {item.status}.",
                rule="item_transition",
                field="items",
            )
    now = timezone.now()
    sent_back.sort(key=lambda i: (i.position, i.pk))
    _decide(
        handover,
        by,
        DecisionKind.RETURNED,
        now=now,
        reason=reason,
        sent_back=[{"id": i.pk, "title": i.title, "reason": reason} for i in sent_back],
    )
    for item in sent_back:
        item.handover = handover  # the locked instance, so that its version counts every change
    _move_items(sent_back, ItemStatus.OPEN, by=by, now=now, message=reason, sent_back_reason=reason)
    handover.decided_at = now
    handover.return_count += 1
    _move_handover(handover, HandoverStatus.RETURNED, by=by, now=now, message=reason)
    return handover


@transaction.atomic
def handover_start_hypercare(
    *, handover: Handover, by, ends_on: date, exit_criteria: str, expected_version: int | None = None
) -> Handover:
    """Open the early-life-support window after acceptance, with an end date and exit criteria."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    if not is_operations_owner(handover, by):
        raise NotPermitted("Only the operations owner may start hypercare.", rule="owner_only")
    if HandoverStatus.HYPERCARE not in HANDOVER_TRANSITIONS[handover.status]:
        raise IllegalTransition(
            f"Hypercare starts after acceptance; the handover is {handover.status}.", rule="handover_transition"
        )
    now = timezone.now()
    exit_criteria = _require_hypercare_window(ends_on, exit_criteria, now=now, field="ends_on")
    handover.hypercare_started_at = now
    handover.hypercare_ends_on = ends_on
    handover.hypercare_exit_criteria = exit_criteria
    _move_handover(handover, HandoverStatus.HYPERCARE, by=by, now=now)
    return handover


@transaction.atomic
def handover_complete(*, handover: Handover, by, note: str = "", expected_version: int | None = None) -> Handover:
    """End hypercare: operations now runs the result on its own. Open conditions stay open as follow-on actions."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    if not is_operations_owner(handover, by):
        raise NotPermitted("Only the operations owner may complete the handover.", rule="owner_only")
    if handover.status != HandoverStatus.HYPERCARE:
        raise IllegalTransition(
            f"A handover completes at the end of hypercare; this one is {handover.status}.",
            rule="handover_transition",
        )
    now = timezone.now()
    handover.completed_at = now
    note = bounded_text(note, field="note", what="The note")
    _move_handover(handover, HandoverStatus.COMPLETED, by=by, now=now, message=note)
    return handover


@transaction.atomic
def handover_cancel(*, handover: Handover, by, reason: str, expected_version: int | None = None) -> Handover:
    """Withdraw the handover before any acceptance; the project may then plan a new one."""
    handover = _lock(handover)
    _check_version(handover, expected_version)
    if not (is_manager(handover, by) or is_operations_owner(handover, by)):
        raise NotPermitted(
            "Only the project manager or the operations owner may cancel the handover.", rule="participant_only"
        )
    if HandoverStatus.CANCELLED not in HANDOVER_TRANSITIONS[handover.status]:
        raise IllegalTransition(f"A {handover.status} handover cannot be cancelled.", rule="handover_transition")
    reason = _text(reason, field="reason", what="A reason for cancelling", rule="reason_required")
    now = timezone.now()
    handover.cancel_reason = reason
    _move_handover(handover, HandoverStatus.CANCELLED, by=by, now=now, message=reason)
    project_services.project_set_handover_plan(project=handover.project, by=by, planned=False)
    return handover


# ------------------------------------------------------------------------------------------- checklist


# What a status move writes on an item: the status, its stamps and reasons, and the version (read-only in the admin).
ITEM_STATE_FIELDS = (
    "status",
    "status_changed_at",
    "done_by",
    "done_at",
    "verified_by",
    "verified_at",
    "sent_back_reason",
    "waiver_justification",
    "waiver_requested_by",
    "waiver_approved_by",
    "waiver_approved_at",
    "not_applicable_reason",
    "version",
)


_ITEM_STATE_ATTNAMES = tuple(f.attname for f in ChecklistItem._meta.concrete_fields if f.name in ITEM_STATE_FIELDS)


def _move_item(item: ChecklistItem, to: ItemStatus, *, by, now: datetime, message: str = "", **fields) -> ChecklistItem:
    """Change an item's status after checking the item transition table, and write its activity entry."""
    return _move_items([item], to, by=by, now=now, message=message, **fields)[0]


def _move_items(
    items: list[ChecklistItem], to: ItemStatus, *, by, now: datetime, message: str = "", **fields
) -> list[ChecklistItem]:
    """``_move_item`` for items of one handover, in a fixed number of queries however many they are (a return
    sends back up to ``MAX_ITEMS_PER_CALL``): one update of the items, one of the handover, one insert of the
    activity entries and one ``item.updated`` event each."""
    if not items:
        return items
    moves = []
    before = [readiness.item_counts(item) for item in items]
    for item in items:
        if to not in ITEM_TRANSITIONS[item.status]:
            raise IllegalTransition(
                f"An item cannot move from {item.status} to {to}.", rule="item_transition", field="status"
            )
        moves.append((item, item.status))
        item.status = to
        item.status_changed_at = now
        for name, value in fields.items():
            setattr(item, name, value)
        if to == ItemStatus.OPEN:
            item.done_by = item.done_at = item.verified_by = item.verified_at = None
            item.waiver_justification = item.not_applicable_reason = ""
            item.waiver_requested_by = item.waiver_approved_by = item.waiver_approved_at = None
        item.version += 1
    if len(items) == 1:
        # The common case, one item: a plain UPDATE. bulk_update's CASE per field costs several times more to build.
        [item] = items
        ChecklistItem.objects.filter(pk=item.pk).update(**{name: getattr(item, name) for name in _ITEM_STATE_ATTNAMES})
    else:
        ChecklistItem.objects.bulk_update(items, ITEM_STATE_FIELDS)
    handover = items[0].handover
    _record_all(
        handover,
        [
            Activity(
                handover=handover,
                item=item,
                verb=ActivityVerb.ITEM_STATUS_CHANGED,
                actor=by,
                from_state=from_state,
                to_state=to,
                message=message,
                created_at=now,
            )
            for item, from_state in moves
        ],
        now=now,
        counts=readiness.delta(before, map(readiness.item_counts, items)),
    )
    webhooks.emit_many(
        EventType.ITEM_UPDATED,
        [
            (
                _item_event(item, by, {"from": from_state, "to": to, "message": message}),
                handover.pk,
                None,
                handover.project.confidential,
            )
            for item, from_state in moves
        ],
        now=now,
    )
    return items


def _evidence(item: ChecklistItem, by, *, url: str, text: str, now: datetime) -> Evidence | None:
    url, text = (url or "").strip(), (text or "").strip()
    if not (url or text):
        return None
    evidence = Evidence(item=item, url=url, text=text, added_by=by, added_at=now)
    clean_or_raise(evidence, exclude=["item", "added_by"])
    evidence.save()
    _record(item.handover, by, ActivityVerb.EVIDENCE_ADDED, now=now, item=item, data={"url": url, "text": text[:200]})
    return evidence


@transaction.atomic
def item_complete(
    *,
    item: ChecklistItem,
    by,
    evidence_url: str = "",
    evidence_text: str = "",
    expected_version: int | None = None,
) -> ChecklistItem:
    """The responsible side marks the item done, with evidence (a link or a note) unless it already has some."""
    item = _lock_item(item)
    _check_version(item, expected_version)
    handover = item.handover
    if not can_work_item(item, by):
        side = "the project manager or the assignee" if item.side == Side.PROJECT else "the operations team"
        raise NotPermitted(f"This {item.side}-side item is completed by {side}.", rule="responsible_side_only")
    if item.status != ItemStatus.OPEN:
        raise IllegalTransition(
            f"Only an open item can be completed; this one is {item.status}.", rule="item_transition"
        )
    if not (evidence_url or evidence_text or "").strip() and not item.evidence.exists():
        raise InvalidInput(
            "Completing an item needs evidence: a link or a note.", rule="evidence_required", field="evidence"
        )
    now = timezone.now()
    if item.side == Side.PROJECT:
        _require_project_side_can_act(handover, by, now=now)
    else:
        _require_open(handover, "complete an item")
    _evidence(item, by, url=evidence_url, text=evidence_text, now=now)
    return _move_item(item, ItemStatus.DONE, by=by, now=now, done_by=by, done_at=now, sent_back_reason="")


@transaction.atomic
def item_verify(*, item: ChecklistItem, by, note: str = "", expected_version: int | None = None) -> ChecklistItem:
    """Operations confirms a done item. Nobody verifies their own work."""
    item = _lock_item(item)
    _check_version(item, expected_version)
    if not can_verify_item(item, by):
        raise NotPermitted(
            "Items are verified by the operations owner (operations-side items also by the team).",
            rule="operations_only",
        )
    if item.status != ItemStatus.DONE:
        raise IllegalTransition(f"Only a done item can be verified; this one is {item.status}.", rule="item_transition")
    if item.done_by_id == by.pk:
        raise NotPermitted("Someone other than the person who completed the item must verify it.", rule="four_eyes")
    _require_open(item.handover, "verify an item")
    now = timezone.now()
    return _move_item(
        item,
        ItemStatus.VERIFIED,
        by=by,
        now=now,
        message=bounded_text(note, field="note", what="The note"),
        verified_by=by,
        verified_at=now,
    )


@transaction.atomic
def item_send_back(*, item: ChecklistItem, by, reason: str, expected_version: int | None = None) -> ChecklistItem:
    """Operations sends a done item back to open, saying what is missing."""
    item = _lock_item(item)
    _check_version(item, expected_version)
    if not can_verify_item(item, by):
        raise NotPermitted("Only the operations side may send an item back.", rule="operations_only")
    if item.status != ItemStatus.DONE:
        raise IllegalTransition(
            f"Only a done item can be sent back; this one is {item.status}.", rule="item_transition"
        )
    _require_open(item.handover, "send an item back")
    reason = _text(reason, field="reason", what="A reason for sending the item back", rule="reason_required")
    return _move_item(item, ItemStatus.OPEN, by=by, now=timezone.now(), message=reason, sent_back_reason=reason)


@transaction.atomic
def item_waive(*, item: ChecklistItem, by, justification: str, expected_version: int | None = None) -> ChecklistItem:
    """Waive an item with a justification.

    Waived by the operations owner, the waiver is approved at once; asked for by the project manager, it waits for
    the operations owner's approval (``item_approve_waiver``): it counts for submitting, not for accepting.
    """
    item = _lock_item(item)
    _check_version(item, expected_version)
    handover = item.handover
    owner, manager = is_operations_owner(handover, by), is_manager(handover, by)
    if not (owner or manager):
        raise NotPermitted(
            "Only the project manager or the operations owner may waive an item.", rule="participant_only"
        )
    if ItemStatus.WAIVED not in ITEM_TRANSITIONS[item.status]:
        raise IllegalTransition(f"A {item.status} item cannot be waived.", rule="item_transition")
    justification = _text(
        justification, field="justification", what="A justification for the waiver", rule="justification_required"
    )
    now = timezone.now()
    if owner:
        _require_open(handover, "waive an item")
    else:
        _require_project_side_can_act(handover, by, now=now)
    return _move_item(
        item,
        ItemStatus.WAIVED,
        by=by,
        now=now,
        message=justification,
        waiver_justification=justification,
        waiver_requested_by=by,
        waiver_approved_by=by if owner else None,
        waiver_approved_at=now if owner else None,
    )


@transaction.atomic
def item_approve_waiver(*, item: ChecklistItem, by, expected_version: int | None = None) -> ChecklistItem:
    """The operations owner approves a waiver the project side asked for."""
    item = _lock_item(item)
    _check_version(item, expected_version)
    if not is_operations_owner(item.handover, by):
        raise NotPermitted("Only the operations owner may approve a waiver.", rule="owner_only")
    if item.status != ItemStatus.WAIVED or item.waiver_approved_by_id is not None:
        raise IllegalTransition("Only a waiver waiting for approval can be approved.", rule="waiver_not_pending")
    _require_open(item.handover, "approve a waiver")
    now = timezone.now()
    before = readiness.item_counts(item)
    item.waiver_approved_by, item.waiver_approved_at = by, now
    item.version += 1
    item.save(update_fields=["waiver_approved_by", "waiver_approved_at", "version"])
    _record(
        item.handover,
        by,
        ActivityVerb.WAIVER_APPROVED,
        now=now,
        item=item,
        message=item.waiver_justification,
        counts=readiness.delta([before], [readiness.item_counts(item)]),
    )
    _item_changed(item, by, now, {"waiver_approved": True})
    return item


@transaction.atomic
def item_mark_not_applicable(
    *, item: ChecklistItem, by, reason: str, expected_version: int | None = None
) -> ChecklistItem:
    """Declare that the item does not apply to this handover; readiness shows it apart, never as met."""
    item = _lock_item(item)
    _check_version(item, expected_version)
    handover = item.handover
    owner, manager = is_operations_owner(handover, by), is_manager(handover, by)
    if not (owner or manager):
        raise NotPermitted(
            "Only the project manager or the operations owner may mark an item not applicable.",
            rule="participant_only",
        )
    if ItemStatus.NOT_APPLICABLE not in ITEM_TRANSITIONS[item.status]:
        raise IllegalTransition(f"A {item.status} item cannot be marked not applicable.", rule="item_transition")
    reason = _text(reason, field="reason", what="A reason for not applicable", rule="reason_required")
    now = timezone.now()
    if owner:
        _require_open(handover, "mark an item not applicable")
    else:
        _require_project_side_can_act(handover, by, now=now)
    return _move_item(item, ItemStatus.NOT_APPLICABLE, by=by, now=now, message=reason, not_applicable_reason=reason)


@transaction.atomic
def item_reopen(*, item: ChecklistItem, by, reason: str = "", expected_version: int | None = None) -> ChecklistItem:
    """Put an item back to open.

    * The operations owner may reopen any item. Reopening done work sends it back and undoing a verification
      takes it back: both need a reason, as ``item_send_back`` does.
    * The operations team takes back its own operations-side done item (the project side is not involved).
    * The project side takes back its own done item, and the manager any waiver or not-applicable; neither
      undoes a verification. A returned handover resumes preparing, as with every project-side change.
    """
    item = _lock_item(item)
    _check_version(item, expected_version)
    handover = item.handover
    if item.status == ItemStatus.OPEN:
        raise IllegalTransition("The item is already open.", rule="item_transition")
    now = timezone.now()
    message = (reason or "").strip()
    fields = {}
    if is_operations_owner(handover, by):
        _require_open(handover, "reopen an item")
        if item.status in (ItemStatus.DONE, ItemStatus.VERIFIED):
            message = _text(reason, field="reason", what="A reason for reopening done work", rule="reason_required")
            fields["sent_back_reason"] = message
    elif item.status == ItemStatus.VERIFIED:
        raise NotPermitted("Only the operations owner may undo a verification.", rule="owner_only")
    elif item.side == Side.OPERATIONS and item.status == ItemStatus.DONE and can_work_item(item, by):
        _require_open(handover, "reopen an item")
    elif (item.side == Side.PROJECT and item.status == ItemStatus.DONE and can_work_item(item, by)) or (
        item.status in (ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE) and is_manager(handover, by)
    ):
        _require_project_side_can_act(handover, by, now=now)
    else:
        raise NotPermitted(
            "Only the item's responsible side, the project manager or the operations owner may reopen it.",
            rule="participant_only",
        )
    message = bounded_text(message, field="reason", what="The reason")
    return _move_item(item, ItemStatus.OPEN, by=by, now=now, message=message, **fields)


def _require_assignee_participant(handover: Handover, assignee) -> None:
    if assignee is not None and not is_participant(handover, assignee):
        raise InvalidInput(
            "The assignee must take part in the handover (project member, manager or receiving team).",
            rule="assignee_not_participant",
            field="assignee",
        )


ITEM_EDITABLE = ("title", "guidance", "assignee", "due_date", "mandatory", "risk", "side")


@transaction.atomic
def item_update(*, item: ChecklistItem, by, expected_version: int | None = None, **changes) -> ChecklistItem:
    """Plan an item: assignee and due date (manager or owner); wording, risk, side and mandatory (owner only,
    since they change what operations will accept)."""
    item = _lock_item(item)
    _check_version(item, expected_version)
    handover = item.handover
    owner, manager = is_operations_owner(handover, by), is_manager(handover, by)
    if not (owner or manager):
        raise NotPermitted(
            "Only the project manager or the operations owner may edit an item.", rule="participant_only"
        )
    owner_only = set(changes) & {"title", "mandatory", "risk", "side"}
    if owner_only and not owner:
        raise NotPermitted(
            f"Only the operations owner may change an item's {', '.join(sorted(owner_only))}.", rule="owner_only"
        )
    _require_assignee_participant(handover, changes.get("assignee"))
    before = readiness.item_counts(item)
    diff = apply_changes(item, changes, allowed=ITEM_EDITABLE)
    if not diff:
        return item
    clean_or_raise(item, exclude=["handover"])
    now = timezone.now()
    _require_can_edit(handover, by, owner=owner, now=now, what="edit an item")
    item.version += 1
    item.save(update_fields=[*diff, "version"])
    counts = readiness.delta([before], [readiness.item_counts(item)])  # a change of risk or of mandatory
    _record(handover, by, ActivityVerb.ITEM_UPDATED, now=now, item=item, data={"changes": diff}, counts=counts)
    _item_changed(item, by, now, {"changes": diff})
    return item


@transaction.atomic
def item_add(
    *,
    handover: Handover,
    by,
    title: str,
    risk: str,
    side: str = Side.PROJECT,
    mandatory: bool = True,
    guidance: str = "",
    assignee=None,
    due_date: date | None = None,
) -> ChecklistItem:
    """Add an item the template did not have: the operations owner while the checklist is open, the manager while
    the project side may act (not while submitted)."""
    handover = _lock(handover)
    owner = is_operations_owner(handover, by)
    if not (owner or is_manager(handover, by)):
        raise NotPermitted("Only the project manager or the operations owner may add items.", rule="participant_only")
    now = timezone.now()
    _require_can_edit(handover, by, owner=owner, now=now, what="add an item")
    if risk not in Risk.values:
        raise InvalidInput(f"risk must be one of {', '.join(Risk.values)}.", rule="invalid_choice", field="risk")
    _require_assignee_participant(handover, assignee)
    last = handover.items.order_by("-position").values_list("position", flat=True).first() or 0
    item = ChecklistItem(
        handover=handover,
        title=(title or "").strip(),
        risk=risk,
        side=side,
        mandatory=mandatory,
        guidance=guidance,
        assignee=assignee,
        due_date=due_date,
        position=last + 1,
    )
    clean_or_raise(item, exclude=["handover"])
    item.save()
    _record(
        handover,
        by,
        ActivityVerb.ITEM_ADDED,
        now=now,
        item=item,
        to_state=item.status,
        counts=readiness.item_counts(item),
    )
    return item


@transaction.atomic
def evidence_add(*, item: ChecklistItem, by, url: str = "", text: str = "") -> Evidence:
    """Attach a link or a note to an item; those who may complete or verify it may add evidence."""
    item = _lock_item(item)
    verifier = can_verify_item(item, by)
    if not (verifier or can_work_item(item, by)):
        raise NotPermitted("Only those who work or verify this item may add evidence.", rule="participant_only")
    if not ((url or "").strip() or (text or "").strip()):
        raise InvalidInput("Evidence needs a link or a note.", rule="evidence_required", field="url")
    now = timezone.now()
    # Evidence is a project-side change like any other: not while operations decides, and it resumes a return.
    _require_can_edit(item.handover, by, owner=verifier, now=now, what="add evidence")
    evidence = _evidence(item, by, url=url, text=text, now=now)
    assert evidence is not None
    return evidence


@transaction.atomic
def comment_add(*, handover: Handover, by, body: str, item: ChecklistItem | None = None) -> Comment:
    """Comment on a handover or one of its items; any participant may, at any time."""
    handover = _lock(handover)
    if not is_participant(handover, by):
        raise NotPermitted("Only participants of the handover may comment.", rule="participant_only")
    if item is not None and item.handover_id != handover.pk:
        raise InvalidInput("The item is not on this handover's checklist.", rule="item_not_in_handover", field="item")
    body = _text(body, field="body", what="A comment", rule="body_required")
    now = timezone.now()
    comment = Comment.objects.create(handover=handover, item=item, author=by, body=body, created_at=now)
    _record(handover, by, ActivityVerb.COMMENTED, now=now, item=item, message=body[:500])
    return comment


@transaction.atomic
def condition_mark_met(*, condition: Condition, by, note: str = "") -> Condition:
    """The condition's owner or the operations owner records that a condition is met."""
    handover = _lock(condition.handover)
    condition = Condition.objects.select_for_update().get(pk=condition.pk)
    if not (condition.owner_id == by.pk or is_operations_owner(handover, by)):
        raise NotPermitted(
            "Only the condition's owner or the operations owner may mark it met.", rule="condition_owner_only"
        )
    if condition.status != ConditionStatus.OPEN:
        raise IllegalTransition("The condition is already met.", rule="condition_met")
    now = timezone.now()
    condition.status, condition.met_by, condition.met_at = ConditionStatus.MET, by, now
    condition.met_note = bounded_text(note, field="note", what="The note")
    condition.save(update_fields=["status", "met_by", "met_at", "met_note"])
    _record(
        handover,
        by,
        ActivityVerb.CONDITION_MET,
        now=now,
        from_state=ConditionStatus.OPEN,
        to_state=ConditionStatus.MET,
        message=condition.text[:500],
        data={"condition": condition.pk},
    )
    return condition


# ------------------------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class TemplateItemSpec:
    """One item of a template definition (see ``handover.checklists``)."""

    key: str
    title: str
    risk: str
    side: str = Side.PROJECT
    mandatory: bool = True
    guidance: str = ""


def _item_signature(key, title, risk, side, mandatory, guidance) -> tuple:
    return (key, title, risk, side, mandatory, guidance)


@transaction.atomic
def template_install(
    *, kind: str, name: str, description: str, items: Sequence[TemplateItemSpec], by=None
) -> tuple[ChecklistTemplate, bool]:
    """Install a template definition idempotently; returns the current template and whether anything changed.

    Unchanged: nothing is written. Changed: a new version is created and the previous one deactivated, so that
    ``Handover.template_version`` keeps pointing at what the handover was really built from. ``by`` is who asked
    (``None``: the system, as ``load_templates``), for the audit.
    """
    keys = [spec.key for spec in items]
    if len(keys) != len(set(keys)):
        raise InvalidInput(f"Template {name!r} repeats an item key.", rule="duplicate_item_key", field="items")
    current = ChecklistTemplate.objects.select_for_update().filter(name=name).order_by("-version").first()
    wanted = [_item_signature(s.key, s.title, s.risk, s.side, s.mandatory, s.guidance) for s in items]
    if current is not None:
        existing = [
            _item_signature(*row)
            for row in current.items.order_by("position").values_list(
                "key", "title", "risk", "side", "mandatory", "guidance"
            )
        ]
        if existing == wanted and current.kind == kind and current.description == description:
            return current, False
        ChecklistTemplate.objects.filter(name=name, is_active=True).update(is_active=False)
    template = ChecklistTemplate.objects.create(
        kind=kind, name=name, description=description, version=(current.version + 1) if current else 1
    )
    for position, spec in enumerate(items, start=1):
        item = TemplateItem(
            template=template,
            key=spec.key,
            title=spec.title,
            risk=spec.risk,
            side=spec.side,
            mandatory=spec.mandatory,
            guidance=spec.guidance,
            position=position,
        )
        clean_or_raise(item, exclude=["template"])
        item.save()
    if current is None:
        admin_event(AdminEventKind.TEMPLATE_CREATED, by=by, subject=str(template), object_id=template.pk)
    else:
        admin_event(
            AdminEventKind.TEMPLATE_VERSIONED,
            by=by,
            subject=str(template),
            object_id=template.pk,
            changes={"version": [current.version, template.version], "items": len(items)},
        )
    return template, True


@transaction.atomic
def template_update(
    *, template: ChecklistTemplate, by, description: str | None = None, is_active: bool | None = None, items=None
) -> ChecklistTemplate:
    """An administrator edits a template: new items or description make a new version; live handovers keep theirs."""
    if not by.is_staff:
        raise NotPermitted("Only an administrator may edit checklist templates.", rule="admin_only")
    template = ChecklistTemplate.objects.select_for_update().get(pk=template.pk)
    changes_content = items is not None or (description is not None and description != template.description)
    if changes_content and ChecklistTemplate.objects.filter(name=template.name, version__gt=template.version).exists():
        raise IllegalTransition(
            f"Version {template.version} of {template.name!r} is not the latest; edit the latest version.",
            rule="template_not_latest",
        )
    if changes_content:
        specs = items
        if specs is None:
            specs = [
                TemplateItemSpec(i.key, i.title, i.risk, i.side, i.mandatory, i.guidance) for i in template.items.all()
            ]
        template, _ = template_install(
            kind=template.kind,
            name=template.name,
            description=template.description if description is None else description,
            items=specs,
            by=by,
        )
    if is_active is not None and template.is_active != is_active:
        template.is_active = is_active
        template.save(update_fields=["is_active", "updated_at"])
        kind = AdminEventKind.TEMPLATE_ACTIVATED if is_active else AdminEventKind.TEMPLATE_DEACTIVATED
        admin_event(
            kind, by=by, subject=str(template), object_id=template.pk, changes={"is_active": [not is_active, is_active]}
        )
    return template


def template_create(
    *, by, kind: str, name: str, items: Sequence[TemplateItemSpec], description: str = ""
) -> ChecklistTemplate:
    """An administrator defines a new checklist template (version 1)."""
    if not by.is_staff:
        raise NotPermitted("Only an administrator may create checklist templates.", rule="admin_only")
    name = _text(name, field="name", what="A template name", rule="name_required")
    if ChecklistTemplate.objects.filter(name=name).exists():
        raise InvalidInput(
            "A template with this name exists; edit it to make a new version.", rule="name_taken", field="name"
        )
    template, _ = template_install(kind=kind, name=name, description=description, items=items, by=by)
    return template


# ------------------------------------------------------------------------------------------------ readiness


@transaction.atomic
def readiness_repair(*, by=None, via: str, handover_ids: Sequence[int] | None = None) -> list[readiness.Drift]:
    """Set the stored readiness counters that drifted from the items (of ``handover_ids``, or every handover) back
    to what the items say, in one set-based UPDATE, and audit it: who (``by``, or the system ``via`` a command), the
    handovers and each counter's stored and counted value. Returns the drift found (nothing written without)."""
    found = readiness.drift(handover_ids)
    if not found:
        return found
    readiness.recount([d.handover_id for d in found])
    admin_event(
        AdminEventKind.READINESS_REPAIRED,
        by=by,
        subject=f"Stored readiness of {len(found)} handover(s) repaired from their items",
        object_id=found[0].handover_id if len(found) == 1 else None,
        changes={
            "via": via,
            "handovers": {
                str(d.handover_id): {
                    "project": d.project_code,
                    **{name: list(values) for name, values in d.fields.items()},
                }
                for d in found[:REPAIR_AUDIT_LIMIT]
            },
            "count": len(found),
        },
    )
    return found


# The audit entry names at most this many repaired handovers (with each counter's values); ``count`` says how many.
REPAIR_AUDIT_LIMIT = 500
