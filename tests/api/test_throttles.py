"""API throttles (config/throttling.py): 429 with Retry-After beyond each scope's rate, in the one error shape, until
the window has passed; failed token authentication counted per address; on Redis, one count for every process.

The suite runs with every rate off (config/settings/test.py); each test here sets the rates it tests.
"""

import datetime as dt
import os
import uuid

import pytest
import redis
import time_machine
from django.core.cache import cache, caches
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from config.throttling import CacheRateThrottle, client_ip
from handover.models import ApiToken
from handover.tokens import services as tokens
from tests.factories import UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ME = reverse("v1:me")


@pytest.fixture
def rates(settings):
    """``rates(user="3/minute")``: the throttle rates for this test, counted from zero; a scope not named is off."""
    cache.clear()  # the suite's cache is local memory, kept for the life of the process

    def set_rates(**given: str) -> None:
        off = dict.fromkeys(("anon", "user", "token", "auth_failure"))
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**off, **given}}

    return set_rates


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def token_client(raw: str, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def assert_throttled(response, *, retry_after: int) -> None:
    assert response.status_code == 429, response.content
    assert response["Retry-After"] == str(retry_after)
    error = response.data["error"]  # the schema endpoint renders it in the schema's format, the rest as JSON
    assert (error["status"], error["code"], error["fields"]) == (429, "throttled", {})
    assert f"{retry_after} seconds" in error["message"]


def test_anonymous_requests_beyond_the_rate_get_429_until_the_window_has_passed(rates, clock):
    """GIVEN a rate of 1 anonymous request a minute WHEN the schema is fetched twice from one address
    THEN the second is 429 for the rest of the minute; another address is counted apart; a minute later it works."""
    rates(anon="1/minute")
    here, there = APIClient(REMOTE_ADDR="10.1.0.1"), APIClient(REMOTE_ADDR="10.1.0.2")
    assert here.get(reverse("schema")).status_code == 200

    clock.shift(dt.timedelta(seconds=20))
    assert_throttled(here.get(reverse("schema")), retry_after=40)
    assert there.get(reverse("schema")).status_code == 200

    clock.shift(dt.timedelta(seconds=40))
    assert here.get(reverse("schema")).status_code == 200


def test_a_person_is_counted_across_their_session_and_their_tokens(rates, clock, db):
    """GIVEN a rate of 3 requests a minute per user WHEN one person calls with their session and two tokens
    THEN the fourth call, whichever way it comes, is 429; someone else is not affected; a minute later it works."""
    rates(user="3/minute")
    person = UserFactory()
    session = APIClient()
    session.force_login(person)
    first, second = (token_client(tokens.token_create(by=person, name=name)[1]) for name in ("a", "b"))

    assert [c.get(ME).status_code for c in (session, first, second)] == [200, 200, 200]
    assert_throttled(first.get(ME), retry_after=60)
    assert_throttled(session.get(ME), retry_after=60)
    someone_else = APIClient()
    someone_else.force_login(UserFactory())
    assert someone_else.get(ME).status_code == 200

    clock.shift(dt.timedelta(minutes=1))
    assert second.get(ME).status_code == 200


def test_each_token_has_its_own_rate(rates, clock, db):
    """GIVEN a rate of 2 requests a minute per token WHEN one token makes a third call THEN it is 429, while the same
    person's other token and their session still work; a minute later the first token works again."""
    rates(token="2/minute")
    person = UserFactory()
    busy = token_client(tokens.token_create(by=person, name="busy")[1])
    calm = token_client(tokens.token_create(by=person, name="calm")[1])
    session = APIClient()
    session.force_login(person)

    assert [busy.get(ME).status_code for _ in range(2)] == [200, 200]
    clock.shift(dt.timedelta(seconds=30))
    assert_throttled(busy.get(ME), retry_after=30)
    assert calm.get(ME).status_code == 200
    assert session.get(ME).status_code == 200

    clock.shift(dt.timedelta(seconds=30))
    assert busy.get(ME).status_code == 200


def test_failed_token_authentication_is_throttled_per_address(rates, clock, db):
    """GIVEN a rate of 3 failed authentications a minute WHEN one address presents an unknown, a revoked and an
    expired token (three 401s) THEN its next attempt is 429, even with a valid token, without being looked at;
    another address is not affected; a minute later the valid token works from the first address too."""
    rates(auth_failure="3/minute")
    person = UserFactory()
    _, valid = tokens.token_create(by=person, name="valid")
    revoked, revoked_raw = tokens.token_create(by=person, name="revoked")
    tokens.token_revoke(token=revoked, by=person)
    expired, expired_raw = tokens.token_create(by=person, name="old", expires_at=timezone.now() + dt.timedelta(hours=1))
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    here = {"REMOTE_ADDR": "10.2.0.1"}

    failures = [token_client(raw, **here).get(ME) for raw in ("hov_not-a-token", revoked_raw, expired_raw)]
    assert [response.status_code for response in failures] == [401, 401, 401]

    clock.shift(dt.timedelta(seconds=15))
    refused = token_client(valid, **here).get(ME)
    assert_throttled(refused, retry_after=45)
    assert "Too many failed authentications from your address" in refused.json()["error"]["message"]
    assert token_client(valid, REMOTE_ADDR="10.2.0.2").get(ME).status_code == 200
    assert token_client(valid, **here).get(ME).status_code == 429  # a refusal is not a failure: no extension

    clock.shift(dt.timedelta(seconds=45))
    assert token_client(valid, **here).get(ME).status_code == 200


def test_failures_recorded_beyond_the_rate_keep_the_address_refused(rates, clock, db):
    """GIVEN a rate of 3 failed authentications a minute and five failures recorded from one address (concurrent
    requests can each pass the check before any is recorded) WHEN it tries again, and again after another failure
    THEN it is refused each time until the third newest failure has left the window; AND a rate lowered below the
    count already recorded refuses too."""
    from config.throttling import AuthFailureThrottle

    rates(auth_failure="3/minute")
    _, valid = tokens.token_create(by=UserFactory(), name="valid")
    here = {"REMOTE_ADDR": "10.3.0.1"}
    request = token_client(valid, **here).get(ME).wsgi_request
    throttle = AuthFailureThrottle()
    for _ in range(5):
        clock.shift(dt.timedelta(seconds=1))
        throttle.record_failure(request)

    assert_throttled(token_client(valid, **here).get(ME), retry_after=58)  # the third newest, 2 s ago
    throttle.record_failure(request)
    assert_throttled(token_client(valid, **here).get(ME), retry_after=59)
    clock.shift(dt.timedelta(seconds=59))
    assert token_client(valid, **here).get(ME).status_code == 200

    rates(auth_failure="3/minute")
    for _ in range(3):
        throttle.record_failure(request)
    rates(auth_failure="1/minute")
    assert token_client(valid, **here).get(ME).status_code == 429


def test_a_valid_token_does_not_count_as_a_failure(rates, db):
    rates(auth_failure="1/minute")
    _, valid = tokens.token_create(by=UserFactory(), name="valid")
    client = token_client(valid)

    assert [client.get(ME).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    ("proxies", "meta", "expected"),
    [
        pytest.param(0, {"HTTP_X_FORWARDED_FOR": "203.0.113.5"}, "192.0.2.10", id="no-proxy-ignores-the-header"),
        pytest.param(1, {"HTTP_X_FORWARDED_FOR": "10.9.9.9, 203.0.113.5"}, "203.0.113.5", id="one-proxy"),
        pytest.param(2, {"HTTP_X_FORWARDED_FOR": "10.9.9.9, 203.0.113.5, 198.51.100.7"}, "203.0.113.5", id="two"),
        pytest.param(3, {"HTTP_X_FORWARDED_FOR": "203.0.113.5"}, "203.0.113.5", id="fewer-entries-than-proxies"),
        pytest.param(1, {}, "192.0.2.10", id="no-header"),
        pytest.param(1, {"HTTP_X_FORWARDED_FOR": "not-an-address"}, "192.0.2.10", id="not-an-address"),
        pytest.param(1, {"HTTP_X_FORWARDED_FOR": "2001:db8::1"}, "2001:db8::1", id="ipv6"),
    ],
)
def test_the_client_address_is_read_behind_the_trusted_proxies_only(settings, proxies, meta, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10", **meta)

    assert client_ip(request) == expected


@pytest.mark.redis
def test_on_redis_every_process_counts_together(rates, settings, monkeypatch):
    """GIVEN the cache on Redis and a rate of 1 anonymous request a minute
    WHEN one client fetches the schema, then another client through a cache connection of its own (as another
    process would have) THEN the second is 429: the count is in Redis, not in the first one's memory."""
    prefix = f"handover-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": prefix,
        }
    }
    rates(anon="1/minute")
    key = "throttle_anon_127.0.0.1"
    try:
        assert APIClient().get(reverse("schema")).status_code == 200

        other_process = caches.create_connection("default")
        monkeypatch.setattr(CacheRateThrottle, "cache", other_process)
        assert len(other_process.get(key)) == 1
        assert redis.Redis.from_url(os.environ["REDIS_URL"]).exists(f"{prefix}:1:{key}")  # Django's key format
        assert APIClient().get(reverse("schema")).status_code == 429
    finally:
        cache.delete(key)  # only this test's key: the Redis database is shared with the broker and other tests
