"""Celery task of the outbox: the sweep, which beat runs every minute."""

from celery import shared_task

from config.celery import RETRY

from .sweep import sweep

# Task names are part of the wire format (beat's schedule, messages already queued): every task keeps the name it
# had when they all lived in handover/tasks.py.


@shared_task(name="handover.tasks.sweep_outbox", **RETRY)
def sweep_outbox() -> dict[str, int]:
    return sweep()
