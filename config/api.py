"""What every API endpoint shares: parsing, the error shape, lists (pagination, filters, search, ordering), versions
and the schema bits that document them.

One error shape for the whole API, for every response under ``/api/`` (unknown routes and server errors included)::

    {"error": {"status": 409, "code": "submit_mandatory_open", "message": "...", "fields": {"reason": ["..."]}}}

``code`` is the rule that refused (``config.errors.DomainError.rule``) or DRF's error code; ``fields`` names the
fields (or query parameters, or the ``If-Match`` header) at fault, empty when the refusal is not about one of them.
"""

import base64
import binascii
import json
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

import django_filters
from django import forms
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import InvalidPage
from django.core.paginator import Paginator as DjangoPaginator
from django.db import models
from django.http import Http404, HttpResponseServerError, JsonResponse
from django.template import loader
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, filters, serializers, status
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import Conflict, DomainError, IllegalTransition, InvalidInput, NotPermitted
from .request_id import current_request_id

DOMAIN_STATUS = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    NotPermitted: status.HTTP_403_FORBIDDEN,
    IllegalTransition: status.HTTP_409_CONFLICT,
    Conflict: status.HTTP_412_PRECONDITION_FAILED,
}

# ------------------------------------------------------------------------------------------------- errors


def error_body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields or {}}}


def _error(status_code: int, code: str, message: str, fields: dict | None = None, headers=None) -> Response:
    return Response(error_body(status_code, code, message, fields), status=status_code, headers=headers)


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"field.sub[0]": ["message"]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # a list's item (ListField, many=True): named like the services name them
                name = f"{prefix}[{key}]"
            else:
                name = key if not prefix else (f"{prefix}.{key}" if key != "non_field_errors" else prefix)
            out.update(_flatten(value, name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            return {prefix or "non_field_errors": [str(v) for v in detail]}
        out = {}
        for index, value in enumerate(detail):
            if value:
                out.update(_flatten(value, f"{prefix}[{index}]"))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def exception_handler(exc, context):
    """Render every refusal in the one error shape; anything unexpected becomes a 500 (see ``handler500``)."""
    if isinstance(exc, DomainError):
        status_code = next((code for cls, code in DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
        fields = {exc.field: [exc.message]} if exc.field else {}
        # Django's model validation words its messages without the field ("Ensure this value has at most 30
        # characters"): name it in the summary, as for the serializers' refusals below.
        message = f"{exc.field}: {exc.message}" if exc.field and exc.rule == "invalid_field" else exc.message
        return _error(status_code, exc.rule, message, fields)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()), ("", ["Invalid input."]))
        message = f"{first[0]}: {first[1][0]}" if first[0] and first[0] != "non_field_errors" else first[1][0]
        return _error(response.status_code, "invalid", message, fields, headers=_headers(response))
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    return _error(response.status_code, str(code), str(detail), headers=_headers(response))


def _headers(response: Response) -> dict:
    return {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}


# Errors that never reach a DRF view: an unknown route, a request Django refuses before routing it (400), a
# permission refusal or a crash outside DRF's handling. Under /api/ they answer in the error shape; elsewhere they are
# Django's own handlers, which render the web UI's 400/403/404/500 templates.


def is_api_request(request) -> bool:
    return request.path_info.startswith("/api/")


def _json_error(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status_code, code, message), status=status_code)


@csrf_exempt  # a POST to a route that does not exist is a 404, not a CSRF failure
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """The last route under /api/: whatever did not match an endpoint."""
    message = f"There is no endpoint {request.method} {request.path}. The endpoints are listed in /api/schema/."
    if not request.path_info.endswith("/"):
        try:
            resolved = resolve(request.path_info + "/")
        except Resolver404:
            resolved = None
        if resolved is not None and resolved.func is not api_not_found:
            message = f"There is no endpoint {request.path}; the API's paths end with a slash: {request.path}/"
    return _json_error(status.HTTP_404_NOT_FOUND, "not_found", message)


def handler400(request, exception):
    if is_api_request(request):
        return _json_error(status.HTTP_400_BAD_REQUEST, "bad_request", "The request could not be understood.")
    return defaults.bad_request(request, exception)


def handler403(request, exception):
    if is_api_request(request):
        return _json_error(status.HTTP_403_FORBIDDEN, "permission_denied", "You may not do this.")
    return defaults.permission_denied(request, exception)


def handler404(request, exception):
    if is_api_request(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def handler500(request):
    """The answer to a crash, with the request's reference (``config.middleware.RequestIdMiddleware``): Django logs
    the traceback under the same reference, so the person can quote it and an operator can find the line."""
    reference = getattr(request, "request_id", None) or current_request_id()
    if is_api_request(request):
        message = f"Something went wrong on our side; it was recorded under reference {reference}."
        return _json_error(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", message)
    # Without the request's context, like Django's own server_error: the context processors may be what failed.
    return HttpResponseServerError(loader.get_template("500.html").render({"reference": reference}))


# ---------------------------------------------------------------------------------------------- schema


class ErrorBodySerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="The rule that refused, or the kind of error.")
    message = serializers.CharField()

    def get_fields(self):
        # Declared here rather than as an attribute, which would shadow ``Serializer.fields``.
        return {
            **super().get_fields(),
            "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
        }


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API."""

    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` names the fields (or query parameters, or `If-Match`) at fault.",
    401: "No or invalid credentials.",
    403: "Signed in, but without the role this needs (or a read-only token).",
    404: "No such object, or not visible to you (for a list: a page past the end).",
    409: "The move is not allowed from the current state, or a gate blocks it; `code` names the rule.",
    412: "The object changed since you read it (If-Match or `version` did not match).",
    406: "The `Accept` header asks for a representation the API does not give (it answers JSON).",
    415: "The body is not `application/json`.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


READ_ERRORS = (401, 403, 404)
# A list refuses a query parameter it does not know or cannot parse (400) and a page past the end (404).
LIST_ERRORS = (400, 401, 403, 404)
WRITE_ERRORS = (400, 401, 403, 404, 409)
# Writes that compare the version the client read: a lost update is 412.
VERSIONED_ERRORS = (*WRITE_ERRORS, 412)

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description='The ETag you read (for example `"7"`): if the object changed since, the request is refused with '
    "412 and nothing is written. `version` in the body does the same.",
    # As ``expected_version`` reads it: the ETag, weak or not, its bare number, or ``*``.
    pattern=r'^(\*|(W/)?"[0-9]{1,9}"|[0-9]{1,9})$',
)
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The object's version; send it back as `If-Match` with the next change.",
    response=[200, 201],
)


def accepts_version(func):
    """Mark a view method as one that compares ``If-Match`` (or ``version``) with the object's version."""
    func.accepts_version = True
    return func


def versioned_schema(*, request=None, response=None, status_code: int = 200, **kwargs):
    """``extend_schema`` for a write that takes the version the client read: documents ``If-Match``, the ``ETag``
    answered and 412, and marks the method so that ``If-Match`` is not refused (see ``ApiViewMixin``)."""
    schema = extend_schema(
        request=request,
        responses={status_code: response, **error_responses(*VERSIONED_ERRORS)},
        parameters=[IF_MATCH, ETAG, *kwargs.pop("parameters", [])],
        **kwargs,
    )

    def decorate(func):
        return accepts_version(schema(func))

    return decorate


def action_schema(*, request=None, response=None, summary: str = "", description: str = "", versioned=False, **kw):
    """``extend_schema`` for a state-changing action, with every error it can answer."""
    extra = {"summary": summary or None, "description": description or None, **kw}
    if versioned:
        return versioned_schema(request=request, response=response, **extra)
    return extend_schema(request=request, responses={200: response, **error_responses(*WRITE_ERRORS)}, **extra)


def read_schema(response, *, etag: bool = False, **kwargs):
    """``extend_schema`` for reading one object; ``etag`` documents the ``ETag`` it answers."""
    return extend_schema(
        responses={200: response, **error_responses(*READ_ERRORS)}, parameters=[ETAG] if etag else None, **kwargs
    )


if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

    # What the mixin is combined with (a viewset, or ``APIView`` for ``MeView``), so that its ``super()`` calls
    # type-check.
    _ViewBase = GenericAPIView[Any]
else:
    _ViewBase = object


class ApiViewMixin(_ViewBase):
    """What every view of the API adds to DRF's.

    * ``If-Match`` on a write that does not compare versions is refused rather than silently ignored: only
      projects, handovers and checklist items carry a version, and a client that sends one believes it is protected
      against lost updates.
    * Filters, search and ordering apply to lists only.
    """

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method in SAFE_METHODS or "If-Match" not in request.headers:
            return
        if not self._has_handler(request):
            return  # a method this endpoint does not take: the dispatch answers 405 with Allow, not a 400 on If-Match
        handler = getattr(self, getattr(self, "action", None) or request.method.lower(), None)
        if not getattr(handler, "accepts_version", False):
            raise InvalidInput(
                "This endpoint does not compare versions; send the request without If-Match.",
                rule="if_match_unsupported",
                field="If-Match",
            )

    def _has_handler(self, request) -> bool:
        method = request.method.lower()
        return method in self.http_method_names and hasattr(self, method)

    def filter_queryset(self, queryset):
        # DRF also applies the filter backends to the lookup of a single object, where ``/projects/7/?stage=closed``
        # would turn into a 404 and a bad ordering into an undocumented 400.
        if getattr(self, "action", None) != "list":
            return queryset
        return super().filter_queryset(queryset)


# -------------------------------------------------------------------------------------------- versions

MAX_VERSION = 2**31 - 1  # versions are PositiveIntegerFields
_ETAG = re.compile(r'(?:W/)?"([0-9]{1,9})"|([0-9]{1,9})')  # as IF_MATCH documents it


def expected_version(request, body_version: int | None = None) -> int | None:
    """The version the client last read: ``If-Match: "7"`` (as sent back from the ETag) or ``version`` in the body
    (validated by the serializer, see ``config.api_fields.VersionField``).

    The services compare it with the current version and refuse a lost update with 412. ``If-Match: *`` asks for no
    comparison.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return body_version
    match = _ETAG.fullmatch(header.strip())
    if match is None or int(match.group(1) or match.group(2)) > MAX_VERSION:
        # Digits only (``"²".isdigit()`` is true), and few of them: ``int()`` refuses strings of over 4300 digits.
        raise InvalidInput(
            'If-Match must be one ETag this API sent, such as "7".', rule="invalid_if_match", field="If-Match"
        )
    version = int(match.group(1) or match.group(2))
    if body_version is not None and body_version != version:
        raise InvalidInput(
            "If-Match and version name different versions; send one of them.", rule="invalid_if_match", field="version"
        )
    return version


def with_etag(response: Response, version: int) -> Response:
    response["ETag"] = f'"{version}"'
    return response


# ----------------------------------------------------------------------------------------------- lists


class CappedCountPaginator(DjangoPaginator):
    """Django's paginator counting at most ``limit`` rows: ``SELECT COUNT(*) FROM (... LIMIT limit)``, without the
    ordering, so that a page of a big list costs a bounded count rather than one over the whole visible set.

    ``exact`` says whether the count is the list's whole length; when it is not, there are at least ``limit`` rows,
    which is all the paginator needs to serve every page up to the one asked for (``limit`` covers it).
    """

    def __init__(self, object_list, per_page, *, limit: int) -> None:
        super().__init__(object_list, per_page)
        self.limit = limit
        self.exact = True

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, models.QuerySet):
            return super().count
        # Rows only: no ordering, no joins that only fetch related columns (select_related), no columns.
        counted = self.object_list.order_by().select_related(None).values("pk")[: self.limit].count()
        self.exact = counted < self.limit
        return counted


class KeysetPagination(CursorPagination):
    """DRF's cursor pagination over a unique key of several columns, all ascending (``view.cursor_ordering``, for
    example ``("target_date", "id")``), for tools that walk a whole list.

    A page is ``WHERE key > last key seen ORDER BY key LIMIT page_size + 1``: with an index on the key, every page
    costs the same, however deep, and nothing is counted. DRF's own cursor keeps only the first column as the
    position and an offset for its ties, which grows with the number of handovers due on one day.
    """

    cursor_query_param = "cursor"
    invalid_cursor = "Not a cursor of this list: follow the next or previous link you were given."

    def __init__(self, keys: tuple[str, ...], page_size: int) -> None:
        self.keys = keys
        self.size = page_size

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.url = request.build_absolute_uri()
        position, self.reverse = self._decode(request, queryset.model)
        keys = [f"-{key}" for key in self.keys] if self.reverse else list(self.keys)
        queryset = queryset.order_by(*keys)
        if position is not None:
            queryset = queryset.filter(self._beyond(position, before=self.reverse))
        rows = list(queryset[: self.size + 1])
        more = len(rows) > self.size
        self.page = rows[: self.size]
        if self.reverse:
            self.page.reverse()
        # Coming back from a position, there is something on the side we came from.
        self.has_next, self.has_previous = (True, more) if self.reverse else (more, position is not None)
        return self.page

    def _beyond(self, position: list, *, before: bool) -> models.Q:
        """Rows after ``position`` in the key's order (before it when ``before``): ``(a, b) > (x, y)`` spelled as
        ``a >= x AND (a > x OR (a = x AND b > y))``, whose first term the index answers as a range."""
        op = "lt" if before else "gt"
        beyond = models.Q()
        for n, key in enumerate(self.keys):
            equal = dict(zip(self.keys[:n], position[:n], strict=True))
            beyond |= models.Q(**equal, **{f"{key}__{op}": position[n]})
        return models.Q(**{f"{self.keys[0]}__{op}e": position[0]}) & beyond

    def _decode(self, request, model) -> tuple[list | None, bool]:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None, False
        try:
            data = json.loads(base64.urlsafe_b64decode(encoded.strip().encode("ascii")))
            values, reverse = data["k"], data.get("r", False)
            if not isinstance(values, list) or len(values) != len(self.keys) or not isinstance(reverse, bool):
                raise ValueError
            position = [
                model._meta.get_field(key).to_python(value) for key, value in zip(self.keys, values, strict=True)
            ]
        except (ValueError, TypeError, KeyError, UnicodeError, DjangoValidationError, binascii.Error):
            raise serializers.ValidationError({self.cursor_query_param: [self.invalid_cursor]}) from None
        if any(value is None for value in position):
            raise serializers.ValidationError({self.cursor_query_param: [self.invalid_cursor]})
        return position, reverse

    def _link(self, row, *, reverse: bool) -> str:
        values = [_jsonable(getattr(row, key)) for key in self.keys]
        data: dict[str, Any] = {"k": values, **({"r": True} if reverse else {})}
        encoded = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode("ascii")
        return replace_query_param(self.url, self.cursor_query_param, encoded)

    def get_next_link(self):
        return self._link(self.page[-1], reverse=False) if self.has_next and self.page else None

    def get_previous_link(self):
        return self._link(self.page[0], reverse=True) if self.has_previous and self.page else None


def _jsonable(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


CURSOR = "cursor"


class Pagination(PageNumberPagination):
    """Page numbers, ``page_size`` up to 100. Every list of the API goes through here, so it is also where a query
    parameter the list does not take is refused, naming it, instead of being silently ignored (a typo such as
    ``?stauts=submitted`` would otherwise return the whole, unfiltered list).

    ``count`` is counted up to ``count_cap`` rows (or the end of the page asked for, when deeper): below it,
    ``count_exact`` is true; beyond it, ``count`` is the cap and ``count_exact`` false (there are more rows).
    Lists whose view names a unique, indexed ``cursor_ordering`` also page by cursor with ``?paginate=cursor``
    (``KeysetPagination``): ``next`` and ``previous`` links, no count, every page as cheap as the first.
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    count_cap = 10_000
    paginate_query_param = "paginate"
    cursor_query_param = KeysetPagination.cursor_query_param

    # Set by the schema (``config.api_schema.ApiSchema``) for a list that also pages by cursor.
    documents_cursor = False

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        digits = raw.strip().lstrip("0")
        if not (digits.isascii() and digits.isdigit()):  # also "" and "0"
            raise serializers.ValidationError(
                {self.page_size_query_param: [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        # Bigger asks are capped; the length check keeps int() away from a string of thousands of digits.
        return self.max_page_size if len(digits) > 3 else min(int(digits), self.max_page_size)

    def get_page_number(self, request, paginator=None):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        digits = raw.strip().lstrip("0")
        # Django's paginator would answer ``?page=`` or ``?page=x`` with a 404 ("Invalid page") and take "last":
        # a value that is not a page number is a 400 naming it; a page past the end stays a 404.
        if not (digits.isascii() and digits.isdigit()):  # also "" and "0"
            raise serializers.ValidationError({self.page_query_param: ["Give a page number: a whole number from 1."]})
        return int(digits) if len(digits) <= 18 else 10**18  # past the end all the same; never int() of thousands

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.cursor: KeysetPagination | None = None
        keys = cursor_ordering(view)
        allowed = {self.page_query_param, self.page_size_query_param}
        if keys:
            allowed |= {self.paginate_query_param, self.cursor_query_param}
        if view is not None:
            reject_unknown_query_params(request, view, queryset, allowed)
        if self._by_cursor(request, keys):
            self.cursor = KeysetPagination(keys, self.get_page_size(request))
            return self.cursor.paginate_queryset(queryset, request, view)
        page_size = self.get_page_size(request)
        page_number = self.get_page_number(request)
        # Deep pages count as far as their own end: the OFFSET reads that far anyway.
        limit = max(self.count_cap, min(page_number * page_size, 2**62)) + 1
        paginator = CappedCountPaginator(queryset, page_size, limit=limit)
        try:
            self.page = paginator.page(page_number)
        except InvalidPage as exc:
            raise exceptions.NotFound(self.invalid_page_message.format(page_number=page_number, message=exc)) from None
        return list(self.page)

    def _by_cursor(self, request, keys: tuple[str, ...]) -> bool:
        mode = request.query_params.get(self.paginate_query_param)
        if mode is not None and mode.strip() != CURSOR:
            raise serializers.ValidationError({self.paginate_query_param: ["The only value is cursor."]})
        if mode is None:
            if self.cursor_query_param in request.query_params:
                raise serializers.ValidationError(
                    {self.cursor_query_param: [f"A cursor goes with {self.paginate_query_param}=cursor."]}
                )
            return False
        for name in (self.page_query_param, OrderingFilter.ordering_param):
            if name in request.query_params:
                order = ", ".join(keys)
                raise serializers.ValidationError(
                    {name: [f"Paging by cursor follows the list's own order ({order}); leave {name} out."]}
                )
        return True

    def get_paginated_response(self, data):
        if self.cursor is not None:
            return self.cursor.get_paginated_response(data)
        assert self.page is not None
        paginator = self.page.paginator
        if isinstance(paginator, CappedCountPaginator) and not paginator.exact:
            count, exact = paginator.limit - 1, False
        else:
            count, exact = paginator.count, True
        return Response(
            {
                "count": count,
                "count_exact": exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        paged = super().get_paginated_response_schema(schema)
        paged["properties"]["count"]["description"] = (
            f"How many rows the list has, counted up to {self.count_cap} (or the end of the page asked for); "
            "with count_exact false, there are more."
        )
        paged["properties"] = {
            "count": paged["properties"]["count"],
            "count_exact": {
                "type": "boolean",
                "description": "Whether count is the whole list's length, or only how far it was counted.",
            },
            **{name: value for name, value in paged["properties"].items() if name != "count"},
        }
        paged["required"] = ["count", "count_exact", "results"]
        if not self.documents_cursor:
            return paged
        # The same list with ?paginate=cursor answers next, previous and results only.
        for name in ("count", "count_exact"):
            paged["properties"][name]["description"] += " Not given with paginate=cursor."
        paged["required"] = ["results"]
        return paged

    def get_schema_operation_parameters(self, view):
        page, page_size = super().get_schema_operation_parameters(view)
        page["schema"]["minimum"] = 1
        page_size["schema"]["minimum"] = 1
        page_size["description"] = f"Rows per page (default {self.page_size}); more than {self.max_page_size} gives "
        page_size["description"] += f"{self.max_page_size}."
        keys = cursor_ordering(view)
        if not keys:
            return [page, page_size]
        page["description"] += " Not with paginate=cursor."
        paginate = {
            "name": self.paginate_query_param,
            "required": False,
            "in": "query",
            "description": "cursor: page with next and previous links instead of page numbers, in the list's own "
            f"order ({', '.join(keys)}), without a count and without ordering; every page is as quick as the first "
            "(for tools that read the whole list).",
            "schema": {"type": "string", "enum": [CURSOR]},
        }
        cursor = {
            "name": self.cursor_query_param,
            "required": False,
            "in": "query",
            "description": "With paginate=cursor: the position, as given in a next or previous link.",
            "schema": {"type": "string"},
        }
        return [page, page_size, paginate, cursor]


def cursor_ordering(view) -> tuple[str, ...]:
    """The unique key a view's list pages by with ``?paginate=cursor`` (its ``cursor_ordering``), or ``()``."""
    if view is None or getattr(view, "action", None) != "list":
        return ()
    return tuple(getattr(view, "cursor_ordering", ()))


def reject_unknown_query_params(request, view, queryset, allowed: set[str]) -> None:
    """Refuse query parameters that neither the list's filter backends nor the pagination take."""
    allowed = {*allowed, api_settings.URL_FORMAT_OVERRIDE}
    for backend in getattr(view, "filter_backends", ()):
        names = getattr(backend(), "query_param_names", None)
        if names is not None:
            allowed |= names(view, queryset)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed - {api_settings.URL_FORMAT_OVERRIDE}))
        raise serializers.ValidationError(
            {name: [f"Unknown query parameter; this list takes: {known}."] for name in unknown}
        )


class _StrictBooleanField(forms.Field):
    default_error_messages = {"invalid": "Use true or false."}

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.BooleanFilter):
    """``true`` / ``false`` (or 1 / 0); anything else is a 400, where django-filter's would silently not filter."""

    field_class = _StrictBooleanField


@extend_schema_field({"type": "integer", "minimum": 1})
class IdFilter(django_filters.NumberFilter):
    """An object's id: a whole number the database can hold. Anything else is a 400; a wider number would overflow
    SQLite's integer and a fraction would be truncated by the lookup."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)

    def get_max_validator(self):
        return None  # max_value above is the bound


class FilterSet(django_filters.rest_framework.FilterSet):
    """The base of every filter set of the API: boolean model fields get the strict filter."""

    FILTER_DEFAULTS = {
        **django_filters.rest_framework.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": StrictBooleanFilter},
    }


class FilterBackend(DjangoFilterBackend):
    """django-filter, with ``filterset_fields`` built on the strict ``FilterSet``.

    A filter given an empty value (``?kind=``) is refused, naming it: django-filter would silently not filter,
    returning the whole list to a client that believes it filtered.
    """

    filterset_base = FilterSet

    def filter_queryset(self, request, queryset, view):
        names = self.query_param_names(view, queryset)
        empty = sorted(name for name in names if name in request.query_params and _blank(request, name))
        if empty:
            raise serializers.ValidationError({name: ["Give a value, or leave the parameter out."] for name in empty})
        return super().filter_queryset(request, queryset, view)

    def query_param_names(self, view, queryset) -> set[str]:
        filterset_class = self.get_filterset_class(view, queryset)
        return set(filterset_class.base_filters) if filterset_class else set()


def _blank(request, name: str) -> bool:
    return any(not value.strip() for value in request.query_params.getlist(name))


class SearchFilter(filters.SearchFilter):
    """``?search=``, offered (and documented) only by lists that say what it searches."""

    def query_param_names(self, view, queryset) -> set[str]:
        return {self.search_param} if getattr(view, "search_fields", None) else set()

    def get_schema_operation_parameters(self, view):
        fields = getattr(view, "search_fields", None)
        if not fields:
            return []
        (parameter,) = super().get_schema_operation_parameters(view)
        searched = ", ".join(f.lstrip("^=@$").replace("__", ".") for f in fields)
        parameter["description"] = f"Words that must all appear (case-insensitive) in one of: {searched}."
        return [parameter]


class OrderingFilter(filters.OrderingFilter):
    """``?ordering=field,-other`` over the list's ``ordering_fields`` only; anything else is a 400 naming it.

    DRF would silently drop an unknown field, and without ``ordering_fields`` offer every serializer field, some
    of which the database cannot order by.
    """

    def get_valid_fields(self, queryset, view, context=None):
        return [(name, name) for name in getattr(view, "ordering_fields", None) or ()]

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = [name for name, _ in self.get_valid_fields(queryset, view)]
        for term in fields:
            if term.removeprefix("-") not in valid:
                choices = ", ".join(valid) if valid else "nothing: this list has a fixed order"
                raise serializers.ValidationError(
                    {self.ordering_param: [f"Cannot order by {term!r}; choose from {choices} (- for descending)."]}
                )
        return fields

    def query_param_names(self, view, queryset) -> set[str]:
        return {self.ordering_param} if getattr(view, "ordering_fields", None) else set()

    def get_schema_operation_parameters(self, view):
        fields = getattr(view, "ordering_fields", None)
        if not fields:
            return []
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Fields to order by, comma-separated; `-` in front for descending.",
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": [o for name in fields for o in (name, f"-{name}")]},
                },
                "style": "form",
                "explode": False,
            }
        ]


# ------------------------------------------------------------------------------------- schema post-processing

# Python's ``str.strip()`` (which DRF's ``CharField`` applies before checking ``allow_blank``) removes these; JSON
# Schema's ``\s`` differs, so they are spelled out.
_WHITESPACE = r"\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"  # DRF refuses NUL characters in every CharField
NOT_BLANK = rf"^[^\x00]*[^\x00{_WHITESPACE}][^\x00]*$"  # ... and a required text that is only whitespace
# drf-spectacular's pattern for a DecimalField also matches "" and "-"; DRF refuses those.
_DECIMAL = re.compile(r"^\^-\?\\d\{0,(\d+)\}\(\?:\\\.\\d\{0,(\d+)\}\)\?\$$")
# gunicorn refuses a request line longer than its limit (4094 bytes) before the application sees it, with its own
# small HTML page rather than the API's error shape.
URI_TOO_LONG = {
    "description": "The request line (path and query) is longer than 4094 bytes; answered by the web server "
    "(gunicorn), as a short HTML page, not in the API's error shape.",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def postprocess_schema(result, generator, request, public):
    """Make the schema say what the API does where drf-spectacular cannot know it.

    * Request bodies: every serializer that reads one refuses unknown and read-only fields
      (``config.api_fields.StrictSerializerMixin``): ``additionalProperties: false``. Text refuses NUL characters,
      and required text refuses whitespace only (DRF strips it): a ``pattern``. Decimals need a digit.
    * Responses: the errors every operation can answer besides its own (401 and 403 are documented by each view,
      429 by ``config.throttling.document_throttling``): 406 for an ``Accept`` it cannot satisfy, 415 for a body
      that is not JSON, 414 from gunicorn; 400 wherever a parameter or a body can be refused.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for name, component in schemas.items():
        if name.endswith("Request"):
            _strict_request(component)
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            _complete_responses(operation)
            for parameter in operation.get("parameters", []):
                _strict_query_parameter(parameter)
    return result


def _strict_request(schema: dict) -> None:
    if schema.get("type") == "object" and "properties" in schema:
        schema["additionalProperties"] = False
        for prop in schema["properties"].values():
            _strict_value(prop)
    elif schema.get("type") == "array":
        _strict_value(schema.get("items", {}))


def _strict_value(schema: dict) -> None:
    if schema.get("type") == "string" and "enum" not in schema and not schema.get("readOnly"):
        decimal = _DECIMAL.match(schema.get("pattern", ""))
        if decimal:
            whole, places = decimal.groups()
            schema["pattern"] = rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{places}}})?|\.\d{{1,{places}}})$"
        elif "format" not in schema and "pattern" not in schema:
            schema["pattern"] = NOT_BLANK if schema.get("minLength", 0) >= 1 else NO_NUL
    elif schema.get("type") in ("object", "array"):
        _strict_request(schema)


def _strict_query_parameter(parameter: dict) -> None:
    """A filter given an empty value is refused (``FilterBackend``): its string values have at least a character."""
    schema = parameter.get("schema", {})
    if parameter.get("in") != "query" or parameter.get("name") in ("search", "ordering"):
        return
    if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
        schema.setdefault("minLength", 1)
        schema.setdefault("pattern", NOT_BLANK)


def _complete_responses(operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

    def add(code: int) -> None:
        responses.setdefault(str(code), {"description": ERROR_DESCRIPTIONS[code], "content": error})

    takes_input = "requestBody" in operation or any(p.get("in") != "path" for p in operation.get("parameters", []))
    if takes_input:
        add(400)
    add(406)
    if "requestBody" in operation:
        add(415)
    responses.setdefault("414", URI_TOO_LONG)
