"""Answers the web UI owes a person when a request cannot reach its view: the session ended, the form's CSRF token
went stale, or an address that only takes a form was opened. The API (``/api/``) answers these itself."""

import logging
import threading
import time
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme

from .api import error_body, is_api_request
from .request_id import new_request_id, reset_request_id, set_request_id

logger = logging.getLogger(__name__)

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


OVERLOADED = "The service is busy right now and could not take this request. Try again in a few seconds."


class LoadSheddingMiddleware:
    """Overload degrades instead of collapsing: at most ``MAX_CONCURRENT_REQUESTS`` requests of this process run at
    once and as many more wait, each up to ``REQUEST_QUEUE_TIMEOUT`` seconds, for a slot; any other request, and a
    waiting one whose time is up, is answered 503 with ``Retry-After`` (the API's error shape under /api/, a small
    page elsewhere), without touching the database.

    Past saturation a queue only adds waiting: every request would wait for those ahead of it until it reached
    the timeout. Refused at once, the excess costs the server almost nothing and the admitted requests keep their
    speed; the short wait only absorbs the bursts of a load within capacity. gunicorn runs more threads than slots
    and waiters (config/gunicorn.py), so a thread is free to say no. Behind a proxy that stamps
    ``X-Request-Start``, a request that already waited longer than ``REQUEST_MAX_AGE`` seconds in front of the
    application is refused too: its client has likely given up. /healthz is never refused (its checks are cheap),
    nor are static files (WhiteNoise, before this middleware, serves them). How many were refused is logged as a
    warning at most every ten seconds, not once per request."""

    REPORT_EVERY = 10.0

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if not settings.MAX_CONCURRENT_REQUESTS:
            raise MiddlewareNotUsed
        self.slots = threading.BoundedSemaphore(settings.MAX_CONCURRENT_REQUESTS)
        self.queue = threading.BoundedSemaphore(settings.MAX_CONCURRENT_REQUESTS)
        self.wait = settings.REQUEST_QUEUE_TIMEOUT
        self.max_age = settings.REQUEST_MAX_AGE
        self.exempt = tuple(settings.LOAD_SHEDDING_EXEMPT)
        self.page: str | None = None
        self.refused, self.reported_at, self.lock = 0, time.monotonic(), threading.Lock()

    def __call__(self, request):
        if request.path_info.startswith(self.exempt):
            return self.get_response(request)
        if self.max_age and self._waited(request) > self.max_age:
            return self.shed(request)
        if not self._admit():
            return self.shed(request)
        try:
            return self.get_response(request)
        finally:
            self.slots.release()

    def _admit(self) -> bool:
        if self.slots.acquire(blocking=False):
            return True
        if not self.wait or not self.queue.acquire(blocking=False):  # as many waiting as running, no more
            return False
        try:
            return self.slots.acquire(timeout=self.wait)
        finally:
            self.queue.release()

    def _waited(self, request) -> float:
        """Seconds since the proxy stamped the request: ``X-Request-Start: t=<seconds, ms or µs since the epoch>``
        (nginx, HAProxy, Heroku write it in one of these units); 0 without a readable stamp."""
        value = request.META.get("HTTP_X_REQUEST_START", "").strip().removeprefix("t=")
        try:
            stamp = float(value)
        except ValueError:
            return 0.0
        # Seconds since the epoch have 10 digits for centuries yet; milliseconds 13, microseconds 16.
        if stamp > 1e14:
            stamp /= 1e6
        elif stamp > 1e11:
            stamp /= 1e3
        return max(0.0, time.time() - stamp)

    def shed(self, request) -> HttpResponse:
        retry_after = str(settings.LOAD_SHEDDING_RETRY_AFTER)
        response: HttpResponse
        if is_api_request(request):
            response = JsonResponse(error_body(503, "overloaded", OVERLOADED), status=503)
        else:
            if self.page is None:  # rendered once: no request context, no database (like the 500 page)
                self.page = render_to_string("503.html", {"message": OVERLOADED})
            response = HttpResponse(self.page, status=503)
        response["Retry-After"] = retry_after
        response["Cache-Control"] = "no-store"
        # Not logged one by one (Django logs every 5xx with its path): under overload that would be thousands of
        # lines a minute, written by the very threads meant to answer quickly. A count every REPORT_EVERY seconds.
        response._has_been_logged = True  # type: ignore[attr-defined]
        with self.lock:
            self.refused += 1
            now = time.monotonic()
            if now - self.reported_at < self.REPORT_EVERY:
                return response
            refused, since = self.refused, now - self.reported_at
            self.refused, self.reported_at = 0, now
        logger.warning("Overloaded: %d request(s) refused with 503 in the last %.0f s", refused, since)
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
