"""Notifications: one row per message to one person on one channel; the email outbox and the in-app inbox."""

from typing import ClassVar

from django.conf import settings
from django.db import models

from handover.choices import Channel, DeliveryStatus, NotificationKind

from .stalls import StallFlag


class Notification(models.Model):
    """A message to one person about a stall flag, on one channel; the row is the outbox and the in-app inbox."""

    # The Celery task that sends a pending row (the outbox publishes it by name).
    OUTBOX_TASK: ClassVar[str] = "handover.tasks.send_notification"

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
            # The inbox newest first (read backwards), a page without sorting all of someone's notifications.
            models.Index(fields=["recipient", "channel", "created_at", "id"], name="notification_inbox_time"),
            models.Index(fields=["status", "next_attempt_at"], name="notification_outbox"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient} ({self.channel})"
