"""The handover list reads readiness as stored on each handover: its ``readiness`` field, the ``readiness_below``
filter and the ``readiness`` orderings read no checklist item, in the same number of queries for 1 or 50 rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from handover.choices import ItemStatus, Risk
from handover.models import ChecklistItem
from handover.readiness import handover_readiness
from tests.factories import ChecklistItemFactory, HandoverFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def _handover(code: str, verified: int, of: int, risk: Risk = Risk.FAILURE):
    handover = HandoverFactory(project=ProjectFactory(code=code))
    for n in range(of):
        ChecklistItemFactory(handover=handover, risk=risk, status=ItemStatus.VERIFIED if n < verified else "open")
    return handover


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["project"]["code"] for row in response.json()["results"]]


def test_ordering_and_filtering_by_stored_readiness(api):
    _handover("HALF", 1, 2)
    _handover("ALL", 2, 2)
    _handover("NONE", 0, 3)
    _handover("EMPTY", 0, 0)  # nothing applicable: visibly not ready (0)
    _handover("ADOPT", 1, 1, risk=Risk.ADOPTION)

    descending = codes(api.get("/api/v1/handovers/?ordering=-readiness"))
    assert (set(descending[:2]), descending[2]) == ({"ALL", "ADOPT"}, "HALF")
    ascending = codes(api.get("/api/v1/handovers/?ordering=readiness"))
    assert (set(ascending[:2]), ascending[2]) == ({"NONE", "EMPTY"}, "HALF")
    by_failure = codes(api.get("/api/v1/handovers/?ordering=-readiness_failure"))
    assert by_failure[:2] == ["ALL", "HALF"]
    below = api.get("/api/v1/handovers/?readiness_risk=overall&readiness_below=0.6&ordering=readiness")
    assert set(codes(below)) == {"NONE", "EMPTY", "HALF"}
    failure_below = api.get("/api/v1/handovers/?readiness_risk=failure&readiness_below=1")
    assert set(codes(failure_below)) == {"NONE", "EMPTY", "HALF", "ADOPT"}


def test_readiness_field_is_the_stored_one_and_equals_the_items(api):
    handover = _handover("HALF", 1, 2)
    [row] = api.get("/api/v1/handovers/").json()["results"]
    assert row["readiness"] == handover_readiness(handover).as_dict()
    assert row["readiness"]["failure"]["verified_ratio"] == 0.5


def _list_queries(api, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert api.get(url).status_code == 200
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize(
    "query", ["", "ordering=-readiness", "readiness_risk=adoption&readiness_below=0.5&ordering=readiness_failure"]
)
def test_lists_read_no_item_and_do_not_grow(api, query):
    _handover("FIRST", 1, 3)
    one = _list_queries(api, f"/api/v1/handovers/?page_size=50&{query}")
    for n in range(49):
        _handover(f"P{n}", n % 3, 3)
    fifty = _list_queries(api, f"/api/v1/handovers/?page_size=50&{query}")
    assert len(one) == len(fifty)
    items = ChecklistItem._meta.db_table
    assert not [sql for sql in fifty if items in sql]
