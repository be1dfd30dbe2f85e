from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

from .choices import KpiDirection, OperationsEventKind, StallRule

MAX_DAYS = MaxValueValidator(3650)  # ten years: anything longer is a typo, on every database


class OperationsTeam(models.Model):
    """A team that runs services and receives the results of projects."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    lead = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="led_teams", null=True, blank=True
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="operations_teams", blank=True)

    # Per-team overrides of the stall thresholds (days); empty means "use settings.HANDOVER_STALL_THRESHOLDS".
    idle_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])
    review_overdue_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])
    verification_waiting_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])
    past_target_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])
    conditions_overdue_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])
    adoption_below_target_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])
    escalation_days = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MAX_DAYS])

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def stall_threshold(self, rule: StallRule | str) -> int:
        """Days before ``rule`` fires for this team's handovers."""
        override = getattr(self, f"{StallRule(rule).value}_days")
        return override if override is not None else settings.HANDOVER_STALL_THRESHOLDS[StallRule(rule).value]

    @property
    def escalation_delay_days(self) -> int:
        return self.escalation_days if self.escalation_days is not None else settings.HANDOVER_ESCALATION_DAYS


class Service(models.Model):
    """An ongoing operation that receives a project's deliverables (for example "CRM platform")."""

    team = models.ForeignKey(OperationsTeam, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="service_unique_name_per_team")]

    def __str__(self) -> str:
        return self.name


class Kpi(models.Model):
    """A measure of a service, with a baseline, a target and a review date."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="kpis")
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=30, blank=True)
    direction = models.CharField(max_length=10, choices=KpiDirection.choices, default=KpiDirection.HIGHER)
    baseline = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    target = models.DecimalField(max_digits=14, decimal_places=4)
    review_date = models.DateField(null=True, blank=True)
    is_adoption = models.BooleanField(
        default=False, help_text="Adoption measures are watched during hypercare (docs/domain.md, Operations)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service", "name"]
        verbose_name = "KPI"
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="kpi_unique_name_per_service")]

    def __str__(self) -> str:
        return f"{self.service}: {self.name}"

    def meets_target(self, value: Decimal) -> bool:
        """Whether ``value`` is at or beyond the target in the KPI's good direction."""
        if self.direction == KpiDirection.HIGHER:
            return value >= self.target
        return value <= self.target


class KpiReading(models.Model):
    """One measured value of a KPI, posted by a person or a tool."""

    kpi = models.ForeignKey(Kpi, on_delete=models.CASCADE, related_name="readings")
    value = models.DecimalField(max_digits=14, decimal_places=4)
    measured_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-measured_at"]
        indexes = [models.Index(fields=["kpi", "-measured_at"], name="kpireading_kpi_measured")]

    def __str__(self) -> str:
        return f"{self.kpi.name} = {self.value} at {self.measured_at:%Y-%m-%d}"


class OperationsEvent(models.Model):
    """Append-only audit of changes to teams, services and KPIs: who, what, when."""

    team = models.ForeignKey(OperationsTeam, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=OperationsEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subject = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject}"
