"""The audit of configuration (``AdminEvent``), written by the services that change templates, tokens, webhooks."""

from django.utils import timezone

from .choices import AdminEventKind
from .models import AdminEvent


def admin_event(kind: AdminEventKind, *, by, subject: str, object_id: int | None = None, changes=None) -> AdminEvent:
    """Record who (``None``: the system) changed what, and when; called inside the change's transaction."""
    actor = by if by is not None and by.is_authenticated else None
    return AdminEvent.objects.create(
        kind=kind,
        actor=actor,
        subject=subject[:600],
        object_id=object_id,
        changes=changes or {},
        created_at=timezone.now(),
    )
