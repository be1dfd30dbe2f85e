"""What an API token costs a request: one indexed lookup, and a write of its last use at most once a minute."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from handover.tokens import services as tokens
from tests.factories import UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _token_queries(client: APIClient) -> tuple[int, int]:
    """(lookups, updates) of the token table made by one authenticated request."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/me/").status_code == 200
    on_tokens = [q["sql"] for q in queries.captured_queries if "handover_apitoken" in q["sql"]]
    updates = [sql for sql in on_tokens if sql.startswith("UPDATE")]
    return len(on_tokens) - len(updates), len(updates)


@pytest.mark.django_db
def test_token_last_use_is_written_at_most_once_a_minute():
    """GIVEN a token never used
    WHEN it is used, again 30 seconds later, and again 61 seconds after the first use
    THEN each request looks the token up once; only the first and the third write its last use."""
    user = UserFactory()
    with time_machine.travel(START, tick=False) as traveller:
        token, raw = tokens.token_create(by=user, name="tool")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

        assert _token_queries(client) == (1, 1)
        token.refresh_from_db()
        assert token.last_used_at == START

        traveller.shift(dt.timedelta(seconds=30))
        assert _token_queries(client) == (1, 0)
        token.refresh_from_db()
        assert token.last_used_at == START

        traveller.shift(dt.timedelta(seconds=31))
        assert _token_queries(client) == (1, 1)
        token.refresh_from_db()
        assert token.last_used_at == START + dt.timedelta(seconds=61)
