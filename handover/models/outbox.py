"""The outbox sweep's bookkeeping: what its latest pass did, for /healthz."""

from django.db import models


class OutboxSweep(models.Model):
    """The outbox sweep's latest pass: one row, overwritten each minute, that /healthz reports."""

    name = models.CharField(max_length=30, unique=True, default="outbox")
    finished_at = models.DateTimeField()
    freed = models.PositiveIntegerField(default=0)
    notifications = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Outbox sweep at {self.finished_at:%Y-%m-%d %H:%M:%S}"
