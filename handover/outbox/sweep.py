"""The outbox sweep, every minute: frees rows whose worker died and re-enqueues the rows that are due."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from handover.choices import DeliveryStatus
from handover.models import Notification, OutboxSweep, WebhookDelivery

from .queue import STUCK_AFTER, enqueue, fail

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Free rows whose worker died and re-enqueue rows that are due, on every channel of the outbox.

    A row left in "sending" past ``STUCK_AFTER`` lost its worker mid-send (killed at the hard time limit, say):
    that attempt counts, so a send that always kills its worker ends failed instead of looping. A due row is
    published again only if no task was published for it since it became due, or that was long ago
    (``OUTBOX_REQUEUE_AFTER``: a message lost with the broker); oldest first, so none starves.
    """
    now = now or timezone.now()
    freed = 0
    models: tuple[type[Notification] | type[WebhookDelivery], ...] = (Notification, WebhookDelivery)
    for model in models:
        stuck = model._default_manager.filter(status=DeliveryStatus.SENDING, claimed_at__lt=now - STUCK_AFTER)
        for row in stuck:
            claimed = row.claimed_at.isoformat() if row.claimed_at else "?"
            logger.warning(
                "%s %s was stuck in sending since %s: counted as a failed attempt", model.__name__, row.pk, claimed
            )
            fail(model, row, now, f"The worker was lost mid-send (claimed at {claimed}).")
            freed += 1
    due = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) & (
        Q(enqueued_at__isnull=True)
        | Q(enqueued_at__lt=F("next_attempt_at"))
        | Q(enqueued_at__lt=now - timedelta(seconds=settings.OUTBOX_REQUEUE_AFTER))
    )
    oldest_first = ("next_attempt_at", "pk")
    notifications = list(
        Notification.objects.filter(due).order_by(*oldest_first).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    deliveries = list(
        WebhookDelivery.objects.filter(due).order_by(*oldest_first).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    with transaction.atomic():
        enqueue(Notification, notifications)
        enqueue(WebhookDelivery, deliveries)
        summary = {
            "freed": freed,
            "notifications": len(notifications),
            "deliveries": len(deliveries),
        }
        OutboxSweep.objects.update_or_create(name="outbox", defaults={"finished_at": timezone.now(), **summary})
    return summary
