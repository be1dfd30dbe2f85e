"""The API's OpenAPI generator: drf-spectacular's, knowing which lists also page by cursor.

A module of its own: ``config.api`` is imported by DRF's settings while DRF's views are being imported, and
drf-spectacular's generator imports those views.
"""

from drf_spectacular.openapi import AutoSchema

from .api import Pagination, cursor_ordering


class ApiSchema(AutoSchema):
    """drf-spectacular's schema, documenting a list that also pages by cursor as such, under a name of its own
    (``PaginatedOrCursor<Serializer>List``): the same serializer may be listed elsewhere by page numbers only."""

    def _get_paginator(self):
        paginator = super()._get_paginator()
        if isinstance(paginator, Pagination) and cursor_ordering(self.view):
            paginator.documents_cursor = True
        return paginator

    def get_paginated_name(self, serializer_name: str) -> str:
        if cursor_ordering(self.view):
            return f"PaginatedOrCursor{serializer_name}List"
        return super().get_paginated_name(serializer_name)
