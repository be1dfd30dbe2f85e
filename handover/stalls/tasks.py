"""Celery task of stall detection: a thin wrapper that calls the detector (beat runs it every few minutes)."""

from celery import shared_task

from config.celery import RETRY
from handover.choices import DetectionSource

from .services import detect_stalls as detect

# Task names are part of the wire format (beat's schedule, messages already queued): see handover/outbox/tasks.py.


@shared_task(name="handover.tasks.detect_stalls", **RETRY)
def detect_stalls() -> dict[str, int]:
    result = detect(source=DetectionSource.BEAT)
    return {
        "opened": len(result.opened),
        "resolved": len(result.resolved),
        "escalated": len(result.escalated),
        "reminded": len(result.reminded),
    }
