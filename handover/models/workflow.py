"""The handover workflow's models: checklist templates, handovers, their items, evidence, comments, decisions,
conditions, the activity log and the configuration audit."""

from django.conf import settings
from django.db import models
from django.db.models import Case, F, FloatField, Q, Value, When
from django.db.models.functions import Cast
from django.db.models.lookups import GreaterThan

from config.postgres import trigram_index
from handover.choices import (
    ActivityVerb,
    AdminEventKind,
    ConditionStatus,
    DecisionKind,
    HandoverStatus,
    ItemStatus,
    Risk,
    Side,
    TemplateKind,
)
from operations.models import OperationsTeam, Service
from projects.models import Project


class ChecklistTemplate(models.Model):
    """A reusable checklist for a kind of project; copied into a handover when it is created."""

    kind = models.CharField(max_length=30, choices=TemplateKind.choices)
    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True, help_text="Inactive templates cannot start new handovers.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="template_unique_name_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class TemplateItem(models.Model):
    """One line of a checklist template."""

    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    key = models.SlugField(max_length=80, help_text="Stable identifier within the template.")
    title = models.CharField(max_length=200)
    guidance = models.TextField(blank=True)
    risk = models.CharField(max_length=20, choices=Risk.choices)
    mandatory = models.BooleanField(default=True)
    side = models.CharField(max_length=20, choices=Side.choices, default=Side.PROJECT)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["template", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["template", "key"], name="templateitem_unique_key")]

    def __str__(self) -> str:
        return self.title


# Readiness is stored on the handover (docs/domain.md "Readiness"): per risk, the counts of its mandatory items
# that readiness is made of, moved by the services in the same transaction as every item move
# (handover.readiness), and shares the database computes from them, so that lists filter and order on them.


def _counter() -> models.PositiveIntegerField:
    return models.PositiveIntegerField(default=0, editable=False)


def _total(name: str):
    """The overall count: the sum over the risks."""
    first, *others = (F(f"{risk}_{name}") for risk in Risk.values)
    return sum(others, first)


def _share(part, mandatory, not_applicable) -> models.GeneratedField:
    """``part / applicable`` as a float, 0 when nothing applies (a risk with nothing applicable is visibly not
    ready), stored by the database so that filters, orderings and indexes use it."""
    applicable = mandatory - not_applicable
    return models.GeneratedField(
        expression=Case(
            When(GreaterThan(applicable, 0), then=Cast(part, FloatField()) / Cast(applicable, FloatField())),
            default=Value(0.0),
            output_field=FloatField(),
        ),
        output_field=FloatField(),
        db_persist=True,
    )


def _risk_share(risk: str, part: str = "verified") -> models.GeneratedField:
    return _share(F(f"{risk}_{part}"), F(f"{risk}_mandatory"), F(f"{risk}_not_applicable"))


class Handover(models.Model):
    """The transition of one project's result to the operations team that will run it."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="handovers")
    template = models.ForeignKey(
        ChecklistTemplate, on_delete=models.PROTECT, related_name="handovers", null=True, blank=True
    )
    template_version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    receiving_team = models.ForeignKey(OperationsTeam, on_delete=models.PROTECT, related_name="handovers")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="handovers", null=True, blank=True)
    operations_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_handovers"
    )
    deliverables = models.TextField(blank=True, help_text="What the project hands over.")
    target_date = models.DateField()
    status = models.CharField(
        max_length=30, choices=HandoverStatus.choices, default=HandoverStatus.PREPARING, editable=False
    )
    status_changed_at = models.DateTimeField(editable=False)
    submitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    return_count = models.PositiveIntegerField(default=0, editable=False)
    hypercare_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    hypercare_ends_on = models.DateField(null=True, blank=True)
    hypercare_exit_criteria = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancel_reason = models.TextField(blank=True, editable=False)
    # Any recorded change or comment moves this; the stall rules range-scan it (docs/domain.md "Stalled handovers").
    last_activity_at = models.DateTimeField(editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Readiness: the counts of mandatory items per risk (handover.readiness keeps them true), and the shares.
    inefficiency_mandatory = _counter()
    inefficiency_not_applicable = _counter()
    inefficiency_done = _counter()
    inefficiency_verified = _counter()
    inefficiency_waived_pending = _counter()
    failure_mandatory = _counter()
    failure_not_applicable = _counter()
    failure_done = _counter()
    failure_verified = _counter()
    failure_waived_pending = _counter()
    adoption_mandatory = _counter()
    adoption_not_applicable = _counter()
    adoption_done = _counter()
    adoption_verified = _counter()
    adoption_waived_pending = _counter()
    # Verified (or waived with approval) over applicable, per risk and overall; done over applicable, overall.
    inefficiency_share = _risk_share("inefficiency")
    failure_share = _risk_share("failure")
    adoption_share = _risk_share("adoption")
    readiness_share = _share(_total("verified"), _total("mandatory"), _total("not_applicable"))
    done_share = _share(_total("done"), _total("mandatory"), _total("not_applicable"))

    class Meta:
        ordering = ["target_date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=~Q(status=HandoverStatus.CANCELLED),
                name="handover_one_active_per_project",
                violation_error_message="This project already has an active handover.",
            ),
        ]
        indexes = [
            # One index per stall rule's range scan (handover.stalls): status first, then the rule's clock.
            models.Index(fields=["status", "last_activity_at"], name="handover_status_activity"),
            models.Index(fields=["status", "submitted_at"], name="handover_status_submitted"),
            models.Index(fields=["status", "target_date"], name="handover_status_target"),
            models.Index(fields=["receiving_team", "target_date"], name="handover_team_target"),
            models.Index(fields=["operations_owner", "status"], name="handover_owner_status"),
            # The lists' default order (Meta.ordering, the API's cursor): a page is read along it, not sorted.
            models.Index(fields=["target_date", "id"], name="handover_target_id"),
            # Least ready first (?ordering=readiness on the list page and the API): the stored share, read in order.
            models.Index(fields=["readiness_share", "target_date", "id"], name="handover_readiness_order"),
        ]

    def __str__(self) -> str:
        return f"Handover of {self.project.code}"


class ChecklistItem(models.Model):
    """One thing that must be true before operations takes over; copied from a template item."""

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="items")
    template_item = models.ForeignKey(
        TemplateItem, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    title = models.CharField(max_length=200)
    guidance = models.TextField(blank=True)
    risk = models.CharField(max_length=20, choices=Risk.choices)
    mandatory = models.BooleanField(default=True)
    side = models.CharField(max_length=20, choices=Side.choices, default=Side.PROJECT)
    position = models.PositiveIntegerField(default=0)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="assigned_items"
    )
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.OPEN, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    done_at = models.DateTimeField(null=True, blank=True, editable=False)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    sent_back_reason = models.TextField(blank=True, editable=False)
    waiver_justification = models.TextField(blank=True, editable=False)
    waiver_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    waiver_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    waiver_approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    not_applicable_reason = models.TextField(blank=True, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        # handover_id, not handover, which would order by the handover's own ordering through a join.
        ordering = ["handover_id", "position", "id"]
        indexes = [
            models.Index(fields=["handover", "risk", "status"], name="item_handover_risk_status"),
            models.Index(fields=["status", "done_at"], name="item_status_done_at"),
            # The checklist's order, and the API's item list and cursor (handover_id, position, id).
            models.Index(fields=["handover", "position", "id"], name="item_handover_position"),
            # Search (handover.search): titles by substring, on PostgreSQL (config.postgres).
            trigram_index("title", name="item_title_trgm"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def waiver_approved(self) -> bool:
        return self.status == ItemStatus.WAIVED and self.waiver_approved_by_id is not None


class Evidence(models.Model):
    """A link or a note showing that a checklist item is done."""

    item = models.ForeignKey(ChecklistItem, on_delete=models.CASCADE, related_name="evidence")
    url = models.URLField(max_length=500, blank=True)
    text = models.TextField(blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    added_at = models.DateTimeField()

    class Meta:
        ordering = ["added_at", "id"]
        verbose_name_plural = "evidence"
        constraints = [
            models.CheckConstraint(condition=~Q(url="", text=""), name="evidence_has_url_or_text"),
        ]

    def __str__(self) -> str:
        return self.url or self.text[:60]


class Comment(models.Model):
    """A remark on a handover or on one of its items."""

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="comments")
    item = models.ForeignKey(ChecklistItem, on_delete=models.CASCADE, related_name="comments", null=True, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.body[:60]


class Decision(models.Model):
    """Operations' decision on a submitted handover, with the checklist frozen as it stood at that moment."""

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="decisions")
    kind = models.CharField(max_length=30, choices=DecisionKind.choices)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    snapshot = models.JSONField()

    class Meta:
        ordering = ["decided_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.decided_by} at {self.decided_at:%Y-%m-%d}"


class Condition(models.Model):
    """A follow-on action attached to a conditional acceptance; it survives the project's closure."""

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="conditions")
    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="conditions")
    text = models.TextField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conditions")
    due_date = models.DateField()
    status = models.CharField(max_length=10, choices=ConditionStatus.choices, default=ConditionStatus.OPEN)
    met_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    met_at = models.DateTimeField(null=True, blank=True)
    met_note = models.TextField(blank=True)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [
            models.Index(fields=["due_date"], condition=Q(status=ConditionStatus.OPEN), name="condition_open_due"),
            models.Index(fields=["due_date", "id"], name="condition_due_id"),  # the list's default order
        ]

    def __str__(self) -> str:
        return self.text[:60]


class Activity(models.Model):
    """Append-only record of every change to a handover or its items: who, what, when, from which state."""

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="activity")
    item = models.ForeignKey(ChecklistItem, on_delete=models.CASCADE, null=True, blank=True, related_name="activity")
    verb = models.CharField(max_length=30, choices=ActivityVerb.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    from_state = models.CharField(max_length=30, blank=True)
    to_state = models.CharField(max_length=30, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "activity"
        indexes = [models.Index(fields=["handover", "created_at"], name="activity_handover_time")]

    def __str__(self) -> str:
        if self.from_state or self.to_state:
            return f"{self.get_verb_display()}: {self.from_state} → {self.to_state}"
        return self.get_verb_display()


class AdminEvent(models.Model):
    """Append-only audit of configuration: who created, changed, switched or revoked a checklist template, an API
    token or a webhook subscription, and when (``actor`` empty: the system, as ``load_templates``). The subject is
    kept as text, so the entry outlives a deleted webhook; secrets are never recorded."""

    kind = models.CharField(max_length=30, choices=AdminEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = models.CharField(max_length=600)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"
