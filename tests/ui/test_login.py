"""Sign-in lockout (django-axes, config/lockout.py): per username and per address, released after the cool-off,
the same on the admin's sign-in, recorded."""

import datetime as dt
import re

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django.urls import reverse

from tests.factories import AdminFactory

LIMIT = 3
COOL_OFF = dt.timedelta(minutes=15)
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
RIGHT = "pw-for-tests-1"


@pytest.fixture(autouse=True)
def lockout_settings(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = COOL_OFF
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def sign_in(client: Client, username: str, password: str, *, path: str = ""):
    return client.post(path or reverse("login"), {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def page_text(response) -> str:
    """The lockout panel's words, without the markup around them (nor the CSRF token, which differs per page)."""
    section = re.search(r'<section[^>]*data-testid="locked-out".*?</section>', response.content.decode(), re.S)
    assert section, response.content.decode()
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section.group(0))).strip()
    return re.sub(r" ([,.])", r"\1", words)


def test_failed_sign_ins_for_one_username_lock_it_until_the_cool_off_has_passed(clock, manager):
    """GIVEN LIMIT wrong passwords for one username
    WHEN the right password is given, from the same address or another one, before the cool-off has passed
    THEN it is refused with the lockout page (429, Retry-After); after the cool-off it signs in."""
    client = Client()
    answers = [sign_in(client, "manager", f"wrong-{n}").status_code for n in range(LIMIT)]
    assert answers == [400] * (LIMIT - 1) + [429]  # the failure that reaches the limit already locks

    clock.shift(dt.timedelta(minutes=5))
    locked = sign_in(client, "manager", RIGHT)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 10 * 60
    assert "try again after 09:15 (UTC), in about 10 minutes" in page_text(locked)
    assert not signed_in(client)
    elsewhere = Client(REMOTE_ADDR="10.0.0.9")
    assert sign_in(elsewhere, "manager", RIGHT).status_code == 429  # the username is locked, wherever from

    clock.shift(COOL_OFF - dt.timedelta(minutes=5) + dt.timedelta(seconds=1))
    released = sign_in(client, "manager", RIGHT)
    assert released.status_code == 302
    assert signed_in(client)


def test_failed_sign_ins_from_one_address_lock_it_across_usernames(clock, manager):
    """GIVEN LIMIT failed sign-ins from one address, each for a different username (none of them existing)
    WHEN someone at that address signs in with the right password THEN it is refused; from another address not."""
    here = Client(REMOTE_ADDR="10.0.0.1")
    for n in range(LIMIT):
        sign_in(here, f"nobody-{n}", "guess")

    assert sign_in(here, "manager", RIGHT).status_code == 429
    assert not signed_in(here)
    there = Client(REMOTE_ADDR="10.0.0.2")
    assert sign_in(there, "manager", RIGHT).status_code == 302


def test_the_lockout_page_does_not_say_whether_the_username_exists(clock, manager):
    """GIVEN an existing username and an unknown one, each failed LIMIT times from its own address
    THEN both are answered with the same page."""
    pages = []
    for address, username in (("10.0.1.1", "manager"), ("10.0.1.2", "no-such-person")):
        client = Client(REMOTE_ADDR=address)
        for _ in range(LIMIT - 1):
            sign_in(client, username, "guess")
        pages.append(sign_in(client, username, "guess"))

    assert [page.status_code for page in pages] == [429, 429]
    assert page_text(pages[0]) == page_text(pages[1])
    assert "manager" not in page_text(pages[0])


def test_the_admin_sign_in_locks_out_too(clock, db):
    AdminFactory(username="root")
    client = Client()
    admin_login = reverse("admin:login")
    for _ in range(LIMIT):
        sign_in(client, "root", "wrong", path=admin_login)

    locked = sign_in(client, "root", RIGHT, path=admin_login)

    assert locked.status_code == 429
    assert "Retry-After" in locked
    assert "Signing in is paused" in page_text(locked)
    assert client.get(reverse("admin:index")).status_code == 302  # still signed out


def test_failed_sign_ins_and_the_lockout_are_recorded_and_shown_in_the_admin(clock, manager):
    client = Client(REMOTE_ADDR="10.0.2.1")
    for _ in range(LIMIT):
        sign_in(client, "manager", "wrong")

    failures = AccessFailureLog.objects.filter(username="manager").order_by("attempt_time", "pk")
    assert [(f.ip_address, f.locked_out) for f in failures] == [("10.0.2.1", False)] * (LIMIT - 1) + [
        ("10.0.2.1", True)
    ]
    assert AccessAttempt.objects.get(username="manager").failures_since_start == LIMIT

    admin = Client()
    admin.force_login(AdminFactory(username="root"))
    listed = admin.get(reverse("admin:axes_accessfailurelog_changelist"))
    assert listed.status_code == 200
    assert "10.0.2.1" in listed.content.decode()


def test_a_successful_sign_in_forgets_only_that_persons_own_failures_from_that_address(clock, manager):
    """GIVEN a failure for the manager from another address, then a typo by the manager
    WHEN the manager signs in THEN the typo no longer counts, the other address's failure still does."""
    client = Client(REMOTE_ADDR="10.0.3.1")
    other = Client(REMOTE_ADDR="10.0.3.2")
    sign_in(other, "manager", "guess")
    sign_in(client, "manager", "typo")

    assert sign_in(client, "manager", RIGHT).status_code == 302

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["10.0.3.2"]
    assert [sign_in(other, "manager", "guess").status_code for _ in range(LIMIT - 1)] == [400] * (LIMIT - 2) + [429]


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(clock, settings, manager):
    """GIVEN one trusted proxy WHEN two people behind it fail to sign in, one of them LIMIT times and writing his
    own X-Forwarded-For entry THEN only his address is locked, the one the proxy appended, not the one he wrote."""
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "192.0.2.10"}
    attacker = Client(**proxy, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.5")  # "10.9.9.9" he wrote himself
    for n in range(LIMIT):
        sign_in(attacker, f"user-{n}", "guess")

    assert sign_in(attacker, "manager", RIGHT).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.5"}
    colleague = Client(**proxy, HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert sign_in(colleague, "manager", RIGHT).status_code == 302
