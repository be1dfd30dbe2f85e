"""Celery task of notifications: send one email row of the outbox (published by ``handover.outbox.queue``)."""

from celery import shared_task

from handover.outbox.tasks import RETRY

from . import services
from .models import Notification


@shared_task(name=Notification.OUTBOX_TASK, **RETRY)
def send_notification(notification_id: int) -> bool:
    return services.send_notification(notification_id)
