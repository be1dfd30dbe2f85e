"""Celery task of webhooks: deliver one row of the outbox (published by ``handover.outbox.queue``)."""

from celery import shared_task

from handover.outbox.tasks import RETRY

from . import services
from .models import WebhookDelivery


@shared_task(name=WebhookDelivery.OUTBOX_TASK, **RETRY)
def deliver_webhook(delivery_id: int) -> bool:
    return services.deliver_webhook(delivery_id)
