"""Reads about operations teams that are more than a filter: who holds which role."""

from django.db.models import QuerySet

from .models import Kpi, KpiReading, OperationsTeam


def is_team_lead(team: OperationsTeam | None, user) -> bool:
    return bool(team and user.is_authenticated and team.lead_id == user.pk)


def is_team_member(team: OperationsTeam | None, user) -> bool:
    """Lead or member of ``team``.

    Role checks ask this many times per page or service call; the answer is kept on the team instance (one
    query per team and user), which lives no longer than the request or transaction that loaded it.
    """
    if team is None or not user.is_authenticated:
        return False
    if is_team_lead(team, user):
        return True
    memo = team.__dict__.setdefault("_member_memo", {})
    if user.pk not in memo:
        prefetched = getattr(team, "_prefetched_objects_cache", {}).get("members")
        if prefetched is not None:
            memo[user.pk] = any(member.pk == user.pk for member in prefetched)
        else:
            memo[user.pk] = team.members.filter(pk=user.pk).exists()
    return memo[user.pk]


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
