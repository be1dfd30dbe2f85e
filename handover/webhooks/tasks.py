"""Celery tasks of webhooks: deliver one row of the outbox, and turn project stage moves into events (beat)."""

from celery import shared_task

from config.celery import RETRY
from handover.models import WebhookDelivery

from . import services


@shared_task(name=WebhookDelivery.OUTBOX_TASK, **RETRY)
def deliver_webhook(delivery_id: int) -> bool:
    return services.deliver_webhook(delivery_id)


@shared_task(name="handover.tasks.publish_project_events", **RETRY)
def publish_project_events() -> int:
    return services.publish_project_events()
