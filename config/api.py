"""What every API endpoint shares: authentication by token, the error shape, pagination, versions, schema bits.

One error shape for the whole API::

    {"error": {"status": 409, "code": "submit_mandatory_open", "message": "...", "fields": {"reason": ["..."]}}}

``code`` is the rule that refused (``config.errors.DomainError.rule``) or DRF's error code; ``fields`` names the
fields at fault (empty when the refusal is not about one field).
"""

import django_filters
from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import Conflict, DomainError, IllegalTransition, InvalidInput, NotPermitted

DOMAIN_STATUS = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    NotPermitted: status.HTTP_403_FORBIDDEN,
    IllegalTransition: status.HTTP_409_CONFLICT,
    Conflict: status.HTTP_412_PRECONDITION_FAILED,
}

# ------------------------------------------------------------------------------------------------- errors


def _error(status_code: int, code: str, message: str, fields: dict | None = None, headers=None) -> Response:
    body = {"error": {"status": status_code, "code": code, "message": message, "fields": fields or {}}}
    return Response(body, status=status_code, headers=headers)


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
    """Render every refusal in the one error shape; anything unexpected still becomes DRF's 500."""
    if isinstance(exc, DomainError):
        status_code = next((code for cls, code in DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
        fields = {exc.field: [exc.message]} if exc.field else {}
        return _error(status_code, exc.rule, exc.message, fields)
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


class ErrorBodySerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="The rule that refused, or the kind of error.")
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API."""

    error = ErrorBodySerializer()


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input; `fields` names the fields at fault.",
        401: "No or invalid credentials.",
        403: "Signed in, but without the role this needs (or a read-only token).",
        404: "No such object, or not visible to you.",
        409: "The move is not allowed from the current state, or a gate blocks it; `code` names the rule.",
        412: "The object changed since you read it (If-Match or `version` did not match).",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=descriptions[code]) for code in codes}


READ_ERRORS = (401, 403, 404)
# A list refuses a filter value it cannot parse (400) and a page past the end (404, "Invalid page.").
LIST_ERRORS = (400, 401, 403, 404)
WRITE_ERRORS = (400, 401, 403, 404, 409, 412)


def action_schema(*, request=None, response=None, summary: str = "", description: str = "", **kwargs):
    """``extend_schema`` for a state-changing action, with every error it can answer."""
    return extend_schema(
        request=request,
        responses={200: response, **error_responses(*WRITE_ERRORS)},
        summary=summary or None,
        description=description or None,
        **kwargs,
    )


# ----------------------------------------------------------------------------------------------- lists


class Pagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


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


class StrictBooleanFilter(django_filters.BooleanFilter):
    """``true`` / ``false`` (or 1 / 0); anything else is a 400, where django-filter's would silently not filter."""

    field_class = _StrictBooleanField


@extend_schema_field(OpenApiTypes.INT)
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


# -------------------------------------------------------------------------------------------- versions


def expected_version(request) -> int | None:
    """The version the client last read: ``If-Match: "7"`` (as sent back from the ETag) or ``version`` in the body.

    The services compare it with the current version and refuse a lost update with 412.
    """
    header = request.headers.get("If-Match", "").strip()
    if header and header != "*":
        tag = header.split(",")[0].strip().removeprefix("W/").strip('"')
        if not (tag.isascii() and tag.isdigit()):  # "²".isdigit() is true, but int("²") fails
            raise InvalidInput(
                'If-Match must be an ETag this API sent, such as "7".', rule="invalid_if_match", field="If-Match"
            )
        return int(tag)
    version = request.data.get("version") if isinstance(request.data, dict) else None
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput("version must be an integer.", rule="invalid", field="version")
    return version


def with_etag(response: Response, version: int) -> Response:
    response["ETag"] = f'"{version}"'
    return response
