"""Services that tell people and tools what happened: the outbox of notifications and webhook deliveries.

The database is the source of truth. A change writes the rows that must be sent (``Notification``,
``Event`` + ``WebhookDelivery``) in its own transaction and asks Celery, after commit, to send them: every id a
transaction enqueues is published by one after-commit callback, over one broker connection with tight timeouts,
and a failure opens a short circuit breaker, so a hung or unreachable broker costs a request well under a second,
once. A send task claims its row with compare-and-set (pending → sending) so that a retried or duplicated task
sends once; a sweep re-enqueues rows that were never published or whose message was lost (for instance because
the broker was down when the change committed) and frees rows whose worker died mid-send, counting the attempt.
Retries are rows with a later ``next_attempt_at``, picked up by the sweep, so no task ever waits on a long
countdown in Redis.
"""

import base64
import json
import logging
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config.errors import InvalidInput, NotPermitted
from config.validation import apply_changes, clean_or_raise
from projects.choices import ProjectEventKind
from projects.models import ProjectEvent

from .audit import admin_event
from .choices import AdminEventKind, DeliveryStatus, EventType
from .models import Event, Handover, Notification, OutboxSweep, WebhookDelivery, WebhookSubscription
from .selectors import inbox

logger = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=10)  # well above the task time limit: a row still "sending" then has lost its worker
SWEEP_BATCH = 500

# Which model each send task claims from: after a successful publish its rows record ``enqueued_at``.
TASK_MODELS = {"send_notification": Notification, "deliver_webhook": WebhookDelivery}

# ------------------------------------------------------------------------------------------------ enqueue


class _Breaker:
    """After a failed publish this process skips publishing for a while: the rows wait for the sweep.

    Without it every request would pay the broker's timeout again while the broker is down.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_until = 0.0

    def is_open(self) -> bool:
        with self._lock:
            return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + settings.OUTBOX_PUBLISH_BREAKER

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


publish_breaker = _Breaker()


class _Batch:
    """The ids one transaction enqueues, by task; published together by one after-commit callback."""

    def __init__(self) -> None:
        self.ids: dict[str, list] = defaultdict(list)
        self.published = False

    def publish(self) -> None:
        self.published = True
        _publish(self.ids)


def enqueue(task_name: str, ids: Iterable) -> None:
    """Ask Celery, after commit, to process these rows. Never raises: if the broker is down the sweep catches up.

    All the ids enqueued in one transaction (a request that emits several events, a detection rule's pass) go out
    in a single publish after its commit, over one broker connection.
    """
    ids = [str(i) if not isinstance(i, int) else i for i in ids]
    if not ids:
        return
    connection = transaction.get_connection()
    batch = getattr(connection, "_outbox_batch", None)
    if batch is None or not _still_registered(connection, batch):
        batch = _Batch()
        connection._outbox_batch = batch
        batch.ids[task_name].extend(ids)
        # Outside a transaction on_commit runs the publish at once; inside, after the outermost commit.
        transaction.on_commit(batch.publish)
    else:
        # Ids added inside a savepoint that is later rolled back are published too: their task finds no row.
        batch.ids[task_name].extend(ids)


def _still_registered(connection, batch: _Batch) -> bool:
    """Whether ``batch`` still waits for this transaction's commit (it was not run, nor dropped by a rollback)."""
    return (
        not batch.published
        and connection.in_atomic_block
        and any(entry[1] == batch.publish for entry in connection.run_on_commit)
    )


def _publish(batch: dict[str, list]) -> None:
    from . import tasks

    batch = {name: ids for name, ids in batch.items() if ids}
    if not batch:
        return
    count = sum(len(ids) for ids in batch.values())
    if publish_breaker.is_open():
        logger.info("broker recently unreachable: %d task(s) left for the outbox sweep", count)
        return
    app = tasks.send_notification.app
    timeout = settings.OUTBOX_PUBLISH_TIMEOUT
    options = {}
    if str(app.conf.broker_url or "").startswith(("redis://", "rediss://")):
        options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    published: dict[str, list] = defaultdict(list)
    try:
        # One connection and one producer for every message of the transaction.
        with app.connection_for_write(connect_timeout=timeout, transport_options=options) as connection:
            producer = app.amqp.Producer(connection)
            for name, ids in batch.items():
                task = getattr(tasks, name)
                for row_id in ids:
                    task.apply_async((row_id,), producer=producer, retry=False)
                    published[name].append(row_id)
    except Exception as error:  # broker unreachable or hung: the rows stay pending for the sweep
        publish_breaker.trip()
        logger.warning(
            "could not enqueue %d of %d task(s) (%s: %s); not publishing for %.0f s, the outbox sweep will retry",
            count - sum(len(ids) for ids in published.values()),
            count,
            type(error).__name__,
            error,
            settings.OUTBOX_PUBLISH_BREAKER,
        )
    now = timezone.now()
    for name, ids in published.items():
        model = TASK_MODELS.get(name)
        if model is not None:
            model.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING).update(enqueued_at=now)


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter, capped (and always far below the Redis visibility timeout)."""
    ceiling = min(settings.OUTBOX_BACKOFF_MAX, settings.OUTBOX_BACKOFF_BASE * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


# ------------------------------------------------------------------------------------------------- events


def handover_web_url(handover: Handover) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("handover:detail", kwargs={"pk": handover.pk})


def handover_payload(handover: Handover) -> dict:
    project = handover.project
    return {
        "handover": {
            "id": handover.pk,
            "status": handover.status,
            "target_date": handover.target_date.isoformat(),
            "operations_owner": handover.operations_owner_id,
            "receiving_team": handover.receiving_team_id,
            "url": f"{settings.SITE_URL.rstrip('/')}/api/v1/handovers/{handover.pk}/",  # for tools: the API resource
            "web_url": handover_web_url(handover),  # for people: the page in the web UI
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
    """Count the claimed attempt as failed: schedule another, or give up after ``OUTBOX_MAX_ATTEMPTS``.

    Guarded by the claim's own ``claimed_at``, so that only the attempt that claimed the row can fail it.
    """
    exhausted = row.attempts >= settings.OUTBOX_MAX_ATTEMPTS
    model.objects.filter(pk=row.pk, status=DeliveryStatus.SENDING, claimed_at=row.claimed_at).update(
        status=DeliveryStatus.FAILED if exhausted else DeliveryStatus.PENDING,
        next_attempt_at=now + backoff(row.attempts),
        last_error=error[:2000],
        **fields,
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------- notifications


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
    except Exception as error:  # SMTP, network, timeout, a bad reply, a soft time limit: try again later
        logger.warning(
            "email notification %s failed (attempt %d): %s", notification_id, notification.attempts, _describe(error)
        )
        _fail(Notification, notification, now, _describe(error))
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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A receiver answering 3xx has not accepted the event: the redirect is a failed attempt, never followed
    (following it would re-send a signed payload to wherever the receiver points)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_webhook_opener = urllib.request.build_opener(_NoRedirects)


def deliver_webhook(delivery_id: int, *, now: datetime | None = None) -> bool:
    """POST one event to one subscriber if due and not yet claimed; returns whether it was accepted (2xx).

    Whatever goes wrong with the request (refused, timeout, a reply that is not HTTP, a 3xx, 4xx or 5xx) is one
    failed attempt, logged with its error and code: the row goes back to pending with backoff, or to failed after
    ``OUTBOX_MAX_ATTEMPTS``; it is never left in "sending".
    """
    now = now or timezone.now()
    if not _claim(WebhookDelivery, delivery_id, now):
        return False
    delivery = WebhookDelivery.objects.select_related("event", "subscription").get(pk=delivery_id)
    code, error = None, ""
    try:
        body = json.dumps(delivery.event.payload, separators=(",", ":"), sort_keys=True)
        headers = sign(
            delivery.subscription, msg_id=f"msg_{delivery.event_id.hex}", timestamp=timezone.now(), body=body
        )
        # The URL was validated as http(s) when the subscription was made.
        request = urllib.request.Request(delivery.subscription.url, data=body.encode(), headers=headers, method="POST")
        with _webhook_opener.open(request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            code = response.status
    except urllib.error.HTTPError as http_error:  # 3xx (not followed), 4xx, 5xx
        code, error = http_error.code, f"HTTP {http_error.code}"
        http_error.close()
    except Exception as failure:  # refused, timeout, DNS, a garbage reply (BadStatusLine), a soft time limit
        error = _describe(failure)
    if code is not None and 200 <= code < 300:
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=DeliveryStatus.SENDING, claimed_at=delivery.claimed_at
        ).update(status=DeliveryStatus.SENT, delivered_at=timezone.now(), last_status_code=code, last_error="")
        return True
    error = error or f"HTTP {code}"
    logger.warning("webhook delivery %s failed (attempt %d): %s", delivery_id, delivery.attempts, error)
    _fail(WebhookDelivery, delivery, now, error, last_status_code=code)
    return False


# ------------------------------------------------------------------------------------------------- sweep


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Free rows whose worker died, re-enqueue rows that are due, and publish recent project stage moves.

    A row left in "sending" past ``STUCK_AFTER`` lost its worker mid-send (killed at the hard time limit, say):
    that attempt counts, so a send that always kills its worker ends failed instead of looping. A due row is
    published again only if no task was published for it since it became due, or that was long ago
    (``OUTBOX_REQUEUE_AFTER``: a message lost with the broker); oldest first, so none starves.
    """
    now = now or timezone.now()
    freed = 0
    for model in (Notification, WebhookDelivery):
        for row in model.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=now - STUCK_AFTER):
            logger.warning(
                "%s %s was stuck in sending since %s: counted as a failed attempt",
                model.__name__,
                row.pk,
                row.claimed_at.isoformat(),
            )
            _fail(model, row, now, f"The worker was lost mid-send (claimed at {row.claimed_at.isoformat()}).")
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
        enqueue("send_notification", notifications)
        enqueue("deliver_webhook", deliveries)
        published = publish_project_events(now=now)
        summary = {
            "freed": freed,
            "notifications": len(notifications),
            "deliveries": len(deliveries),
            "published": published,
        }
        OutboxSweep.objects.update_or_create(name="outbox", defaults={"finished_at": timezone.now(), **summary})
    return summary


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
    admin_event(
        AdminEventKind.WEBHOOK_CREATED,
        by=by,
        subject=subscription.url,
        object_id=subscription.pk,
        changes={"events": subscription.events, "is_active": subscription.is_active},
    )
    return subscription


@transaction.atomic
def webhook_update(*, subscription: WebhookSubscription, by, **changes) -> WebhookSubscription:
    _require_admin(by)
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if "events" in changes:
        changes["events"] = _clean_events(changes["events"])
    diff = apply_changes(subscription, changes, allowed=WEBHOOK_FIELDS)
    if not diff:
        return subscription
    clean_or_raise(subscription, exclude=["owner"])
    _require_http(subscription.url)
    subscription.save()
    admin_event(
        AdminEventKind.WEBHOOK_UPDATED, by=by, subject=subscription.url, object_id=subscription.pk, changes=diff
    )
    return subscription


@transaction.atomic
def webhook_delete(*, subscription: WebhookSubscription, by) -> None:
    _require_admin(by)
    pk, url = subscription.pk, subscription.url
    subscription.delete()
    admin_event(AdminEventKind.WEBHOOK_DELETED, by=by, subject=url, object_id=pk)


def _require_http(url: str) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput("The URL must be http or https.", rule="invalid_url", field="url")
