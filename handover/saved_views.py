"""Saved views: a person names the filters of the board or a list page and reopens them as a link.

A saved view stores filters only (``PAGES``: each page's known filter names and what their values may be), never
rows: opening one is opening the page with those filters in its query string, and the page applies visibility as
always, so a saved filter naming a confidential project's team or manager shows an outsider nothing of it.

Creating and deleting are recorded in the configuration audit (``AdminEvent``), like API tokens: a saved view
belongs to no handover or project (whose histories are ``Activity`` and ``ProjectEvent``), it is a person's own
setting.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import QueryDict
from django.urls import NoReverseMatch, reverse

from config.errors import InvalidInput, NotPermitted
from projects.choices import Stage

from .audit import admin_event
from .choices import AdminEventKind, HandoverStatus, Risk, SavedViewPage
from .models import SavedView

if TYPE_CHECKING:
    from django.contrib.auth.models import User

MAX_NAME = 80
# A person's saved views of one page are listed on it in full: bounded, so that the list stays short.
MAX_PER_PAGE = 50


# ------------------------------------------------------------------------------------------------ the filters


def _id(value: str) -> str:
    if not (value.isascii() and value.isdigit() and 0 < int(value) < 2**63):
        raise ValueError("an id: a whole number from 1")
    return str(int(value))


def _bool(value: str) -> str:
    text = value.lower()
    if text in ("true", "1"):
        return "true"
    if text in ("false", "0"):
        return "false"
    raise ValueError("true or false")


def _share(value: str) -> str:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError("a number from 0 to 1") from None
    if not number.is_finite() or not 0 <= number <= 1:
        raise ValueError("a number from 0 to 1")
    return str(number)


def _choice(choices: list[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value

    return check


_ORDERING = re.compile(r"^-?[a-z_]{1,40}(,-?[a-z_]{1,40}){0,4}$")


def _ordering(value: str) -> str:
    if not _ORDERING.match(value):
        raise ValueError("field names separated by commas, - in front for descending")
    return value


@dataclass(frozen=True)
class Filter:
    """A filter a page takes: ``check`` turns one value into its stored text, or raises ValueError saying what it
    must be; ``many``: the filter takes several values (``?status=a&status=b``), stored as a list."""

    check: Callable[[str], str]
    many: bool = False


@dataclass(frozen=True)
class Page:
    url_name: str
    path: str
    filters: Mapping[str, Filter]

    def url(self) -> str:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:  # a list page not (yet) routed: its path, as documented
            return self.path


_STATUSES = _choice(list(HandoverStatus.values))
_STAGES = _choice(list(Stage.values))

# The filters each page takes, by the names of its query string (``handover.forms.HandoverListForm``,
# ``projects.forms.ProjectListForm``, the board's ``team``, ``manager`` and ``closed=all``).
PAGES: dict[str, Page] = {
    SavedViewPage.PORTFOLIO: Page(
        "handover:board",
        "/portfolio/",
        {"team": Filter(_id), "manager": Filter(_id), "closed": Filter(_choice(["all"]))},
    ),
    SavedViewPage.HANDOVERS: Page(
        "handover:list",
        "/handovers/",
        {
            "status": Filter(_STATUSES, many=True),
            "project": Filter(_id),
            "team": Filter(_id),
            "manager": Filter(_id),
            "operations_owner": Filter(_id),
            "service": Filter(_id),
            "overdue": Filter(_bool),
            "has_open_stall": Filter(_bool),
            "readiness_risk": Filter(_choice([*Risk.values, "overall"])),
            "readiness_below": Filter(_share),
            "ordering": Filter(_ordering),
        },
    ),
    SavedViewPage.PROJECTS: Page(
        "projects:list",
        "/projects/",
        {
            "stage": Filter(_STAGES, many=True),
            "team": Filter(_id),
            "manager": Filter(_id),
            "overdue": Filter(_bool),
            "ordering": Filter(_ordering),
        },
    ),
}


def _page_label(page: str) -> str:
    return f"the {SavedViewPage(page).label.lower()}"


def _page(page: str) -> Page:
    if page not in PAGES:
        choices = ", ".join(PAGES)
        raise InvalidInput(f"Choose the page to save a view of: {choices}.", rule="unknown_page", field="page")
    return PAGES[page]


def clean_filters(page: str, filters: object) -> dict[str, str | list[str]]:
    """``filters`` checked against what ``page`` takes: each name known, each value valid (ids are not looked up:
    the page shows what the person may see of them). Refusals name the filter."""
    spec = _page(page)
    if not isinstance(filters, Mapping):
        raise InvalidInput("Give the filters as names and values.", rule="invalid_filters", field="filters")
    cleaned: dict[str, str | list[str]] = {}
    for name, given in filters.items():
        shown = str(name)[:40]
        known = spec.filters.get(name) if isinstance(name, str) else None
        if known is None:
            raise InvalidInput(
                f"Unknown filter '{shown}' for {_page_label(page)}; it takes: {', '.join(spec.filters)}.",
                rule="unknown_filter",
                field=f"filters.{shown}",
            )
        values = given if isinstance(given, list) else [given]
        if not values or len(values) > (50 if known.many else 1):
            what = "one or more values" if known.many else "one value"
            raise InvalidInput(f"Give {what} for '{shown}'.", rule="invalid_filter", field=f"filters.{shown}")
        checked = []
        for value in values:
            try:
                checked.append(known.check(_text(value)))
            except ValueError as error:
                raise InvalidInput(
                    f"The filter '{shown}' takes {error}.", rule="invalid_filter", field=f"filters.{shown}"
                ) from None
        cleaned[name] = sorted(set(checked)) if known.many else checked[0]
    return cleaned


def _text(value: Any) -> str:
    """A JSON value as a filter's text: a string, a whole number, or a boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and "\x00" not in value and len(value) <= 200:
        return value.strip()
    raise ValueError("text of at most 200 characters, a whole number, or true or false")


def filters_from_query(page: str, query: str) -> dict[str, str | list[str]]:
    """The filters of a page's query string (``team=3&manager=&page=2``), as the page reads them: only the names it
    filters on, without empty values (``?manager=`` is "all managers") or its paging; of a filter that takes one
    value, the last one given."""
    spec = _page(page)
    data = QueryDict(query[:4000])
    filters: dict[str, str | list[str]] = {}
    for name, known in spec.filters.items():
        values = [value for value in data.getlist(name) if value.strip()]
        if values:
            filters[name] = values if known.many else values[-1]
    return filters


def saved_views_of(user) -> QuerySet[SavedView]:
    """``user``'s own saved views: nobody sees another's, an administrator neither."""
    return SavedView.objects.filter(user=user) if user.is_authenticated else SavedView.objects.none()


def saved_view_url(view: SavedView) -> str:
    """The page with the view's filters in its query string."""
    path = PAGES[view.page].url()
    return f"{path}?{urlencode(view.filters, doseq=True)}" if view.filters else path


def page_url(page: str) -> str:
    return _page(page).url()


# ---------------------------------------------------------------------------------------------------- writes


@transaction.atomic
def saved_view_create(*, user: "User", page: str, name: str, filters: object) -> SavedView:
    """Save ``filters`` of ``page`` as ``user``'s view ``name`` (unique per person and page)."""
    _page(page)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the view a name.", rule="name_required", field="name")
    if len(name) > MAX_NAME:
        raise InvalidInput(
            f"A view's name has at most {MAX_NAME} characters ({len(name)} given).", rule="too_long", field="name"
        )
    if "\x00" in name:
        raise InvalidInput("A view's name cannot contain a NUL character.", rule="invalid_name", field="name")
    spec_filters = clean_filters(page, filters)
    mine = SavedView.objects.filter(user=user, page=page)
    if mine.filter(name=name).exists():
        raise _name_taken(name, page)
    if mine.count() >= MAX_PER_PAGE:
        raise InvalidInput(
            f"You have {MAX_PER_PAGE} saved views of {_page_label(page)}; delete one first.",
            rule="too_many_saved_views",
            field="name",
        )
    try:
        with transaction.atomic():  # a savepoint: the same name saved twice at once is refused, not a 500
            view = SavedView.objects.create(user=user, page=page, name=name, filters=spec_filters)
    except IntegrityError:
        raise _name_taken(name, page) from None
    admin_event(
        AdminEventKind.SAVED_VIEW_CREATED,
        by=user,
        subject=f"Saved view '{name}' of {user.get_username()} ({_page_label(page)})",
        object_id=view.pk,
        changes={"page": page, "name": name, "filters": spec_filters},
    )
    return view


def _name_taken(name: str, page: str) -> InvalidInput:
    return InvalidInput(
        f"You already have a view named '{name}' of {_page_label(page)}; choose another name.",
        rule="saved_view_name_taken",
        field="name",
    )


@transaction.atomic
def saved_view_delete(*, view: SavedView, by: "User") -> None:
    """Delete one of ``by``'s own saved views (nobody else's, not even an administrator's)."""
    if view.user_id != by.pk:
        raise NotPermitted("Only its owner may delete a saved view.", rule="owner_only")
    deleted, _ = SavedView.objects.filter(pk=view.pk).delete()
    if deleted:  # deleted twice at once: recorded once
        admin_event(
            AdminEventKind.SAVED_VIEW_DELETED,
            by=by,
            subject=f"Saved view '{view.name}' of {by.get_username()} ({_page_label(view.page)})",
            object_id=view.pk,
            changes={"page": view.page, "name": view.name, "filters": view.filters},
        )
