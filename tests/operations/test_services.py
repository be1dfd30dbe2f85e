"""operations.services and models: teams, services, KPIs and readings (docs/domain.md "Operations"), each audited.

Every refusal is checked to have written nothing: no OperationsEvent row, and the rows it would have changed as before.
"""

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from config.errors import InvalidInput, NotPermitted
from operations import services
from operations.choices import KpiDirection, OperationsEventKind, StallRule
from operations.models import Kpi, KpiReading, OperationsEvent, OperationsTeam, Service
from tests.factories import KpiFactory, ServiceFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
NOT_NUMBERS = ["eighty", "", "1,5", None, "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", float("nan")]
NOT_NUMBERS_WITHOUT_NONE = [value for value in NOT_NUMBERS if value is not None]


@pytest.fixture
def service(team):
    return ServiceFactory(team=team, name="CRM platform")


@pytest.fixture
def kpi(service):
    return KpiFactory(service=service, name="Weekly active users", unit="%", baseline=20, target=80)


@pytest.fixture
def outsider(db):
    """A signed-in user who leads another team: no role in ``team``."""
    return TeamFactory(name="Facilities").lead


def _snapshot() -> dict:
    return {
        "events": OperationsEvent.objects.count(),
        "teams": list(OperationsTeam.objects.values()),
        "members": sorted(OperationsTeam.members.through.objects.values_list("operationsteam_id", "user_id")),
        "services": list(Service.objects.values()),
        "kpis": list(Kpi.objects.values()),
        "readings": KpiReading.objects.count(),
    }


@contextmanager
def nothing_written():
    """Wrap a refused call: teams, members, services, KPIs, readings and the audit are the same afterwards."""
    before = _snapshot()
    yield
    assert _snapshot() == before


def _only_event() -> OperationsEvent:
    return OperationsEvent.objects.get()


# ------------------------------------------------------------------------------------------------- teams


def test_admin_creates_a_team_with_audit(admin_user, lead, owner):
    team = services.team_create(by=admin_user, name="  Field service  ", lead=lead, members=[owner], idle_days=10)

    team.refresh_from_db()
    assert team.name == "Field service"
    assert team.lead == lead
    assert list(team.members.all()) == [owner]
    assert team.idle_days == 10
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        team,
        OperationsEventKind.TEAM_CREATED,
        admin_user,
        "Field service",
    )
    assert event.changes == {"members": [owner.pk]}


@pytest.mark.parametrize("role", ["lead", "owner", "viewer", "manager"])
def test_team_create_refused_to_non_admins(request, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.team_create(by=actor, name="Field service")

    assert refused.value.rule == "admin_only"


def test_team_create_refuses_duplicate_name(team, admin_user):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.team_create(by=admin_user, name="Service desk")

    assert refused.value.field == "name"


def test_team_create_refuses_empty_name(admin_user):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.team_create(by=admin_user, name="   ")

    assert refused.value.field == "name"


def test_team_create_refuses_unknown_field_naming_it(admin_user):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.team_create(by=admin_user, name="Field service", sleep_days=3)

    assert refused.value.rule == "field_not_editable"
    assert refused.value.field == "sleep_days"


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_team_update_by_lead_or_admin_is_audited(request, team, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.team_update(team=team, by=actor, name="Service desk EMEA", review_overdue_days=2, description="")

    team.refresh_from_db()
    assert team.name == "Service desk EMEA"
    assert team.review_overdue_days == 2
    event = _only_event()
    assert (event.team, event.kind, event.actor) == (team, OperationsEventKind.TEAM_UPDATED, actor)
    # description was already empty: only what really changed is recorded.
    assert event.changes == {"name": ["Service desk", "Service desk EMEA"], "review_overdue_days": [None, 2]}


def test_team_update_without_a_change_writes_nothing(team, lead):
    with nothing_written():
        services.team_update(team=team, by=lead, name="Service desk")


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_team_update_refused_to_anyone_but_lead_or_admin(request, team, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.team_update(team=team, by=actor, name="Renamed")

    assert refused.value.rule == "team_lead_only"


def test_lead_cannot_change_the_lead(team, lead, owner):
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.team_update(team=team, by=lead, lead=owner)

    assert refused.value.rule == "admin_only"


def test_admin_changes_the_lead_with_audit(team, admin_user, lead, owner):
    services.team_update(team=team, by=admin_user, lead=owner)

    team.refresh_from_db()
    assert team.lead == owner
    assert _only_event().changes == {"lead": [lead.pk, owner.pk]}


@pytest.mark.parametrize("field", ["idle_days", "escalation_days", "past_target_days"])
def test_team_update_refuses_negative_threshold_naming_it(team, lead, field):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.team_update(team=team, by=lead, **{field: -1})

    assert refused.value.field == field


def test_team_update_refuses_unknown_field_naming_it(team, admin_user):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.team_update(team=team, by=admin_user, created_at=NOW)

    assert refused.value.rule == "field_not_editable"
    assert refused.value.field == "created_at"


# ----------------------------------------------------------------------------------------------- members


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_adding_a_team_member_is_audited(request, team, viewer, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.team_add_member(team=team, by=actor, user=viewer)

    assert team.members.filter(pk=viewer.pk).exists()
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        team,
        OperationsEventKind.MEMBER_ADDED,
        actor,
        "viewer",
    )


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_removing_a_team_member_is_audited(request, team, ops_member, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.team_remove_member(team=team, by=actor, user=ops_member)

    assert not team.members.filter(pk=ops_member.pk).exists()
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        team,
        OperationsEventKind.MEMBER_REMOVED,
        actor,
        "opsmember",
    )


def test_adding_an_existing_team_member_writes_nothing(team, lead, owner):
    with nothing_written():
        services.team_add_member(team=team, by=lead, user=owner)


def test_removing_a_non_member_writes_nothing(team, lead, viewer):
    with nothing_written():
        services.team_remove_member(team=team, by=lead, user=viewer)


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_adding_a_team_member_refused_to_anyone_but_lead_or_admin(request, team, role):
    actor = request.getfixturevalue(role)
    newcomer = UserFactory(username="newcomer")

    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.team_add_member(team=team, by=actor, user=newcomer)

    assert refused.value.rule == "team_lead_only"


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_removing_a_team_member_refused_to_anyone_but_lead_or_admin(request, team, ops_member, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.team_remove_member(team=team, by=actor, user=ops_member)

    assert refused.value.rule == "team_lead_only"


# ---------------------------------------------------------------------------------------------- services


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_service_create_by_lead_or_admin_is_audited(request, team, actor_name):
    actor = request.getfixturevalue(actor_name)

    service = services.service_create(team=team, by=actor, name=" CRM platform ", description="Sales CRM")

    service.refresh_from_db()
    assert (service.team, service.name, service.description, service.is_active) == (
        team,
        "CRM platform",
        "Sales CRM",
        True,
    )
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        team,
        OperationsEventKind.SERVICE_CREATED,
        actor,
        "CRM platform",
    )


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_service_create_refused_to_anyone_but_lead_or_admin(request, team, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.service_create(team=team, by=actor, name="CRM platform")

    assert refused.value.rule == "team_lead_only"


def test_service_create_refuses_duplicate_name_in_the_team(service, lead):
    with nothing_written(), pytest.raises(InvalidInput):
        services.service_create(team=service.team, by=lead, name="CRM platform")


def test_same_service_name_allowed_in_another_team(service, outsider):
    other_team = OperationsTeam.objects.get(lead=outsider)

    created = services.service_create(team=other_team, by=outsider, name="CRM platform")

    assert created.team == other_team


def test_service_create_refuses_empty_name(team, lead):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.service_create(team=team, by=lead, name="  ")

    assert refused.value.field == "name"


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_service_update_by_lead_or_admin_is_audited(request, service, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.service_update(service=service, by=actor, name="CRM platform v2", is_active=False)

    service.refresh_from_db()
    assert (service.name, service.is_active) == ("CRM platform v2", False)
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        service.team,
        OperationsEventKind.SERVICE_UPDATED,
        actor,
        "CRM platform v2",
    )
    assert event.changes == {"name": ["CRM platform", "CRM platform v2"], "is_active": [True, False]}


def test_service_update_without_a_change_writes_nothing(service, lead):
    with nothing_written():
        services.service_update(service=service, by=lead, name="CRM platform", is_active=True)


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_service_update_refused_to_anyone_but_lead_or_admin(request, service, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.service_update(service=service, by=actor, name="Renamed")

    assert refused.value.rule == "team_lead_only"


def test_service_cannot_be_moved_to_another_team(service, admin_user, outsider):
    other_team = OperationsTeam.objects.get(lead=outsider)

    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.service_update(service=service, by=admin_user, team=other_team)

    assert refused.value.rule == "field_not_editable"
    assert refused.value.field == "team"


# --------------------------------------------------------------------------------------------------- KPIs


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_kpi_create_by_lead_or_admin_is_audited(request, service, actor_name):
    actor = request.getfixturevalue(actor_name)

    kpi = services.kpi_create(
        service=service,
        by=actor,
        name="Tickets per week",
        target="120.5",
        baseline=Decimal("300"),
        unit="tickets",
        direction=KpiDirection.LOWER,
        review_date=dt.date(2026, 6, 30),
        is_adoption=True,
    )

    kpi.refresh_from_db()
    assert kpi.target == Decimal("120.5")
    assert kpi.baseline == Decimal("300")
    assert (kpi.unit, kpi.direction, kpi.review_date, kpi.is_adoption) == (
        "tickets",
        KpiDirection.LOWER,
        dt.date(2026, 6, 30),
        True,
    )
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        service.team,
        OperationsEventKind.KPI_CREATED,
        actor,
        "CRM platform: Tickets per week",
    )


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_kpi_create_refused_to_anyone_but_lead_or_admin(request, service, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.kpi_create(service=service, by=actor, name="Tickets", target=10)

    assert refused.value.rule == "team_lead_only"


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_kpi_create_refuses_target_that_is_not_a_finite_number(service, lead, value):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_create(service=service, by=lead, name="Tickets", target=value)

    assert refused.value.field == "target"


@pytest.mark.parametrize("value", NOT_NUMBERS_WITHOUT_NONE)
def test_kpi_create_refuses_baseline_that_is_not_a_finite_number(service, lead, value):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_create(service=service, by=lead, name="Tickets", target=10, baseline=value)

    assert refused.value.field == "baseline"


def test_kpi_create_allows_no_baseline(service, lead):
    kpi = services.kpi_create(service=service, by=lead, name="Tickets", target=10, baseline=None)

    kpi.refresh_from_db()
    assert kpi.baseline is None


@pytest.mark.parametrize("value", ["0.00001", "12345678901.5", "1e20"])
def test_kpi_create_refuses_target_beyond_the_stored_precision(service, lead, value):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_create(service=service, by=lead, name="Tickets", target=value)

    assert refused.value.field == "target"


def test_kpi_create_refuses_unknown_direction(service, lead):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_create(service=service, by=lead, name="Tickets", target=10, direction="sideways")

    assert refused.value.field == "direction"


def test_kpi_create_refuses_duplicate_name_for_the_service(kpi, lead):
    with nothing_written(), pytest.raises(InvalidInput):
        services.kpi_create(service=kpi.service, by=lead, name="Weekly active users", target=10)


@pytest.mark.parametrize("actor_name", ["lead", "admin_user"])
def test_kpi_update_by_lead_or_admin_is_audited(request, kpi, actor_name):
    actor = request.getfixturevalue(actor_name)

    services.kpi_update(kpi=kpi, by=actor, target="90", baseline=20, unit="%")

    kpi.refresh_from_db()
    assert kpi.target == Decimal("90")
    event = _only_event()
    assert (event.team, event.kind, event.actor, event.subject) == (
        kpi.service.team,
        OperationsEventKind.KPI_UPDATED,
        actor,
        "CRM platform: Weekly active users",
    )
    # baseline and unit did not change: only the target is recorded.
    assert list(event.changes) == ["target"]
    old, new = event.changes["target"]
    assert (Decimal(old), Decimal(new)) == (Decimal("80"), Decimal("90"))


def test_kpi_update_with_equal_number_writes_nothing(kpi, lead):
    with nothing_written():
        services.kpi_update(kpi=kpi, by=lead, target="80.000")


@pytest.mark.parametrize("role", ["owner", "ops_member", "viewer", "outsider"])
def test_kpi_update_refused_to_anyone_but_lead_or_admin(request, kpi, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.kpi_update(kpi=kpi, by=actor, target=90)

    assert refused.value.rule == "team_lead_only"


@pytest.mark.parametrize("field", ["target", "baseline"])
@pytest.mark.parametrize("value", NOT_NUMBERS_WITHOUT_NONE)
def test_kpi_update_refuses_values_that_are_not_finite_numbers(kpi, lead, field, value):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_update(kpi=kpi, by=lead, **{field: value})

    assert refused.value.field == field


def test_kpi_update_refuses_clearing_the_target(kpi, lead):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_update(kpi=kpi, by=lead, target=None)

    assert refused.value.field == "target"


def test_kpi_update_refuses_moving_the_kpi_to_another_service(kpi, lead, team):
    other_service = ServiceFactory(team=team, name="Telephony")

    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_update(kpi=kpi, by=lead, service=other_service)

    assert refused.value.rule == "field_not_editable"
    assert refused.value.field == "service"


# ------------------------------------------------------------------------------------------ KPI readings


@pytest.mark.parametrize("role", ["lead", "owner", "ops_member", "admin_user"])
def test_team_members_post_kpi_readings(request, kpi, role):
    by = request.getfixturevalue(role)
    measured_at = NOW - dt.timedelta(days=1)

    with time_machine.travel(NOW, tick=False):
        reading = services.kpi_reading_add(kpi=kpi, by=by, value="64.25", measured_at=measured_at, note="Week 9")

    reading.refresh_from_db()
    assert (reading.kpi, reading.value, reading.measured_at, reading.note, reading.recorded_by) == (
        kpi,
        Decimal("64.25"),
        measured_at,
        "Week 9",
        by,
    )


def test_kpi_reading_measured_now_by_default(kpi, ops_member):
    with time_machine.travel(NOW, tick=False):
        reading = services.kpi_reading_add(kpi=kpi, by=ops_member, value=70)

    reading.refresh_from_db()
    assert reading.measured_at == NOW


@pytest.mark.parametrize("role", ["viewer", "manager", "outsider"])
def test_kpi_reading_refused_to_people_outside_the_team(request, kpi, role):
    actor = request.getfixturevalue(role)
    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.kpi_reading_add(kpi=kpi, by=actor, value=70)

    assert refused.value.rule == "team_member_only"


def test_kpi_reading_refused_to_a_removed_team_member(kpi, lead, ops_member):
    """GIVEN an operations member WHEN the lead removes them from the team THEN they can no longer post readings."""
    services.team_remove_member(team=kpi.service.team, by=lead, user=ops_member)

    with nothing_written(), pytest.raises(NotPermitted) as refused:
        services.kpi_reading_add(kpi=kpi, by=ops_member, value=70)

    assert refused.value.rule == "team_member_only"


@pytest.mark.parametrize("ahead", [dt.timedelta(hours=1), dt.timedelta(days=3)])
def test_kpi_reading_in_the_future_refused(kpi, ops_member, ahead):
    with time_machine.travel(NOW, tick=False), nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_reading_add(kpi=kpi, by=ops_member, value=70, measured_at=NOW + ahead)

    assert refused.value.rule == "reading_in_future"
    assert refused.value.field == "measured_at"


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_kpi_reading_refuses_value_that_is_not_a_finite_number(kpi, ops_member, value):
    with nothing_written(), pytest.raises(InvalidInput) as refused:
        services.kpi_reading_add(kpi=kpi, by=ops_member, value=value)

    assert refused.value.field == "value"


# ------------------------------------------------------------------------------------- stall thresholds


CUSTOM_DEFAULTS = {
    "idle": 11,
    "review_overdue": 12,
    "verification_waiting": 13,
    "past_target": 14,
    "conditions_overdue": 15,
    "adoption_below_target": 16,
}


@pytest.mark.parametrize("rule", list(StallRule))
def test_stall_threshold_defaults_to_settings(settings, team, rule):
    settings.HANDOVER_STALL_THRESHOLDS = CUSTOM_DEFAULTS

    assert team.stall_threshold(rule) == CUSTOM_DEFAULTS[rule.value]
    assert team.stall_threshold(rule.value) == CUSTOM_DEFAULTS[rule.value]


@pytest.mark.parametrize("override", [0, 2, 30])
@pytest.mark.parametrize("rule", list(StallRule))
def test_stall_threshold_overridden_per_team(settings, team, admin_user, rule, override):
    """GIVEN defaults in settings WHEN a team overrides one rule (even to zero days)
    THEN that rule uses the team's value and the other rules keep the defaults."""
    settings.HANDOVER_STALL_THRESHOLDS = CUSTOM_DEFAULTS
    services.team_update(team=team, by=admin_user, **{f"{rule.value}_days": override})
    team.refresh_from_db()

    assert team.stall_threshold(rule) == override
    for other in StallRule:
        if other != rule:
            assert team.stall_threshold(other) == CUSTOM_DEFAULTS[other.value]


def test_stall_threshold_override_applies_only_to_its_team(settings, team, lead):
    settings.HANDOVER_STALL_THRESHOLDS = CUSTOM_DEFAULTS
    other_team = TeamFactory(name="Facilities")
    services.team_update(team=team, by=lead, idle_days=1)

    assert other_team.stall_threshold(StallRule.IDLE) == 11


def test_unknown_stall_rule_refused(team):
    with pytest.raises(ValueError, match="sleepy"):
        team.stall_threshold("sleepy")


def test_escalation_delay_defaults_to_settings_and_is_overridable(settings, team, lead):
    settings.HANDOVER_ESCALATION_DAYS = 4
    assert team.escalation_delay_days == 4

    services.team_update(team=team, by=lead, escalation_days=0)
    team.refresh_from_db()

    assert team.escalation_delay_days == 0


# ----------------------------------------------------------------------------------------- meets_target


@pytest.mark.parametrize(
    ("direction", "value", "met"),
    [
        (KpiDirection.HIGHER, "80.01", True),
        (KpiDirection.HIGHER, "80", True),
        (KpiDirection.HIGHER, "79.99", False),
        (KpiDirection.LOWER, "79.99", True),
        (KpiDirection.LOWER, "80", True),
        (KpiDirection.LOWER, "80.01", False),
    ],
)
def test_kpi_meets_target_in_its_good_direction(kpi, direction, value, met):
    kpi.direction = direction
    kpi.save()
    kpi.refresh_from_db()

    assert kpi.meets_target(Decimal(value)) is met


def test_kpi_meets_target_for_negative_targets(service):
    """A lower-is-better change in a balance, for example: the target itself may be negative."""
    kpi = KpiFactory(service=service, direction=KpiDirection.LOWER, target=Decimal("-5"), baseline=0)

    assert kpi.meets_target(Decimal("-6"))
    assert not kpi.meets_target(Decimal("-4"))


def test_kpi_reading_checked_against_target(kpi, ops_member):
    """GIVEN a higher-is-better KPI with target 80 WHEN readings of 64 and 85 are posted
    THEN only the second meets the target."""
    below = services.kpi_reading_add(kpi=kpi, by=ops_member, value=64, measured_at=timezone.now())
    above = services.kpi_reading_add(kpi=kpi, by=ops_member, value=85, measured_at=timezone.now())

    kpi.refresh_from_db()
    assert not kpi.meets_target(below.value)
    assert kpi.meets_target(above.value)
