"""Project-level views: the health check."""

import time
from datetime import timedelta
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
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (has the worker started?)")
    return {"transport": "filesystem", "queued": sum(1 for _ in folder.iterdir())}


def _scheduler() -> dict:
    """The last detection pass that finished; late when none finished within three intervals."""
    from handover.models import DetectionRun

    last = DetectionRun.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()
    if last is None:
        return {"status": "waiting", "last_pass": None}
    late = timezone.now() - last.finished_at > timedelta(seconds=3 * settings.STALL_DETECT_INTERVAL)
    return {"status": "late" if late else "up", "last_pass": last.finished_at.isoformat()}


@never_cache
@require_GET
def healthz(request):
    """JSON with the state of each dependency.

    503 only when the database is down (the web process cannot work without it); a broker or scheduler problem
    is reported as "degraded" with 200, since requests still succeed and the outbox catches up later.
    """
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    checks["scheduler"] = _timed(_scheduler)
    if checks["database"]["status"] != "up":
        return JsonResponse({"status": "down", "checks": checks}, status=503)
    healthy = all(check["status"] == "up" for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks})
