"""Project-level views: the health check."""

import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _timed(check) -> dict:
    started = time.monotonic()
    try:
        result = check()
    except Exception as error:  # a health check reports failures, it does not raise them
        return {"status": "down", "error": f"{type(error).__name__}: {error}"}
    return {"status": "up", **result, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


# When this (web) process started: beat gets one interval and a minute to make its first pass before /healthz
# calls the scheduler down.
_STARTED = time.monotonic()


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _broker() -> dict:
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
        return {"transport": "redis"}
    if settings.CELERY_BROKER_URL.startswith("memory://"):
        return {"transport": "memory"}  # the test suite's in-process broker
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (has the worker started?)")
    return {"transport": "filesystem", "queued": sum(1 for _ in folder.iterdir())}


def _freshness(last: datetime | None, interval: int) -> str:
    """up; stale when the job missed about three of its intervals; down when it never ran once this process
    has been up longer than one interval and a minute (beat's first pass comes one interval after it starts)."""
    if last is None:
        grace = interval + 60
        return "waiting" if time.monotonic() - _STARTED < grace else "down"
    return "stale" if timezone.now() - last > timedelta(seconds=3 * interval) else "up"


def _scheduler() -> dict:
    """Beat's last detection pass. Passes run by ``manage.py detect_stalls`` (``make migrate`` runs one) prove
    nothing about beat, so they are shown apart and never make the scheduler "up"."""
    from handover.choices import DetectionSource
    from handover.models import DetectionRun

    def last(source: str) -> datetime | None:
        return (
            DetectionRun.objects.filter(source=source, finished_at__isnull=False)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )

    beat, command = last(DetectionSource.BEAT), last(DetectionSource.COMMAND)
    return {
        "status": _freshness(beat, settings.STALL_DETECT_INTERVAL),
        "last_pass": beat and beat.isoformat(),
        "interval_s": settings.STALL_DETECT_INTERVAL,
        "last_command_pass": command and command.isoformat(),
    }


def _outbox() -> dict:
    """The outbox sweep's last pass (beat, every minute) and how much waits to be sent."""
    from handover.choices import DeliveryStatus
    from handover.models import Notification, OutboxSweep, WebhookDelivery

    last = OutboxSweep.objects.filter(name="outbox").values_list("finished_at", flat=True).first()
    due = {"status": DeliveryStatus.PENDING, "next_attempt_at__lte": timezone.now()}
    return {
        "status": _freshness(last, settings.OUTBOX_SWEEP_INTERVAL),
        "last_sweep": last and last.isoformat(),
        "interval_s": settings.OUTBOX_SWEEP_INTERVAL,
        "due_notifications": Notification.objects.filter(**due).count(),
        "due_deliveries": WebhookDelivery.objects.filter(**due).count(),
    }


@never_cache
@require_GET
def healthz(request):
    """JSON with the state of each dependency.

    503 only when the database is down (the web process cannot work without it); a broker, scheduler or outbox
    problem is reported as "degraded" with 200, since requests still succeed and the outbox catches up later.
    The scheduler is "waiting" for beat's first pass, "up", "stale" after about three missed intervals, or "down"
    when beat never made a pass since this process started.
    """
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    checks["scheduler"] = _timed(_scheduler)
    checks["outbox"] = _timed(_outbox)
    if checks["database"]["status"] != "up":
        return JsonResponse({"status": "down", "checks": checks}, status=503)
    healthy = all(check["status"] == "up" for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks})
