"""``{% saved_views "portfolio" %}``: the signed-in person's saved views of a page, and "Save this view".

One query (their views of that page, through the unique index on user, page and name), whatever the page shows.
"""

from django import template

from .. import saved_views as sv

register = template.Library()


@register.inclusion_tag("includes/saved_views.html", takes_context=True)
def saved_views(context, page: str) -> dict:
    request = context["request"]
    query = request.GET.urlencode()
    current = sv.filters_from_query(page, query)
    views = [
        {"view": view, "url": sv.saved_view_url(view), "current": bool(view.filters) and view.filters == current}
        for view in sv.saved_views_of(request.user).filter(page=page).only("pk", "name", "page", "filters")
    ]
    return {
        "page": page,
        "views": views,
        "query": query,
        "filtered": bool(current),
        "here": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }
