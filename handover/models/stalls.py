"""Stall detection's rows: one flag per episode of a rule being true, and one row per detection pass."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from handover.choices import DetectionSource, StallRule

from .workflow import Handover


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
            models.Index(fields=["opened_at", "id"], name="stallflag_opened_id"),  # the list's order, read backwards
        ]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} on {self.handover}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


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
