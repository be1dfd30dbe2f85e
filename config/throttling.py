"""API throttles on the cache, and the client's address they (and the sign-in lockout) count by.

Four scopes, each a rate in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (README, Configuration):

- ``anon``: requests without credentials that an endpoint answers (the schema), per address;
- ``user``: a signed-in person's requests, session and tokens together, per user;
- ``token``: each API token's requests, per token;
- ``auth_failure``: failed bearer-token authentications, per address. Authentication happens before DRF's
  throttles run, so ``handover.tokens.authentication`` counts its failures here itself.

Beyond a rate the API answers 429 with ``Retry-After``. The counts live in Django's default cache: Redis when
``REDIS_URL`` is set (shared by every process), local memory otherwise (each process counts on its own).
"""

import ipaddress
import logging
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)

try:  # the cache's errors when it is Redis and Redis is down
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is installed with celery[redis]
    RedisError = OSError  # type: ignore[assignment,misc]

# How long throttling stays off after the cache failed, so that a Redis that is down or unreachable costs one
# timeout now and then rather than one on every request (the outbox's breaker does the same for publishing).
CACHE_BREAKER_SECONDS = 30.0
_cache_down_until = 0.0


def client_ip(request) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or behind ``TRUSTED_PROXY_COUNT`` reverse proxies the address the
    outermost of them saw, read from ``X-Forwarded-For`` counted from the right (the entries to its left are
    whatever the client sent, so they are never trusted). Anything that is not an address falls back to
    ``REMOTE_ADDR``. Used by the throttles and by the sign-in lockout (``AXES_CLIENT_IP_CALLABLE``)."""
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [part.strip() for part in forwarded.split(",")]
    candidate = addresses[-min(proxies, len(addresses))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


class CacheRateThrottle(SimpleRateThrottle):
    """DRF's sliding-window throttle, with the rate read when a request comes (so settings can change it), the
    client counted by ``client_ip``, and the API kept answering, unthrottled, while the cache is down."""

    def get_rate(self) -> str | None:
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES  # the stubs type the values as numbers
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No rate for the throttle scope {self.scope!r}.")
        return rates[self.scope]

    def get_ident(self, request) -> str:
        return client_ip(request) or "unknown"

    def allow_request(self, request, view) -> bool:
        global _cache_down_until
        if self.rate is None or time.monotonic() < _cache_down_until:
            return True
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as error:
            _cache_down_until = time.monotonic() + CACHE_BREAKER_SECONDS
            log.warning("Throttling is off for %ss: the cache failed: %s", CACHE_BREAKER_SECONDS, error)
            return True


class AnonThrottle(CacheRateThrottle):
    """Requests without credentials, per address."""

    scope = "anon"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserThrottle(CacheRateThrottle):
    """A signed-in person's requests, however they authenticate (session or any of their tokens)."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class TokenThrottle(CacheRateThrottle):
    """Each API token's requests (a session has no token: only ``user`` counts it)."""

    scope = "token"

    def get_cache_key(self, request, view) -> str | None:
        token_id = getattr(request.auth, "pk", None)
        if token_id is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": token_id}


class AuthFailureThrottle(CacheRateThrottle):
    """Failed authentications per address. Unlike the others it counts only what ``record_failure`` is told, and
    ``wait`` refuses every attempt from an address beyond the rate, right credentials included: otherwise a
    guesser would simply ignore the 429s and wait for a 200."""

    scope = "auth_failure"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def seconds_to_wait(self, request) -> float | None:
        """Seconds until the address may try again, or None if it may now."""
        if self.allow_request(request, None):
            return None
        return self.wait()

    def wait(self) -> float:
        """Until the failure that fills the window leaves it. Concurrent failures can each be recorded after the
        check, so the window may hold more than the rate: DRF's own ``wait`` then answers None ("no wait"), which
        here would let every further guess through."""
        num_requests, duration = self.parse_rate(self.rate)
        if num_requests is None or duration is None:  # no rate: nothing is ever refused
            return 0.0
        newest_first = self.history
        filling = newest_first[min(num_requests, len(newest_first)) - 1] if newest_first else self.now
        return max(1.0, duration - (self.now - filling))

    def throttle_success(self) -> bool:
        # Checking is not a failure: nothing is recorded until ``record_failure``.
        return True

    def record_failure(self, request) -> None:
        global _cache_down_until
        if self.rate is None or time.monotonic() < _cache_down_until:
            return
        _, duration = self.parse_rate(self.rate)
        assert duration is not None
        try:
            key, now = self.get_cache_key(request, None), self.timer()
            history = [t for t in self.cache.get(key, []) if t > now - duration]
            self.cache.set(key, [now, *history], duration)
        except (RedisError, OSError) as error:
            _cache_down_until = time.monotonic() + CACHE_BREAKER_SECONDS
            log.warning("Throttling is off for %ss: the cache failed: %s", CACHE_BREAKER_SECONDS, error)


THROTTLED_DESCRIPTION = (
    "Too many requests: beyond the rate of the caller's address (anonymous), person, token, or of failed "
    "authentications from the address. `Retry-After` says in how many seconds to try again."
)


def document_throttling(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: every operation may answer 429 with ``Retry-After``, in the API's
    error shape (every API view has the throttles; the failed-authentication one runs even before them)."""
    throttled = {
        "description": THROTTLED_DESCRIPTION,
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before the next request.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("429", throttled)
    return result
