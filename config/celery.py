"""The Celery app: broker from REDIS_URL (or an embedded filesystem broker under var/ when it is unset).

Its configuration (JSON, time limits, retries, the beat schedule) is the ``CELERY_`` part of
``config/settings/base.py``.
"""

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import beat_init
from django.db import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("handover")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Transient database errors are retried with capped, jittered backoff; the cap stays far below the Redis
# visibility timeout (1 hour) so a waiting retry is never redelivered as a duplicate. Every task uses this.
RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}

# Each subsystem of the handover app keeps its tasks in its own package.
app.autodiscover_tasks(["handover.stalls", "handover.notifications", "handover.webhooks", "handover.outbox"])


@beat_init.connect
def _first_pass_at_start(**_) -> None:
    """Beat's interval entries first fire one interval after it starts; run each job once now, so that a freshly
    started beat shows in /healthz within seconds rather than minutes. Both jobs are idempotent."""
    for entry in app.conf.beat_schedule.values():
        try:
            app.send_task(entry["task"], **entry.get("options", {}))
        except Exception as error:  # the broker is down: beat's own schedule tries again later
            logging.getLogger(__name__).warning("could not send %s at beat start: %s", entry["task"], error)
