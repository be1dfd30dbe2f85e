"""Celery task of notifications: send one email row of the outbox (published by ``handover.outbox.queue``)."""

from celery import shared_task

from config.celery import RETRY
from handover.models import Notification

from . import services


@shared_task(name=Notification.OUTBOX_TASK, **RETRY)
def send_notification(notification_id: int) -> bool:
    return services.send_notification(notification_id)
