"""Outbound webhooks: the events other tools may hear about, their subscriptions, and one delivery per pair."""

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models

from handover.choices import DeliveryStatus, EventType

from .workflow import Handover


class Event(models.Model):
    """Something other tools may want to hear about; written in the transaction of the change (the outbox)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=60, choices=EventType.choices, db_index=True)
    # Makes emitting idempotent where the same fact could be emitted twice (e.g. "stall.opened" for flag 7).
    dedupe_key = models.CharField(max_length=120, unique=True, null=True, blank=True)
    handover = models.ForeignKey(Handover, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    payload = models.JSONField()
    # About a confidential project: delivered only to subscriptions that opted in, checked again at each attempt.
    confidential = models.BooleanField(default=False)
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
    include_confidential = models.BooleanField(
        default=False,
        help_text="Also send events about confidential projects (their names, people and checklists).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookDelivery(models.Model):
    """One event sent to one subscription: the delivery log, and the outbox the send task claims from."""

    # The Celery task that delivers a pending row (the outbox publishes it by name).
    OUTBOX_TASK: ClassVar[str] = "handover.tasks.deliver_webhook"

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
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_outbox"),
            # A subscription's delivery log, newest first (read backwards).
            models.Index(fields=["subscription", "created_at", "id"], name="delivery_subscription_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.subscription.url}"
