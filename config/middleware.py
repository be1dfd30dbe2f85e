"""Answers the web UI owes a person when a request cannot reach its view: the session ended, the form's CSRF token
went stale, or an address that only takes a form was opened. The API (``/api/``) answers these itself."""

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

from .api import error_body, is_api_request
from .request_id import new_request_id, reset_request_id, set_request_id

STALE_PAGE = (
    "This page was loaded before you signed in or out elsewhere, so the form on it can no longer be sent. "
    "Reload the page and try again."
)


def _page_of(request) -> str:
    """The page a person is on: for htmx, the page that sent the request (never the action's own address)."""
    current = getattr(request, "htmx", None) and request.htmx.current_url_abs_path
    if current and url_has_allowed_host_and_scheme(current, allowed_hosts={request.get_host()}):
        return current
    return resolve_url("home")


class RequestIdMiddleware:
    """First in the chain: gives each request a reference (``request.request_id``, the ``X-Request-ID`` header),
    which every log line written while serving it carries and the 500 page shows (``config.api.handler500``)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = new_request_id()
        token = set_request_id(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response["X-Request-ID"] = request.request_id
        return response


class PermissionsPolicyMiddleware:
    """The ``Permissions-Policy`` header: every feature in ``settings.PERMISSIONS_POLICY`` is off (``feature=()``),
    for the page and for anything it embeds."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.header = ", ".join(f"{feature}=()" for feature in settings.PERMISSIONS_POLICY)

    def __call__(self, request):
        response = self.get_response(request)
        if self.header:
            response.setdefault("Permissions-Policy", self.header)
        return response


class WebEdgesMiddleware:
    """After django-htmx's middleware: a signed-out htmx request is sent to the sign-in page (and back to its page
    afterwards) instead of swapping the sign-in page into a checklist row; an address that only takes a form,
    opened in the browser, answers with the product's page rather than an empty 405."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if is_api_request(request):
            return response
        if getattr(request, "htmx", False) and response.status_code == 302 and self._to_login(response):
            redirected = HttpResponse(status=204)
            redirected["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': _page_of(request)})}"
            return redirected
        if response.status_code == 405 and not response.content:
            page = render(request, "405.html", {"back": _page_of(request)}, status=405)
            page["Allow"] = response.get("Allow", "POST")
            return page
        return response

    def _to_login(self, response) -> bool:
        login = resolve_url(settings.LOGIN_URL)
        return response.get("Location", "").split("?", 1)[0] == login


def csrf_failure(request, reason: str = ""):
    """``CSRF_FAILURE_VIEW``: the product's 403 page, saying what happened and what to do (htmx shows it in place)."""
    if is_api_request(request):
        message = "CSRF check failed: with session authentication, send the X-CSRFToken header."
        return JsonResponse(error_body(403, "csrf_failed", message), status=403)
    return render(request, "403.html", {"exception": STALE_PAGE}, status=403)
