"""Reads about operations teams that are more than a filter: who holds which role."""

from django.db.models import QuerySet

from .models import Kpi, KpiReading, OperationsTeam


def is_team_lead(team: OperationsTeam | None, user) -> bool:
    return bool(team and user.is_authenticated and team.lead_id == user.pk)


def is_team_member(team: OperationsTeam | None, user) -> bool:
    """Lead or member of ``team``."""
    if team is None or not user.is_authenticated:
        return False
    return is_team_lead(team, user) or team.members.filter(pk=user.pk).exists()


def teams_of(user) -> QuerySet[OperationsTeam]:
    """Teams ``user`` leads or belongs to."""
    return OperationsTeam.objects.filter(pk__in=_team_ids(user))


def _team_ids(user) -> list[int]:
    if not user.is_authenticated:
        return []
    led = OperationsTeam.objects.filter(lead=user).values_list("pk", flat=True)
    member = OperationsTeam.members.through.objects.filter(user=user).values_list("operationsteam_id", flat=True)
    return sorted(set(led) | set(member))


def kpi_latest_reading(kpi: Kpi) -> KpiReading | None:
    return kpi.readings.order_by("-measured_at", "-id").first()
