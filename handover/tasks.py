"""Celery tasks: thin wrappers that take ids, call a service and return a small summary."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import outbox, stalls
from .choices import DetectionSource

# Transient database errors are retried with capped, jittered backoff; the cap stays far below the Redis
# visibility timeout (1 hour) so a waiting retry is never redelivered as a duplicate.
RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="handover.tasks.detect_stalls", **RETRY)
def detect_stalls() -> dict:
    result = stalls.detect_stalls(source=DetectionSource.BEAT)
    return {
        "opened": len(result.opened),
        "resolved": len(result.resolved),
        "escalated": len(result.escalated),
        "reminded": len(result.reminded),
    }


@shared_task(name="handover.tasks.send_notification", **RETRY)
def send_notification(notification_id: int) -> bool:
    return outbox.send_notification(notification_id)


@shared_task(name="handover.tasks.deliver_webhook", **RETRY)
def deliver_webhook(delivery_id: int) -> bool:
    return outbox.deliver_webhook(delivery_id)


@shared_task(name="handover.tasks.sweep_outbox", **RETRY)
def sweep_outbox() -> dict:
    return outbox.sweep()
