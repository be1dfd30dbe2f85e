"""What every page's navigation shows about the signed-in user."""

from django.utils.functional import SimpleLazyObject

from .selectors import inbox


def navigation(request) -> dict:
    """The number of unread in-app notifications, counted only if the page shows it (one query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"unread_notifications": SimpleLazyObject(lambda: inbox(user).filter(read_at__isnull=True).count())}
