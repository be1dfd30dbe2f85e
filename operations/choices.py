from django.db import models


class KpiDirection(models.TextChoices):
    """Which way a KPI improves."""

    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class StallRule(models.TextChoices):
    """The stall rules (docs/domain.md "Stalled handovers"); a team may override each rule's threshold in days."""

    IDLE = "idle", "Idle"
    REVIEW_OVERDUE = "review_overdue", "Review overdue"
    VERIFICATION_WAITING = "verification_waiting", "Verification waiting"
    PAST_TARGET = "past_target", "Past target"
    CONDITIONS_OVERDUE = "conditions_overdue", "Conditions overdue"
    ADOPTION_BELOW_TARGET = "adoption_below_target", "Adoption below target"


class OperationsEventKind(models.TextChoices):
    """What an operations audit entry records."""

    TEAM_CREATED = "team_created", "Team created"
    TEAM_UPDATED = "team_updated", "Team updated"
    MEMBER_ADDED = "member_added", "Member added"
    MEMBER_REMOVED = "member_removed", "Member removed"
    SERVICE_CREATED = "service_created", "Service created"
    SERVICE_UPDATED = "service_updated", "Service updated"
    KPI_CREATED = "kpi_created", "KPI created"
    KPI_UPDATED = "kpi_updated", "KPI updated"
