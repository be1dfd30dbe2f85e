"""Saved views (handover.saved_views, /api/v1/saved-views/, the board's "Save this view"): named filters, a
person's own, checked against the page's filters, audited, and never a way to see a confidential project."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from handover import saved_views as sv
from handover.choices import AdminEventKind
from handover.models import AdminEvent, SavedView
from tests.factories import HandoverFactory, ProjectFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db
API = "/api/v1/saved-views/"


@pytest.fixture
def person(db):
    return UserFactory(username="nina")


def api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_create_list_retrieve_and_delete_your_own_view(person):
    client = api(person)

    created = client.post(
        API, {"name": " Desk, late ", "page": "handovers", "filters": {"team": "3", "status": ["submitted"]}}
    )

    assert created.status_code == 201, created.content
    view = created.json()
    assert (view["name"], view["page"], view["filters"]) == (
        "Desk, late",
        "handovers",
        {"team": "3", "status": ["submitted"]},
    )
    assert view["url"].endswith("/handovers/?team=3&status=submitted")
    assert [row["id"] for row in client.get(API).json()["results"]] == [view["id"]]
    assert client.get(f"{API}{view['id']}/").json()["name"] == "Desk, late"
    assert client.delete(f"{API}{view['id']}/").status_code == 204
    assert not SavedView.objects.exists()
    kinds = list(AdminEvent.objects.order_by("id").values_list("kind", "actor", "object_id"))
    assert kinds == [
        (AdminEventKind.SAVED_VIEW_CREATED, person.pk, view["id"]),
        (AdminEventKind.SAVED_VIEW_DELETED, person.pk, view["id"]),
    ]


def test_another_persons_view_is_404_for_everyone_even_an_administrator(person):
    view = sv.saved_view_create(user=person, page="portfolio", name="Mine", filters={"team": "1"})
    for other in (UserFactory(), UserFactory(is_staff=True)):
        client = api(other)
        assert client.get(API).json()["results"] == []
        error(client.get(f"{API}{view.pk}/"), 404)
        error(client.delete(f"{API}{view.pk}/"), 404)
        assert web(other).post(reverse("handover:saved-view-delete", args=[view.pk])).status_code == 404
    assert SavedView.objects.filter(pk=view.pk).exists()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"page": "handovers", "filters": {"colour": "red"}},
            "filters.colour",
            "Unknown filter 'colour' for the handover list",
        ),
        ({"page": "portfolio", "filters": {"status": "submitted"}}, "filters.status", "Unknown filter 'status'"),
        ({"page": "portfolio", "filters": {"team": "x"}}, "filters.team", "takes an id"),
        ({"page": "portfolio", "filters": {"team": ["1", "2"]}}, "filters.team", "Give one value"),
        ({"page": "handovers", "filters": {"status": ["nonsense"]}}, "filters.status", "one of"),
        ({"page": "handovers", "filters": {"readiness_below": "1.5"}}, "filters.readiness_below", "from 0 to 1"),
        ({"page": "handovers", "filters": {"team": 3}}, "filters", "string"),
        ({"page": "handovers", "filters": ["team"]}, "filters", "object"),
        ({"page": "board", "filters": {}}, "page", "valid choice"),
        ({"page": "portfolio", "name": "   "}, "name", "Give the view a name"),
        ({"page": "portfolio", "name": "x" * 81}, "name", "80"),
        ({"page": "portfolio", "name": "a\x00b"}, "name", "Null characters"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(person, body, field, words):
    response = api(person).post(API, {"name": "Late", **body}, format="json")

    refusal = error(response)
    assert field in refusal["fields"], refusal
    assert words in " ".join(refusal["fields"][field]), refusal
    assert not SavedView.objects.exists()
    assert not AdminEvent.objects.exists()


def test_a_name_is_unique_per_person_and_page(person):
    client = api(person)
    assert client.post(API, {"name": "Late", "page": "portfolio"}, format="json").status_code == 201

    again = error(client.post(API, {"name": "Late", "page": "portfolio"}, format="json"))

    assert again["code"] == "saved_view_name_taken"
    assert set(again["fields"]) == {"name"}
    assert client.post(API, {"name": "Late", "page": "projects"}, format="json").status_code == 201
    assert api(UserFactory()).post(API, {"name": "Late", "page": "portfolio"}, format="json").status_code == 201


def test_the_board_saves_its_filters_and_lists_the_view_as_a_link(person):
    """GIVEN the board filtered by a team (and paged) WHEN its "Save this view" form is sent THEN the view keeps the
    filters (not the paging or the empty ones), the board lists it as a link to those filters, and it can go."""
    client = web(person)
    query = "team=7&manager=&page=2"

    saved = client.post(reverse("handover:saved-view-create"), {"page": "portfolio", "name": "Desk", "query": query})

    assert saved.status_code == 302
    assert saved["Location"] == "/portfolio/?team=7"
    view = SavedView.objects.get()
    assert view.filters == {"team": "7"}
    board = client.get("/portfolio/?team=7").content.decode()
    assert '<a href="/portfolio/?team=7" aria-current="page">Desk</a>' in board
    duplicate = client.post(reverse("handover:saved-view-create"), {"page": "portfolio", "name": "Desk", "query": ""})
    assert duplicate.status_code == 400
    assert "You already have a view named &#x27;Desk&#x27;" in duplicate.content.decode()
    gone = client.post(reverse("handover:saved-view-delete", args=[view.pk]), {"next": "/portfolio/?team=7"})
    assert (gone.status_code, gone["Location"]) == (302, "/portfolio/?team=7")
    assert not SavedView.objects.exists()


def test_a_saved_view_never_shows_a_confidential_project_to_an_outsider(person):
    """GIVEN a confidential project, and an outsider's saved board view filtered by its team and its manager
    WHEN the outsider opens the view THEN the board shows nothing of the project; its manager sees it."""
    secret = ProjectFactory(code="SECRET-1", confidential=True, receiving_team=TeamFactory())
    view = sv.saved_view_create(
        user=person,
        page="portfolio",
        name="Their team",
        filters={"team": str(secret.receiving_team_id), "manager": str(secret.manager_id)},
    )

    shown = web(person).get(sv.saved_view_url(view))

    assert shown.status_code == 200
    assert "SECRET-1" not in shown.content.decode()
    assert "SECRET-1" in web(secret.manager).get(sv.saved_view_url(view)).content.decode()


@pytest.mark.parametrize(
    ("page", "filters"),
    [
        ("handovers", lambda h: {"project": str(h.project_id), "team": str(h.receiving_team_id)}),
        ("handovers", lambda h: {"manager": str(h.project.manager_id), "status": [h.status]}),
        ("projects", lambda h: {"team": str(h.receiving_team_id), "manager": str(h.project.manager_id)}),
    ],
)
def test_a_saved_list_view_never_shows_a_confidential_project_to_an_outsider(person, page, filters):
    """The same for the handover and project lists: the view's link opens the list with its filters, and the list
    shows the outsider nothing of the confidential project its filters name (a filter naming what they may not see
    is the list's 400, as for an id that does not exist); its manager sees it."""
    secret = HandoverFactory(project=ProjectFactory(code="SECRET-1", confidential=True))
    view = sv.saved_view_create(user=person, page=page, name="Theirs", filters=filters(secret))

    shown = web(person).get(sv.saved_view_url(view))

    assert shown.status_code in (200, 400)
    assert "SECRET-1" not in shown.content.decode()
    assert "SECRET-1" in web(secret.project.manager).get(sv.saved_view_url(view)).content.decode()
