"""Celery task of the outbox: the sweep, which beat runs every minute. Also the retry policy every task shares."""

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .sweep import sweep

# Transient database errors are retried with capped, jittered backoff; the cap stays far below the Redis
# visibility timeout (1 hour) so a waiting retry is never redelivered as a duplicate.
RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}

# Task names are part of the wire format (beat's schedule, messages already queued): they keep the names they had
# when every task lived in handover/tasks.py.


@shared_task(name="handover.tasks.sweep_outbox", **RETRY)
def sweep_outbox() -> dict[str, int]:
    return sweep()
