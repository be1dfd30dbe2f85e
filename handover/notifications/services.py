"""Notifications: sending the email outbox's rows, and the in-app inbox's read marks.

Detection (``handover.stalls``) writes the rows and enqueues the emails on the outbox; ``send_notification`` is the
send task's service.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from handover.choices import DeliveryStatus
from handover.models import Notification
from handover.outbox.queue import claim, describe, fail
from handover.selectors import inbox

logger = logging.getLogger(__name__)


def send_notification(notification_id: int, *, now: datetime | None = None) -> bool:
    """Send one email notification if it is due and not yet claimed; returns whether this call sent it.

    A notification whose flag resolved before it went out (held by a snooze, or by a broker outage) is cancelled
    instead: the stall it announces is over.
    """
    now = now or timezone.now()
    pending = Notification.objects.filter(pk=notification_id, status=DeliveryStatus.PENDING)
    if pending.filter(flag__resolved_at__isnull=False).update(
        status=DeliveryStatus.CANCELLED, last_error="The stall flag resolved before this was sent."
    ):
        return False
    snoozed = pending.filter(flag__snoozed_until__gt=now).values_list("flag__snoozed_until", flat=True).first()
    if snoozed is not None:
        # A snoozed flag sends nothing until its date; the sweep brings the row back then.
        pending.update(next_attempt_at=snoozed)
        return False
    if not claim(Notification, notification_id, now):
        return False
    notification = Notification.objects.select_related("recipient").get(pk=notification_id)
    try:
        send_mail(
            notification.subject,
            notification.body,
            settings.DEFAULT_FROM_EMAIL,
            [notification.recipient.email],
            fail_silently=False,
        )
    except Exception as error:  # SMTP, network, timeout, a bad reply, a soft time limit: try again later
        logger.warning(
            "email notification %s failed (attempt %d): %s", notification_id, notification.attempts, describe(error)
        )
        fail(Notification, notification, now, describe(error))
        return False
    # Guarded by this attempt's own claim, as ``_fail`` is: a send that outlived ``STUCK_AFTER`` (its row freed
    # and claimed again) must not mark the newer attempt's claim as its own.
    Notification.objects.filter(
        pk=notification_id, status=DeliveryStatus.SENDING, claimed_at=notification.claimed_at
    ).update(status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error="")
    return True


@transaction.atomic
def notifications_mark_read(*, user, ids: Iterable[int] | None = None) -> int:
    """Mark the user's in-app notifications read (all of them when ``ids`` is None); returns how many changed."""
    unread = inbox(user).filter(read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())
