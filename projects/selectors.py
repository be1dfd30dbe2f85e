"""Reads about projects that are more than a filter."""

from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from config.errors import DomainError

from .choices import FINAL_STAGES, STAGE_TRANSITIONS, MoveKind, Stage
from .models import Project
from .services import transition_problem


@dataclass(frozen=True)
class StageMove:
    """A move the project could make, and what (if anything) blocks it for this user."""

    to: Stage
    kind: MoveKind
    blocked_by: DomainError | None

    @property
    def needs_reason(self) -> bool:
        return self.kind in (MoveKind.BACK, MoveKind.CANCEL)


def project_moves(project: Project, user) -> list[StageMove]:
    """Every move the lifecycle table allows from the project's stage, with the gate or role that blocks it.

    A reason is assumed to be given: it is asked for when the move is made, not a gate.
    """
    return [
        StageMove(to=to, kind=kind, blocked_by=transition_problem(project, to, by=user, reason="given"))
        for to, kind in STAGE_TRANSITIONS[Stage(project.stage)].items()
    ]


def project_success(project: Project) -> dict:
    """The project's success measures, derived from its data (docs/domain.md "Project lifecycle")."""
    on_time = None
    if project.actual_handover and project.planned_handover:
        on_time = project.actual_handover <= project.planned_handover
    return {
        "planned_handover": project.planned_handover,
        "actual_handover": project.actual_handover,
        "on_time": on_time,
    }


def overdue_q(today: date | None = None) -> Q:
    """``project_is_overdue`` as a filter."""
    today = today or timezone.localdate()
    return Q(planned_handover__lt=today, actual_handover__isnull=True) & ~Q(stage__in=FINAL_STAGES)


def project_is_overdue(project: Project, today: date | None = None) -> bool:
    """Its planned handover date has passed with no handover accepted, and the project is still running."""
    today = today or timezone.localdate()
    return bool(
        not project.is_final
        and project.actual_handover is None
        and project.planned_handover is not None
        and project.planned_handover < today
    )


def managers_of(projects: QuerySet[Project]):
    """The people who manage any of ``projects``, by name: one query (bounded by the users, not the projects)."""
    return (
        get_user_model()
        .objects.filter(pk__in=projects.exclude(manager=None).values("manager_id"))
        .order_by("first_name", "last_name", "username")
    )
