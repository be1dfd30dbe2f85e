"""Every write to operations teams, services and KPIs, with its rules and its audit row."""

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from config.errors import InvalidInput, NotPermitted
from config.validation import apply_changes, clean_or_raise

from .choices import OperationsEventKind
from .models import Kpi, KpiReading, OperationsEvent, OperationsTeam, Service
from .selectors import is_team_lead, is_team_member

User = get_user_model()

TEAM_FIELDS = (
    "name",
    "description",
    "lead",
    "idle_days",
    "review_overdue_days",
    "verification_waiting_days",
    "past_target_days",
    "conditions_overdue_days",
    "adoption_below_target_days",
    "escalation_days",
)
SERVICE_FIELDS = ("name", "description", "is_active")
KPI_FIELDS = ("name", "unit", "direction", "baseline", "target", "review_date", "is_adoption")


def _require_admin(by, what: str) -> None:
    if not by.is_staff:
        raise NotPermitted(f"Only an administrator may {what}.", rule="admin_only")


def _require_team_manager(team: OperationsTeam, by, what: str) -> None:
    """The team's lead or an administrator."""
    if not (by.is_staff or is_team_lead(team, by)):
        raise NotPermitted(f"Only the team lead or an administrator may {what}.", rule="team_lead_only")


def _lock_team(team: OperationsTeam) -> OperationsTeam:
    """Lock and re-read the team, so that role checks see its current lead."""
    return OperationsTeam.objects.select_for_update().get(pk=team.pk)


def _audit(team: OperationsTeam, by, kind: OperationsEventKind, subject: str, changes: dict | None = None) -> None:
    OperationsEvent.objects.create(team=team, kind=kind, actor=by, subject=subject, changes=changes or {})


@transaction.atomic
def team_create(*, by, name: str, lead=None, description: str = "", members=(), **thresholds) -> OperationsTeam:
    _require_admin(by, "create an operations team")
    team = OperationsTeam(name=(name or "").strip(), description=description, lead=lead)
    apply_changes(team, thresholds, allowed=TEAM_FIELDS)
    clean_or_raise(team)
    team.save()
    if members:
        team.members.add(*members)
    _audit(team, by, OperationsEventKind.TEAM_CREATED, team.name, {"members": [m.pk for m in members]})
    return team


@transaction.atomic
def team_update(*, team: OperationsTeam, by, **changes) -> OperationsTeam:
    team = _lock_team(team)
    _require_team_manager(team, by, "change the team")
    if "lead" in changes and not by.is_staff:
        raise NotPermitted("Only an administrator may change a team's lead.", rule="admin_only")
    diff = apply_changes(team, changes, allowed=TEAM_FIELDS)
    if diff:
        clean_or_raise(team)
        team.save()
        _audit(team, by, OperationsEventKind.TEAM_UPDATED, team.name, diff)
    return team


@transaction.atomic
def team_add_member(*, team: OperationsTeam, by, user) -> None:
    team.__dict__.pop("_member_memo", None)  # selectors.is_team_member's answers for the caller's instance
    team = _lock_team(team)
    _require_team_manager(team, by, "add team members")
    if not team.members.filter(pk=user.pk).exists():
        team.members.add(user)
        _audit(team, by, OperationsEventKind.MEMBER_ADDED, user.get_username())


@transaction.atomic
def team_remove_member(*, team: OperationsTeam, by, user) -> None:
    team.__dict__.pop("_member_memo", None)  # selectors.is_team_member's answers for the caller's instance
    team = _lock_team(team)
    _require_team_manager(team, by, "remove team members")
    if team.members.filter(pk=user.pk).exists():
        team.members.remove(user)
        _audit(team, by, OperationsEventKind.MEMBER_REMOVED, user.get_username())


@transaction.atomic
def service_create(*, team: OperationsTeam, by, name: str, description: str = "") -> Service:
    _require_team_manager(team, by, "add a service")
    service = Service(team=team, name=(name or "").strip(), description=description)
    clean_or_raise(service)
    service.save()
    _audit(team, by, OperationsEventKind.SERVICE_CREATED, service.name)
    return service


@transaction.atomic
def service_update(*, service: Service, by, **changes) -> Service:
    _require_team_manager(service.team, by, "change a service")
    service = Service.objects.select_for_update().get(pk=service.pk)
    diff = apply_changes(service, changes, allowed=SERVICE_FIELDS)
    if diff:
        clean_or_raise(service)
        service.save()
        _audit(service.team, by, OperationsEventKind.SERVICE_UPDATED, service.name, diff)
    return service


@transaction.atomic
def kpi_create(*, service: Service, by, name: str, target, **fields) -> Kpi:
    _require_team_manager(service.team, by, "define a KPI")
    kpi = Kpi(service=service, name=(name or "").strip(), target=_decimal(target, "target"))
    for field in ("baseline",):
        if field in fields and fields[field] is not None:
            fields[field] = _decimal(fields[field], field)
    apply_changes(kpi, fields, allowed=KPI_FIELDS)
    clean_or_raise(kpi)
    kpi.save()
    _audit(service.team, by, OperationsEventKind.KPI_CREATED, f"{service.name}: {kpi.name}")
    return kpi


@transaction.atomic
def kpi_update(*, kpi: Kpi, by, **changes) -> Kpi:
    team = kpi.service.team
    _require_team_manager(team, by, "change a KPI")
    kpi = Kpi.objects.select_for_update().get(pk=kpi.pk)
    for field in ("baseline", "target"):
        if changes.get(field) is not None:
            changes[field] = _decimal(changes[field], field)
    diff = apply_changes(kpi, changes, allowed=KPI_FIELDS)
    if diff:
        clean_or_raise(kpi)
        kpi.save()
        _audit(team, by, OperationsEventKind.KPI_UPDATED, f"{kpi.service.name}: {kpi.name}", diff)
    return kpi


def kpi_reading_add(*, kpi: Kpi, by, value, measured_at: datetime | None = None, note: str = "") -> KpiReading:
    """Record a measured value; any member of the service's team (or a tool acting as one) may post it."""
    if not (by.is_staff or is_team_member(kpi.service.team, by)):
        raise NotPermitted(
            "Only members of the operations team that runs the service may post KPI readings.",
            rule="team_member_only",
        )
    now = timezone.now()
    measured_at = measured_at or now
    if measured_at > now + timedelta(minutes=5):
        raise InvalidInput("A reading cannot be measured in the future.", rule="reading_in_future", field="measured_at")
    reading = KpiReading(kpi=kpi, value=_decimal(value, "value"), measured_at=measured_at, note=note, recorded_by=by)
    clean_or_raise(reading, exclude=["kpi", "recorded_by"])
    reading.save()
    return reading


def _decimal(value, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidInput(f"{field} must be a number.", rule="not_a_number", field=field) from None
    if not number.is_finite():
        raise InvalidInput(f"{field} must be a finite number.", rule="not_a_number", field=field)
    return number


@transaction.atomic
def team_set_members(*, team: OperationsTeam, by, members) -> None:
    """Make the team's membership exactly ``members``, auditing each addition and removal."""
    team.__dict__.pop("_member_memo", None)  # selectors.is_team_member's answers for the caller's instance
    team = _lock_team(team)
    _require_team_manager(team, by, "change team members")
    wanted = {user.pk: user for user in members}
    current = {user.pk: user for user in team.members.all()}
    for pk in wanted.keys() - current.keys():
        team.members.add(wanted[pk])
        _audit(team, by, OperationsEventKind.MEMBER_ADDED, wanted[pk].get_username())
    for pk in current.keys() - wanted.keys():
        team.members.remove(current[pk])
        _audit(team, by, OperationsEventKind.MEMBER_REMOVED, current[pk].get_username())
