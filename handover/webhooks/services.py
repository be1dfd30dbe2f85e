"""Outbound webhooks: events recorded in the transaction of the change, one signed delivery per subscription.

``emit`` writes an ``Event`` and a ``WebhookDelivery`` per active subscription that wants it, and enqueues the
deliveries on the outbox (``handover.outbox.queue``), which publishes them after commit; ``deliver_webhook`` is
the send task's service. Subscriptions are an administrator's, audited. Events about a confidential project go only
to subscriptions that opted in (``include_confidential``). Every URL passes the outbound guard
(``config.outbound``) when it is saved and again before each delivery.
"""

import base64
import json
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config import outbound
from config.errors import InvalidInput, NotPermitted
from config.validation import apply_changes, clean_or_raise
from handover.audit import admin_event
from handover.choices import AdminEventKind, DeliveryStatus, EventType
from handover.models import Event, Handover, WebhookDelivery, WebhookSubscription
from handover.outbox.queue import claim, describe, enqueue, fail
from projects.choices import ProjectEventKind
from projects.models import ProjectEvent

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 500  # project stage moves turned into events per sweep, oldest first

# One event to emit: its data, its handover's id, its dedupe key, and whether it is about a confidential project.
EventItem = tuple[dict[str, Any], int | None, str | None, bool]

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
    confidential: bool | None = None,
) -> Event | None:
    """Record an event and one delivery per active subscription that wants it; send after commit.

    Nothing is written when no subscription wants the event. With a ``dedupe_key``, emitting the same fact twice
    (two detection passes, a retried sweep) records it once. An event about a handover is confidential when its
    project is (``confidential`` overrides that, for an event without a handover).
    """
    if confidential is None:
        confidential = bool(handover and handover.project.confidential)
    events = emit_many(event_type, [(data, handover.pk if handover else None, dedupe_key, confidential)], now=now)
    return events[0] if events else None


def emit_many(
    event_type: EventType | str,
    items: Sequence[EventItem],
    *,
    now: datetime | None = None,
) -> list[Event]:
    """``emit`` for many events of one type in a fixed number of queries; ``items`` are (data, handover id, key,
    confidential). A confidential event goes only to the subscriptions that opted in to confidential projects, and
    is not recorded at all when none did."""
    subscriptions = [s for s in WebhookSubscription.objects.filter(is_active=True) if s.wants(str(event_type))]
    if not any(s.include_confidential for s in subscriptions):
        items = [item for item in items if not item[3]]
    if not subscriptions or not items:
        return []
    now = now or timezone.now()
    events = [
        Event(
            type=event_type,
            dedupe_key=key,
            handover_id=handover_id,
            payload={"type": str(event_type), "timestamp": now.isoformat(), "data": data},
            confidential=confidential,
            created_at=now,
        )
        for data, handover_id, key, confidential in items
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
        if s.include_confidential or not event.confidential
    ]
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    pending = WebhookDelivery.objects.filter(
        event__in=[e.pk for e in events], status=DeliveryStatus.PENDING
    ).values_list("pk", flat=True)
    enqueue(WebhookDelivery, list(pending))
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
        .order_by("created_at", "id")[:PUBLISH_BATCH]
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
            m.project.confidential,  # as it is when published
        )
        for m in moves
    ]
    return len(emit_many(EventType.PROJECT_STAGE_CHANGED, items, now=now))


# ----------------------------------------------------------------------------------------------- delivery


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
    """POST one event to one subscriber if due and not yet claimed; returns whether it was accepted (2xx).

    Whatever goes wrong with the request (the outbound guard refusing the address the name resolves to now,
    refused, timeout, a reply that is not HTTP, a 3xx, 4xx or 5xx) is one failed attempt, logged with its error and
    code: the row goes back to pending with backoff, or to failed after ``OUTBOX_MAX_ATTEMPTS``; it is never left in
    "sending". A 3xx is never followed: it would re-send a signed payload to wherever the receiver points.
    """
    now = now or timezone.now()
    # What the subscription no longer wants is not sent: switched off, or no longer opted in to confidential
    # projects, since the delivery was recorded (or before an upgrade that introduced the opt-in).
    unwanted = Q(subscription__is_active=False) | Q(event__confidential=True, subscription__include_confidential=False)
    if WebhookDelivery.objects.filter(unwanted, pk=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED, last_error="The subscription no longer takes this event."
    ):
        return False
    if not claim(WebhookDelivery, delivery_id, now):
        return False
    delivery = WebhookDelivery.objects.select_related("event", "subscription").get(pk=delivery_id)
    code, error = None, ""
    try:
        body = json.dumps(delivery.event.payload, separators=(",", ":"), sort_keys=True)
        headers = sign(
            delivery.subscription, msg_id=f"msg_{delivery.event_id.hex}", timestamp=timezone.now(), body=body
        )
        # Checked when the subscription was saved, and again now: the name may resolve elsewhere today (rebinding).
        # The request connects to the very address that was checked.
        response = outbound.request(
            "POST", delivery.subscription.url, body=body.encode(), headers=headers, timeout=settings.WEBHOOK_TIMEOUT
        )
        code = response.status
    except outbound.OutboundRefused as refused:
        error = f"Refused by the outbound guard: {refused.reason}"
    except Exception as failure:  # refused, timeout, a garbage reply (BadStatusLine), a soft time limit
        error = describe(failure)
    if code is not None and 200 <= code < 300:
        WebhookDelivery.objects.filter(
            pk=delivery_id, status=DeliveryStatus.SENDING, claimed_at=delivery.claimed_at
        ).update(status=DeliveryStatus.SENT, delivered_at=timezone.now(), last_status_code=code, last_error="")
        return True
    error = error or f"HTTP {code}"
    logger.warning("webhook delivery %s failed (attempt %d): %s", delivery_id, delivery.attempts, error)
    fail(WebhookDelivery, delivery, now, error, last_status_code=code)
    return False


# ------------------------------------------------------------------------------------ webhook subscriptions

WEBHOOK_FIELDS = ("url", "events", "description", "is_active", "include_confidential")


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


def webhook_create(
    *,
    by,
    url: str,
    events=(),
    description: str = "",
    is_active: bool = True,
    include_confidential: bool = False,
) -> WebhookSubscription:
    """Subscribe a URL to events (all of them when ``events`` is empty); the signing secret is generated here.
    Events about confidential projects are sent only with ``include_confidential``."""
    _require_admin(by)
    subscription = WebhookSubscription(
        owner=by,
        url=url,
        events=_clean_events(events),
        description=description,
        is_active=is_active,
        include_confidential=include_confidential,
        secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )
    clean_or_raise(subscription, exclude=["owner"])
    # The guard resolves the host: before the transaction, so that no lock waits on DNS.
    _require_allowed_url(subscription.url)
    with transaction.atomic():
        subscription.save()
        admin_event(
            AdminEventKind.WEBHOOK_CREATED,
            by=by,
            subject=subscription.url,
            object_id=subscription.pk,
            changes={
                "events": subscription.events,
                "is_active": subscription.is_active,
                "include_confidential": subscription.include_confidential,
            },
        )
    return subscription


def webhook_update(*, subscription: WebhookSubscription, by, **changes) -> WebhookSubscription:
    _require_admin(by)
    if "url" in changes and changes["url"] != subscription.url:
        # The guard resolves the host: before the transaction, so that no lock waits on DNS.
        _require_allowed_url(str(changes["url"]))
    with transaction.atomic():
        return _webhook_update(subscription=subscription, by=by, changes=changes)


def _webhook_update(*, subscription: WebhookSubscription, by, changes: dict[str, Any]) -> WebhookSubscription:
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if "events" in changes:
        changes["events"] = _clean_events(changes["events"])
    diff = apply_changes(subscription, changes, allowed=WEBHOOK_FIELDS)
    if not diff:
        return subscription
    clean_or_raise(subscription, exclude=["owner"])
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


def _require_allowed_url(url: str) -> None:
    """The outbound guard at subscription time: an address the server must not call is refused now, not at the
    first delivery (which checks again, since a name may resolve elsewhere by then)."""
    _require_http(url)
    try:
        outbound.check(url)
    except outbound.OutboundUnresolvable as refused:
        raise InvalidInput(
            f"{refused.reason} A webhook URL must resolve to a public address.", rule="url_unresolvable", field="url"
        ) from refused
    except outbound.OutboundRefused as refused:
        raise InvalidInput(refused.reason, rule="url_not_allowed", field="url") from refused
