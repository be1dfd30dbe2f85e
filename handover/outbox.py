"""Services that tell people and tools what happened: the outbox of notifications and webhook deliveries.

The database is the source of truth. A change writes the rows that must be sent (``Notification``,
``Event`` + ``WebhookDelivery``) in its own transaction and asks Celery, after commit, to send them. A send task
claims its row with compare-and-set (pending → sending) so that a retried or duplicated task sends once; a sweep
re-enqueues rows that were never claimed (for instance because the broker was down when the change committed)
and frees rows whose worker died mid-send. Retries are rows with a later ``next_attempt_at``, picked up by the
sweep, so no task ever waits on a long countdown in Redis.
"""

import base64
import json
import logging
import random
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config.errors import InvalidInput, NotPermitted
from config.validation import apply_changes, clean_or_raise
from projects.choices import ProjectEventKind
from projects.models import ProjectEvent

from .choices import DeliveryStatus, EventType
from .models import Event, Handover, Notification, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=10)  # well above the task time limit: a row still "sending" then has lost its worker
SWEEP_BATCH = 500

# ------------------------------------------------------------------------------------------------ enqueue


def enqueue(task_name: str, ids: Iterable) -> None:
    """Ask Celery, after commit, to process these rows. Never raises: if the broker is down the sweep catches up."""
    ids = [str(i) if not isinstance(i, int) else i for i in ids]
    if not ids:
        return

    def publish() -> None:
        from . import tasks

        task = getattr(tasks, task_name)
        try:
            # One producer (one broker connection) for the whole batch, not one per message.
            with task.app.producer_or_acquire() as producer:
                for row_id in ids:
                    task.apply_async((row_id,), retry=False, producer=producer)
        except Exception as error:  # broker unreachable: the rows stay pending for the sweep
            logger.warning(
                "could not enqueue %d %s task(s): %s; the outbox sweep will retry", len(ids), task_name, error
            )

    transaction.on_commit(publish)


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter, capped (and always far below the Redis visibility timeout)."""
    ceiling = min(settings.OUTBOX_BACKOFF_MAX, settings.OUTBOX_BACKOFF_BASE * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


# ------------------------------------------------------------------------------------------------- events


def handover_payload(handover: Handover) -> dict:
    project = handover.project
    return {
        "handover": {
            "id": handover.pk,
            "status": handover.status,
            "target_date": handover.target_date.isoformat(),
            "operations_owner": handover.operations_owner_id,
            "receiving_team": handover.receiving_team_id,
            "url": f"{settings.SITE_URL}/api/v1/handovers/{handover.pk}/",
        },
        "project": {"id": project.pk, "code": project.code, "name": project.name, "stage": project.stage},
    }


def emit(
    event_type: EventType | str,
    *,
    data: dict,
    now: datetime | None = None,
    handover: Handover | None = None,
    dedupe_key: str | None = None,
) -> Event | None:
    """Record an event and one delivery per active subscription that wants it; send after commit.

    Nothing is written when no subscription wants the event. With a ``dedupe_key``, emitting the same fact twice
    (two detection passes, a retried sweep) records it once.
    """
    events = emit_many(event_type, [(data, handover.pk if handover else None, dedupe_key)], now=now)
    return events[0] if events else None


def emit_many(
    event_type: EventType | str, items: list[tuple[dict, int | None, str | None]], *, now=None
) -> list[Event]:
    """``emit`` for many events of one type in a fixed number of queries; ``items`` are (data, handover id, key)."""
    subscriptions = [s for s in WebhookSubscription.objects.filter(is_active=True) if s.wants(str(event_type))]
    if not subscriptions or not items:
        return []
    now = now or timezone.now()
    events = [
        Event(
            type=event_type,
            dedupe_key=key,
            handover_id=handover_id,
            payload={"type": str(event_type), "timestamp": now.isoformat(), "data": data},
            created_at=now,
        )
        for data, handover_id, key in items
    ]
    keyed = [e.dedupe_key for e in events if e.dedupe_key]
    Event.objects.bulk_create(events, ignore_conflicts=True)
    if keyed:
        # With ignore_conflicts the rows that already existed keep their own ids; read back what is stored.
        events = [e for e in events if not e.dedupe_key] + list(Event.objects.filter(dedupe_key__in=keyed))
    deliveries = [
        WebhookDelivery(event=event, subscription=s, next_attempt_at=now, created_at=now)
        for event in events
        for s in subscriptions
    ]
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    pending = WebhookDelivery.objects.filter(
        event__in=[e.pk for e in events], status=DeliveryStatus.PENDING
    ).values_list("pk", flat=True)
    enqueue("deliver_webhook", list(pending))
    return events


def publish_project_events(*, now: datetime | None = None, window: timedelta = timedelta(hours=24)) -> int:
    """Turn recent project stage moves into ``project.stage_changed`` events.

    The projects app does not depend on this one, so its history table is read here, like a change feed. Reading
    a window (rather than "after the last id") means a move committed late is not skipped; the dedupe key makes
    reading it twice harmless.
    """
    now = now or timezone.now()
    # Unpublished moves only (an anti-join on the dedupe key), oldest first, so a busy day cannot starve any.
    moves = list(
        ProjectEvent.objects.filter(kind=ProjectEventKind.STAGE_CHANGED, created_at__gte=now - window)
        .annotate(key=Concat(Value("project_event:"), Cast("pk", output_field=CharField())))
        .exclude(Exists(Event.objects.filter(dedupe_key=OuterRef("key"))))
        .select_related("project", "actor")
        .order_by("created_at", "id")[:SWEEP_BATCH]
    )
    items = [
        (
            {
                "project": {"id": m.project_id, "code": m.project.code, "name": m.project.name},
                "from": m.from_stage,
                "to": m.to_stage,
                "reason": m.reason,
                "by": m.actor.get_username() if m.actor else None,
                "at": m.created_at.isoformat(),
            },
            None,
            f"project_event:{m.pk}",
        )
        for m in moves
    ]
    return len(emit_many(EventType.PROJECT_STAGE_CHANGED, items, now=now))


# -------------------------------------------------------------------------------------------------- claim


def _claim(model, pk, now: datetime) -> bool:
    """pending → sending, for exactly one caller however many tasks carry the same id."""
    return bool(
        model.objects.filter(pk=pk, status=DeliveryStatus.PENDING, next_attempt_at__lte=now).update(
            status=DeliveryStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    )


def _fail(model, row, now: datetime, error: str, **fields) -> None:
    """Schedule another attempt, or give up after ``OUTBOX_MAX_ATTEMPTS``."""
    exhausted = row.attempts >= settings.OUTBOX_MAX_ATTEMPTS
    model.objects.filter(pk=row.pk, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.FAILED if exhausted else DeliveryStatus.PENDING,
        next_attempt_at=now + backoff(row.attempts),
        last_error=error[:2000],
        **fields,
    )


# ---------------------------------------------------------------------------------------- notifications


def send_notification(notification_id: int, *, now: datetime | None = None) -> bool:
    """Send one email notification if it is due and not yet claimed; returns whether this call sent it."""
    now = now or timezone.now()
    snoozed = (
        Notification.objects.filter(pk=notification_id, status=DeliveryStatus.PENDING, flag__snoozed_until__gt=now)
        .values_list("flag__snoozed_until", flat=True)
        .first()
    )
    if snoozed is not None:
        # A snoozed flag sends nothing until its date; the sweep brings the row back then.
        Notification.objects.filter(pk=notification_id, status=DeliveryStatus.PENDING).update(next_attempt_at=snoozed)
        return False
    if not _claim(Notification, notification_id, now):
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
    except Exception as error:  # SMTP and network errors: try again later
        logger.warning("email notification %s failed: %s", notification_id, error)
        _fail(Notification, notification, now, f"{type(error).__name__}: {error}")
        return False
    Notification.objects.filter(pk=notification_id, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    return True


@transaction.atomic
def notifications_mark_read(*, user, ids: Iterable[int] | None = None) -> int:
    """Mark the user's in-app notifications read (all of them when ``ids`` is None); returns how many changed."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


# --------------------------------------------------------------------------------------------- webhooks


def sign(subscription: WebhookSubscription, *, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt; the id stays the same across retries."""
    signature = Webhook(subscription.secret).sign(msg_id, timestamp, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "Handover-Webhooks/1",
    }


def deliver_webhook(delivery_id: int, *, now: datetime | None = None) -> bool:
    """POST one event to one subscriber if due and not yet claimed; returns whether it was accepted (2xx)."""
    now = now or timezone.now()
    if not _claim(WebhookDelivery, delivery_id, now):
        return False
    delivery = WebhookDelivery.objects.select_related("event", "subscription").get(pk=delivery_id)
    body = json.dumps(delivery.event.payload, separators=(",", ":"), sort_keys=True)
    headers = sign(delivery.subscription, msg_id=f"msg_{delivery.event_id.hex}", timestamp=timezone.now(), body=body)
    # The URL was validated as http(s) when the subscription was made.
    request = urllib.request.Request(delivery.subscription.url, data=body.encode(), headers=headers, method="POST")
    code, error = None, ""
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            code = response.status
    except urllib.error.HTTPError as http_error:
        code, error = http_error.code, f"HTTP {http_error.code}"
    except (OSError, ValueError) as network_error:  # refused, timeout, DNS, bad URL
        error = f"{type(network_error).__name__}: {network_error}"
    if code is not None and 200 <= code < 300:
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.SENT, delivered_at=timezone.now(), last_status_code=code, last_error=""
        )
        return True
    _fail(WebhookDelivery, delivery, now, error or f"HTTP {code}", last_status_code=code)
    return False


# ------------------------------------------------------------------------------------------------- sweep


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Free rows whose worker died, re-enqueue rows that are due, and publish recent project stage moves."""
    now = now or timezone.now()
    stuck = Q(status=DeliveryStatus.SENDING, claimed_at__lt=now - STUCK_AFTER)
    freed = Notification.objects.filter(stuck).update(status=DeliveryStatus.PENDING, next_attempt_at=now)
    freed += WebhookDelivery.objects.filter(stuck).update(status=DeliveryStatus.PENDING, next_attempt_at=now)
    due = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    notifications = list(Notification.objects.filter(due).values_list("pk", flat=True)[:SWEEP_BATCH])
    deliveries = list(WebhookDelivery.objects.filter(due).values_list("pk", flat=True)[:SWEEP_BATCH])
    with transaction.atomic():
        enqueue("send_notification", notifications)
        enqueue("deliver_webhook", deliveries)
        published = publish_project_events(now=now)
    return {"freed": freed, "notifications": len(notifications), "deliveries": len(deliveries), "published": published}


# ------------------------------------------------------------------------------------ webhook subscriptions

WEBHOOK_FIELDS = ("url", "events", "description", "is_active")


def _require_admin(by) -> None:
    if not by.is_staff:
        # Payloads describe every handover, confidential ones included: subscriptions are an administrator's.
        raise NotPermitted("Only an administrator may manage webhooks.", rule="admin_only")


def _clean_events(events) -> list[str]:
    events = list(events or [])
    unknown = sorted(set(events) - set(EventType.values))
    if unknown:
        raise InvalidInput(f"Unknown event types: {', '.join(unknown)}.", rule="unknown_event", field="events")
    return sorted(set(events))


@transaction.atomic
def webhook_create(*, by, url: str, events=(), description: str = "", is_active: bool = True) -> WebhookSubscription:
    """Subscribe a URL to events (all of them when ``events`` is empty); the signing secret is generated here."""
    _require_admin(by)
    subscription = WebhookSubscription(
        owner=by,
        url=url,
        events=_clean_events(events),
        description=description,
        is_active=is_active,
        secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )
    clean_or_raise(subscription, exclude=["owner"])
    _require_http(subscription.url)
    subscription.save()
    return subscription


@transaction.atomic
def webhook_update(*, subscription: WebhookSubscription, by, **changes) -> WebhookSubscription:
    _require_admin(by)
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if "events" in changes:
        changes["events"] = _clean_events(changes["events"])
    apply_changes(subscription, changes, allowed=WEBHOOK_FIELDS)
    clean_or_raise(subscription, exclude=["owner"])
    _require_http(subscription.url)
    subscription.save()
    return subscription


@transaction.atomic
def webhook_delete(*, subscription: WebhookSubscription, by) -> None:
    _require_admin(by)
    subscription.delete()


def _require_http(url: str) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput("The URL must be http or https.", rule="invalid_url", field="url")
