"""What every web view shares: calling a service from a form, and pages that other apps add sections to.

A view never decides a rule. It parses the request with a Django form (types only: a date is a date), calls the
service, and shows what the service said. ``ServiceForm.run`` does that last part: a refusal for lack of role
(``NotPermitted``) becomes the 403 page, any other ``DomainError`` is shown next to the field it names, or at the
top of the form.

A form that comes back with errors is answered with a 4xx, never a 200 (``error_status``): 400 for input the form
or the service could not accept, 409 when the object's state or a gate refused the move (as the API does). The
page's htmx configuration (``base.html``) swaps those answers in place, so the errors appear next to the fields.
"""

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.views.generic import FormView

from .errors import Conflict, DomainError, IllegalTransition, NotPermitted

# The status of a page that shows a form's errors: the input was refused (400), or the state refused the move (409).
INVALID = 400
REFUSED = 409


class ServiceForm(forms.Form):
    """A form whose input goes to one service call; the service's refusals become the form's errors."""

    # Service field name → form field name, where they differ (``evidence`` → ``url``...).
    field_aliases: dict[str, str] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.domain_error: DomainError | None = None
        # What the service returned (a created row...): each caller knows which service it ran.
        self.result: Any = None

    def run(self, service: Callable, /, *args, **kwargs) -> bool:
        """Call the service; True if it acted. Its refusal is kept on the form; NotPermitted is a 403."""
        try:
            self.result = service(*args, **kwargs)
        except NotPermitted as error:
            raise PermissionDenied(error.message) from error
        except DomainError as error:
            self.add_domain_error(error)
            return False
        return True

    def add_domain_error(self, error: DomainError) -> None:
        self.domain_error = error
        name = self.field_aliases.get(error.field or "", error.field)
        self.add_error(name if name in self.fields else None, error.message)

    @property
    def error_status(self) -> int:
        """409 when the service refused the move for the object's state (or a lost update), else 400."""
        return REFUSED if isinstance(self.domain_error, IllegalTransition | Conflict) else INVALID


def error_status(*forms_shown) -> int:
    """The status of a page re-shown with the errors of ``forms_shown`` (forms or formsets)."""
    for form in forms_shown:
        status = getattr(form, "error_status", None)
        if status is not None and getattr(form, "domain_error", None) is not None:
            return status
    return INVALID


def person_label(user) -> str:
    return user.get_full_name() or user.get_username()


class PersonChoiceField(forms.ModelChoiceField):
    """A choice of person, shown by full name (the username when there is none)."""

    def label_from_instance(self, obj) -> str:
        return person_label(obj)


class PeopleChoiceField(forms.ModelMultipleChoiceField):
    """A choice of people, shown by full name (the username when there is none)."""

    def label_from_instance(self, obj) -> str:
        return person_label(obj)


# --------------------------------------------------------------------------------------------- signing in


class InvalidFormIs400(FormView):
    """Django's auth views answer a form with errors with 200; the product answers every refused form with 400."""

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = INVALID
        return response


class LoginView(InvalidFormIs400, auth_views.LoginView):
    redirect_authenticated_user = True


class PasswordChangeView(InvalidFormIs400, auth_views.PasswordChangeView):
    pass


_INDEXED = re.compile(r"^(?P<list>\w+)\[(?P<index>\d+)\]\.(?P<field>\w+)$")


def indexed_error_field(field: str | None) -> tuple[str, int, str] | None:
    """``"conditions[2].due_date"`` → ``("conditions", 2, "due_date")``; None for a plain field name."""
    match = _INDEXED.match(field or "")
    if match is None:
        return None
    return match["list"], int(match["index"]), match["field"]


# --------------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Section:
    """A part of another app's page: a template and the function that gives its context (None: not shown)."""

    template_name: str
    context: Callable[[HttpRequest, object], dict | None]
    order: int = 0


_sections: dict[str, list[Section]] = defaultdict(list)


def register_section(page: str, template_name: str, *, order: int = 0):
    """Decorator: add a section to ``page`` (``"project"``, ``"team"``, ``"teams"``).

    Dependencies point one way (handover imports projects and operations, never the reverse), yet the project
    and team pages show handover data: the handover app contributes those sections from its ``AppConfig.ready``.
    """

    def decorator(function: Callable[[HttpRequest, object], dict | None]):
        _sections[page].append(Section(template_name, function, order))
        return function

    return decorator


def page_sections(page: str, request: HttpRequest, obj: object) -> list[dict]:
    """The sections of ``page`` for ``obj``, each as its context plus ``template_name``."""
    shown = []
    for section in sorted(_sections[page], key=lambda s: s.order):
        context = section.context(request, obj)
        if context is not None:
            shown.append({"template_name": section.template_name, **context})
    return shown


# ------------------------------------------------------------------------------------------------- list pages

# Rows per page of a list page (``/handovers/``, ``/projects/``).
LIST_PAGE_SIZE = 50
# A list page counts its rows only this far (``COUNT(*)`` over at most ``cap + 1`` rows); past it, it says "more
# than 1,000": counting a large organisation's whole visible set on every page would cost more than the page.
LIST_COUNT_CAP = 1000
# Past this page a list answers 404 without asking the database: an OFFSET beyond what the database's integer
# holds is an error, and no one pages this far (a filter does it better).
LAST_PAGE_ASKED = 100_000


@dataclass(frozen=True)
class ListPage:
    """One page of a list: its rows, its number, and how many rows the list has, counted up to a cap."""

    rows: list
    number: int
    per_page: int
    count: int
    capped: bool  # the list has more than ``count`` rows
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def num_pages(self) -> int | None:
        """None when the count was capped: the last page is not known."""
        return None if self.capped else max(1, -(-self.count // self.per_page))

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.rows)


def page_number(value: str | None) -> int:
    """The ``page`` parameter: a whole number from 1; anything else (``x``, ``-2``, ``1.5``) is page 1."""
    try:
        number = int(value or "")
    except ValueError:  # also a number of more digits than int() reads
        return 1
    return max(number, 1)


def paginate(
    rows: QuerySet,
    page: str | None,
    *,
    count: QuerySet | None = None,
    per_page: int = LIST_PAGE_SIZE,
    cap: int = LIST_COUNT_CAP,
) -> ListPage:
    """The page ``page`` of ``rows`` (ordered), in two queries whatever the page: a count bounded by ``cap`` (of
    ``count``, the same rows without what only the shown rows need: joins, annotations), then ``per_page + 1``
    rows, the one more telling whether there is a next page. A page past the end is a 404."""
    number = page_number(page)
    if number > LAST_PAGE_ASKED:
        raise Http404("There is no such page.")
    counted = (rows if count is None else count).order_by().values("pk")[: cap + 1].count()
    capped = counted > cap
    if not capped and number > 1 and (number - 1) * per_page >= counted:
        raise Http404("There is no such page.")
    start = (number - 1) * per_page
    shown = list(rows[start : start + per_page + 1])
    if not shown and number > 1:
        raise Http404("There is no such page.")
    return ListPage(
        rows=shown[:per_page],
        number=number,
        per_page=per_page,
        count=min(counted, cap),
        capped=capped,
        has_next=len(shown) > per_page,
    )


class YesNoField(forms.TypedChoiceField):
    """Any, yes or no, sent as ``""``, ``true`` or ``false`` (``1`` and ``0`` too, as the API's boolean filters
    take them); cleans to None, True or False."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(
            choices=[("", "Any"), ("true", "Yes"), ("false", "No")],
            coerce=lambda value: value == "true",
            empty_value=None,
            **kwargs,
        )

    def to_python(self, value) -> str:
        text = super().to_python(value).strip().lower()
        return {"1": "true", "0": "false"}.get(text, text)
