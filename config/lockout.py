"""Sign-in lockout with django-axes: what is recorded, what a locked-out person sees.

Failed sign-ins are counted per username and, separately, per address (``AXES_LOCKOUT_PARAMETERS``); either one
reaching ``LOGIN_FAILURE_LIMIT`` within ``LOGIN_COOLOFF_MINUTES`` locks that username, or that address, until the
cool-off has passed since the failures that locked it. While locked, even the right password is refused, and the
page says when to try again without saying whether the username exists (an unknown username locks the same way).
The web UI's sign-in and the admin's go through ``authenticate()``, so both are covered.

Every failure is an ``AccessFailureLog`` row (with whether it locked), the current counts are ``AccessAttempt``
rows, successful sign-ins ``AccessLog`` rows: all in the admin, under Axes.
"""

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_parameters, get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    class AxesHttpRequest(HttpRequest):
        """A request as axes hands it over: its handler has set the client's address and user agent on it."""

        axes_ip_address: str
        axes_user_agent: str


class LockoutHandler(AxesDatabaseHandler):
    """Axes' database handler; a successful sign-in forgets that person's own earlier failures from that address.

    Not all of the address's failures (``AXES_RESET_ON_SUCCESS`` would): someone with an account of their own could
    then guess other people's passwords from one address for ever, signing in as themselves between tries. Nor the
    username's failures from other addresses: those may be someone else's guesses, and stay counted.
    """

    def user_logged_in(self, sender: Any, request: "AxesHttpRequest", user: "AbstractBaseUser", **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        AccessAttempt.objects.filter(username=user.get_username(), ip_address=request.axes_ip_address).delete()


def locked_until(request: "AxesHttpRequest", credentials: dict[str, Any] | None = None) -> datetime | None:
    """When the lockout that refused ``request`` ends: for each lockout parameter (the username, the address), the
    time at which so many of its failures have aged past the cool-off that fewer than the limit remain."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    limit = get_failure_limit(request, credentials)
    since = timezone.now() - cool_off
    parameters = get_client_parameters(
        get_client_username(request, credentials),
        request.axes_ip_address,
        request.axes_user_agent,
        request,
        credentials,
    )
    until: datetime | None = None
    for filter_kwargs in parameters:
        attempts = AccessAttempt.objects.filter(**filter_kwargs, attempt_time__gte=since).order_by("-attempt_time")
        counted = 0
        for attempt_time, failures in attempts.values_list("attempt_time", "failures_since_start"):
            counted += failures
            if counted >= limit:
                if until is None or attempt_time + cool_off > until:
                    until = attempt_time + cool_off
                break
    return until


def lockout_response(
    request: "AxesHttpRequest",
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the 429 page, saying when to try again, with ``Retry-After``.

    Positional, not keyword-only: axes calls it as ``(request, original_response, credentials)``."""
    until = locked_until(request, credentials)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds())) if until else None
    context = {
        "until": timezone.localtime(until) if until else None,
        "minutes": math.ceil(seconds / 60) if seconds else None,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
