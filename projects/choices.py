from django.db import models


class Stage(models.TextChoices):
    """Lifecycle stage of a project.

    Legal moves (``STAGE_TRANSITIONS``), performed only by ``projects.services.project_transition``:

    * forward, one stage at a time: initiation → planning → execution → monitoring → closure → closed;
    * back one stage (rework), with a reason: planning → initiation, ..., closure → monitoring;
    * cancelled, with a reason, from any stage before closed.

    ``closed`` and ``cancelled`` are final. Gates: leaving initiation needs a manager and a receiving operations
    team; leaving planning needs a handover plan; entering closed needs the handover accepted.
    """

    INITIATION = "initiation", "Initiation"
    PLANNING = "planning", "Planning"
    EXECUTION = "execution", "Execution"
    MONITORING = "monitoring", "Monitoring"
    CLOSURE = "closure", "Closure"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


STAGE_ORDER: list[Stage] = [
    Stage.INITIATION,
    Stage.PLANNING,
    Stage.EXECUTION,
    Stage.MONITORING,
    Stage.CLOSURE,
    Stage.CLOSED,
]

FINAL_STAGES = frozenset({Stage.CLOSED, Stage.CANCELLED})


class MoveKind(models.TextChoices):
    """How a stage move relates to the lifecycle order."""

    FORWARD = "forward", "Forward"
    BACK = "back", "Back (rework)"
    CANCEL = "cancel", "Cancel"


def _transitions() -> dict[Stage, dict[Stage, MoveKind]]:
    table: dict[Stage, dict[Stage, MoveKind]] = {stage: {} for stage in Stage}
    for index, stage in enumerate(STAGE_ORDER[:-1]):
        table[stage][STAGE_ORDER[index + 1]] = MoveKind.FORWARD
        if index > 0:
            table[stage][STAGE_ORDER[index - 1]] = MoveKind.BACK
        table[stage][Stage.CANCELLED] = MoveKind.CANCEL
    return table


# from-stage → {to-stage: kind of move}. Anything not listed is refused.
STAGE_TRANSITIONS: dict[Stage, dict[Stage, MoveKind]] = _transitions()


class ProjectEventKind(models.TextChoices):
    """What a project history row records."""

    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    STAGE_CHANGED = "stage_changed", "Stage changed"
    MEMBER_ADDED = "member_added", "Member added"
    MEMBER_REMOVED = "member_removed", "Member removed"
    HANDOVER_PLANNED = "handover_planned", "Handover planned"
    HANDOVER_PLAN_WITHDRAWN = "handover_plan_withdrawn", "Handover plan withdrawn"
    HANDOVER_ACCEPTED = "handover_accepted", "Handover accepted"
