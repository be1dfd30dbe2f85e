"""Paging the API's lists: a count bounded by a cap, and the cursor variant for tools (``?paginate=cursor``)."""

import base64
import datetime as dt
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.api import Pagination
from handover.models import ChecklistItem
from tests.factories import HandoverFactory, ProjectFactory, TeamFactory, UserFactory

API = "/api/v1"


@pytest.fixture
def client(db):
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


def _get(client, url, params=None) -> dict:
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    return response.json()


def _walk(client, url: str, *, page_size: int) -> tuple[list[int], dict]:
    """Every id of a list by following its cursor's next links; and the last page."""
    page = _get(client, url, {"paginate": "cursor", "page_size": page_size})
    assert page["previous"] is None
    ids = [row["id"] for row in page["results"]]
    while page["next"]:
        page = _get(client, page["next"])
        ids += [row["id"] for row in page["results"]]
    return ids, page


def test_count_is_exact_below_the_cap_and_bounded_beyond_it(client, monkeypatch):
    """GIVEN five projects and a count cap of three
    WHEN the first page of two is read, then the last page
    THEN the first says there are more than three (count_exact false) and still links the next page; the last,
    counted to its own end, has the exact count."""
    team = TeamFactory()
    ProjectFactory.create_batch(5, receiving_team=team)
    monkeypatch.setattr(Pagination, "count_cap", 3)

    first = _get(client, f"{API}/projects/", {"page_size": 2})
    assert (first["count"], first["count_exact"], len(first["results"])) == (3, False, 2)
    assert first["next"] is not None

    last = _get(client, f"{API}/projects/", {"page_size": 2, "page": 3})
    assert (last["count"], last["count_exact"], len(last["results"]), last["next"]) == (5, True, 1, None)

    monkeypatch.setattr(Pagination, "count_cap", 10)
    assert _get(client, f"{API}/projects/")["count_exact"] is True


def test_cursor_walks_handovers_in_order_through_ties_and_back(client):
    """GIVEN seven handovers, five of them due on the same day
    WHEN the list is walked by cursor two at a time, then back through the previous links
    THEN it gives every handover once, in the list's own order (target date, then id), both ways."""
    day = timezone.localdate() + dt.timedelta(days=10)
    for offset in (0, 0, 3, 0, -2, 0, 0):
        HandoverFactory(target_date=day + dt.timedelta(days=offset))
    by_page = [row["id"] for row in _get(client, f"{API}/handovers/", {"page_size": 100})["results"]]

    ids, last = _walk(client, f"{API}/handovers/", page_size=2)
    assert len(ids) == 7
    assert ids == by_page

    back = [row["id"] for row in last["results"]]
    page = last
    while page["previous"]:
        page = _get(client, page["previous"])
        back = [row["id"] for row in page["results"]] + back
    assert back == by_page


def test_cursor_walks_items_by_handover_then_position(client):
    """Items are paged by (handover, position, id): each handover's checklist in order, handover after handover."""
    first, second = HandoverFactory(), HandoverFactory()
    ChecklistItem.objects.bulk_create(
        ChecklistItem(handover=handover, title=f"Item {n}", risk="failure", side="project", position=position)
        for n, (handover, position) in enumerate([(second, 1), (first, 2), (first, 1), (second, 1), (first, 2)])
    )
    expected = list(ChecklistItem.objects.order_by("handover_id", "position", "id").values_list("id", flat=True))

    ids, _ = _walk(client, f"{API}/items/", page_size=2)
    assert ids == expected


def _cursor(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        pytest.param("handovers", {"paginate": "pages"}, "paginate", id="unknown-mode"),
        pytest.param("handovers", {"cursor": _cursor({"k": ["2026-01-01", 1]})}, "cursor", id="cursor-alone"),
        pytest.param("handovers", {"paginate": "cursor", "page": "2"}, "page", id="cursor-and-page"),
        pytest.param("handovers", {"paginate": "cursor", "ordering": "status"}, "ordering", id="cursor-and-ordering"),
        pytest.param("handovers", {"paginate": "cursor", "cursor": "%%%\x00"}, "cursor", id="garbage"),
        pytest.param("handovers", {"paginate": "cursor", "cursor": _cursor({"k": ["x", 1]})}, "cursor", id="bad-date"),
        pytest.param("handovers", {"paginate": "cursor", "cursor": _cursor({"k": [None, 1]})}, "cursor", id="null"),
        pytest.param("handovers", {"paginate": "cursor", "cursor": _cursor({"k": [1]})}, "cursor", id="short"),
        pytest.param("items", {"paginate": "cursor", "cursor": _cursor({"k": [1, 2, 3], "r": 1})}, "cursor", id="r"),
        pytest.param("projects", {"paginate": "cursor", "cursor": _cursor([1])}, "cursor", id="not-an-object"),
        pytest.param("tokens", {"paginate": "cursor"}, "paginate", id="list-without-cursor"),
    ],
)
def test_bad_paging_is_refused_naming_the_parameter(client, url, params, field):
    response = client.get(f"{API}/{url}/", params)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
