import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from operations.models import OperationsTeam, Service
from projects.models import Project

from .choices import (
    ActivityVerb,
    AdminEventKind,
    Channel,
    ConditionStatus,
    DecisionKind,
    DeliveryStatus,
    DetectionSource,
    EventType,
    HandoverStatus,
    ItemStatus,
    NotificationKind,
    Risk,
    Side,
    StallRule,
    TemplateKind,
)


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
    # Any recorded change or comment moves this; the stall rules range-scan it (DOMAIN.md "Activity").
    last_activity_at = models.DateTimeField(editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)

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
        ordering = ["handover", "position", "id"]
        indexes = [
            models.Index(fields=["handover", "risk", "status"], name="item_handover_risk_status"),
            models.Index(fields=["status", "done_at"], name="item_status_done_at"),
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


class ApiToken(models.Model):
    """A named API token that lets a tool act as a user; only a hash of the secret is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise the token.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=False, help_text="A read-only token may only read.")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class StallFlag(models.Model):
    """One episode of a stall rule being true for a handover: opened when it becomes true, resolved when it stops."""

    handover = models.ForeignKey(Handover, on_delete=models.CASCADE, related_name="stall_flags")
    rule = models.CharField(max_length=30, choices=StallRule.choices)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_note = models.TextField(blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snooze_reason = models.TextField(blank=True)
    snoozed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True, help_text="What made the rule true when it opened.")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # One open episode per handover and rule, whatever the number of detection passes or workers.
            models.UniqueConstraint(
                fields=["handover", "rule"], condition=Q(resolved_at__isnull=True), name="stallflag_one_open_episode"
            ),
        ]
        indexes = [
            models.Index(fields=["rule", "opened_at"], condition=Q(resolved_at__isnull=True), name="stallflag_open"),
        ]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} on {self.handover}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Notification(models.Model):
    """A message to one person about a stall flag, on one channel; the row is the outbox and the in-app inbox."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    flag = models.ForeignKey(StallFlag, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    # When a send task for this row was last published; the sweep re-enqueues a due row only if none was
    # published since it became due, or long ago (a lost message), not every minute.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Once per episode per channel per recipient, however often detection runs or a send is retried.
            models.UniqueConstraint(
                fields=["recipient", "channel", "flag", "kind"], name="notification_once_per_episode"
            ),
        ]
        indexes = [
            models.Index(fields=["recipient", "channel", "read_at"], name="notification_inbox"),
            models.Index(fields=["status", "next_attempt_at"], name="notification_outbox"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient} ({self.channel})"


class Event(models.Model):
    """Something other tools may want to hear about; written in the transaction of the change (the outbox)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=60, choices=EventType.choices, db_index=True)
    # Makes emitting idempotent where the same fact could be emitted twice (e.g. "stall.opened" for flag 7).
    dedupe_key = models.CharField(max_length=120, unique=True, null=True, blank=True)
    handover = models.ForeignKey(Handover, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    payload = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} at {self.created_at:%Y-%m-%d %H:%M}"


class WebhookSubscription(models.Model):
    """An outbound webhook: a URL that receives the chosen events, signed with the subscription's secret."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, blank=True, help_text="Event types to send; empty means all.")
    secret = models.CharField(max_length=100, editable=False)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookDelivery(models.Model):
    """One event sent to one subscription: the delivery log, and the outbox the send task claims from."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(null=True, blank=True)  # as Notification.enqueued_at
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="delivery_once_per_subscription"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_outbox")]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.subscription.url}"


class DetectionRun(models.Model):
    """One pass of the stall detector: when, how long, what it did. /healthz reports beat's latest."""

    source = models.CharField(max_length=10, choices=DetectionSource.choices, default=DetectionSource.COMMAND)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    reminded = models.PositiveIntegerField(default=0)
    queries = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["source", "-finished_at"], name="detectionrun_source_finished")]

    def __str__(self) -> str:
        return f"Detection at {self.started_at:%Y-%m-%d %H:%M:%S}"


class OutboxSweep(models.Model):
    """The outbox sweep's latest pass: one row, overwritten each minute, that /healthz reports."""

    name = models.CharField(max_length=30, unique=True, default="outbox")
    finished_at = models.DateTimeField()
    freed = models.PositiveIntegerField(default=0)
    notifications = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=0)
    published = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Outbox sweep at {self.finished_at:%Y-%m-%d %H:%M:%S}"


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
