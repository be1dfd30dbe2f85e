"""The outbox's delivery mechanism, shared by every channel: enqueue after commit, claim once, retry with backoff.

The database is the source of truth. A change writes the rows that must be sent (a ``Notification``, a
``WebhookDelivery``: any model with an ``OUTBOX_TASK`` name and the outbox columns) in its own transaction and asks
Celery, after commit, to send them. Every id a thread enqueues waits in one batch until the first after-commit
callback publishes the whole batch, over one broker connection with tight timeouts; a failure opens a short circuit
breaker, so a hung or unreachable broker costs a request well under a second, once. A send task claims its row with
compare-and-set (pending → sending) so that a retried or duplicated task sends once; the sweep
(``handover.outbox.sweep``) re-enqueues rows that were never published or whose message was lost and frees rows
whose worker died mid-send. Retries are rows with a later ``next_attempt_at``, picked up by the sweep, so no task
ever waits on a long countdown in Redis.

Only Django's and Celery's public API is used: ``transaction.on_commit`` and ``send_task`` by name, so this module
imports no task and no channel.
"""

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from config.celery import app as celery_app
from handover.choices import DeliveryStatus

logger = logging.getLogger(__name__)

STUCK_AFTER = timedelta(minutes=10)  # well above the task time limit: a row still "sending" then has lost its worker


class OutboxRow(Protocol):
    """What the outbox needs of a row it sends: the claim's bookkeeping."""

    pk: Any
    attempts: int
    claimed_at: datetime | None


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

Batch = dict[type[models.Model], list[Any]]


class _Pending(threading.local):
    """The ids this thread enqueued and has not published yet, by model."""

    def __init__(self) -> None:
        self.batch: Batch = defaultdict(list)


_pending = _Pending()


def enqueue(model: type[models.Model], ids: Iterable[Any]) -> None:
    """Ask Celery, after commit, to send these rows of ``model``. Never raises: if the broker is down the sweep
    catches up.

    Each call registers an after-commit callback, but the first one to run publishes everything the thread has
    enqueued, so all the ids of one transaction (a request that emits several events, a detection rule's pass) go
    out in a single publish over one broker connection, and the later callbacks find nothing left to do. Outside a
    transaction the callback runs at once. Ids enqueued inside a savepoint or a transaction that rolled back stay
    in the batch (Django offers no public hook for a rollback), so the publish first keeps only the ids whose row
    exists and is still pending: one indexed query per model, after the commit.
    """
    ids = [i if isinstance(i, int) else str(i) for i in ids]
    if not ids:
        return
    _pending.batch[model].extend(ids)
    # robust: the change has committed by then, so an error while publishing (the database busy while marking the
    # rows enqueued, say) is logged, never raised into the request that made it; the sweep catches up.
    transaction.on_commit(_publish_pending, robust=True)


def _publish_pending() -> None:
    batch, _pending.batch = _pending.batch, defaultdict(list)
    if not any(batch.values()):
        return  # an earlier callback of this commit published it all
    pending: Batch = {}
    for model, ids in batch.items():
        rows = model._default_manager.filter(pk__in=set(ids), status=DeliveryStatus.PENDING)
        exists = set(rows.values_list("pk", flat=True))
        if exists:
            pending[model] = [pk for pk in dict.fromkeys(ids) if pk in exists]  # in the order enqueued, once each
    if pending:
        _publish(pending)


def _publish(batch: Batch) -> None:
    batch = {model: ids for model, ids in batch.items() if ids}
    if not batch:
        return
    count = sum(len(ids) for ids in batch.values())
    if publish_breaker.is_open():
        logger.info("broker recently unreachable: %d task(s) left for the outbox sweep", count)
        return
    timeout = settings.OUTBOX_PUBLISH_TIMEOUT
    options = {}
    if str(celery_app.conf.broker_url or "").startswith(("redis://", "rediss://")):
        options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    published: Batch = defaultdict(list)
    try:
        # One connection and one producer for every message of the transaction.
        with celery_app.connection_for_write(connect_timeout=timeout, transport_options=options) as connection:
            producer = celery_app.amqp.Producer(connection)
            for model, ids in batch.items():
                task_name = model.OUTBOX_TASK  # type: ignore[attr-defined]
                for row_id in ids:
                    celery_app.send_task(task_name, args=(row_id,), producer=producer, retry=False)
                    published[model].append(row_id)
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
    for model, ids in published.items():
        model._default_manager.filter(pk__in=ids, status=DeliveryStatus.PENDING).update(enqueued_at=now)


# ------------------------------------------------------------------------------------------ claim and fail


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter, capped (and always far below the Redis visibility timeout)."""
    ceiling = min(settings.OUTBOX_BACKOFF_MAX, settings.OUTBOX_BACKOFF_BASE * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def claim(model: type[models.Model], pk: Any, now: datetime) -> bool:
    """pending → sending, for exactly one caller however many tasks carry the same id."""
    return bool(
        model._default_manager.filter(pk=pk, status=DeliveryStatus.PENDING, next_attempt_at__lte=now).update(
            status=DeliveryStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    )


def fail(model: type[models.Model], row: OutboxRow, now: datetime, error: str, **fields: Any) -> None:
    """Count the claimed attempt as failed: schedule another, or give up after ``OUTBOX_MAX_ATTEMPTS``.

    Guarded by the claim's own ``claimed_at``, so that only the attempt that claimed the row can fail it.
    """
    exhausted = row.attempts >= settings.OUTBOX_MAX_ATTEMPTS
    model._default_manager.filter(pk=row.pk, status=DeliveryStatus.SENDING, claimed_at=row.claimed_at).update(
        status=DeliveryStatus.FAILED if exhausted else DeliveryStatus.PENDING,
        next_attempt_at=now + backoff(row.attempts),
        last_error=error[:2000],
        **fields,
    )


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
