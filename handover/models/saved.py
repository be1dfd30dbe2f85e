"""Saved views: a person's named filters of a list page or the board, reopened as a link."""

from django.conf import settings
from django.db import models

from handover.choices import SavedViewPage


class SavedView(models.Model):
    """A person's named filter of the board or a list page; it stores the filters only, never what they showed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=80)
    page = models.CharField(max_length=20, choices=SavedViewPage.choices)
    # Known filter names of the page → a value (text) or values (a list of texts), as the page's query string
    # takes them; checked by handover.saved_views when saved. Visibility is applied by the page when it is opened.
    filters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Its index also serves the page's list of a person's views (user and page, ordered by name).
            models.UniqueConstraint(fields=["user", "page", "name"], name="savedview_unique_user_page_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_page_display()})"
