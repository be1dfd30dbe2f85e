"""Search (handover.search, GET /api/v1/search/, the page /search/): what it finds, that it finds only what the
user may see, and that odd input is refused or taken literally, never a 500."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from handover.search import PER_KIND, search
from tests.factories import ChecklistItemFactory, HandoverFactory, ProjectFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db
API = "/api/v1/search/"


@pytest.fixture
def world(db):
    """A public CRM project with a handover and items; a confidential merger project; its manager; an outsider."""
    team = TeamFactory(name="Service desk")
    crm = HandoverFactory(project=ProjectFactory(code="CRM-2026", name="CRM roll-out", receiving_team=team))
    ChecklistItemFactory(handover=crm, title="Backup restore tested")
    ChecklistItemFactory(handover=crm, title="Uptime 100% of the_week, C:\\logs kept, O'Brien's \"runbook\"")
    ProjectFactory(code="XCRM-2026", name="Another CRM-2026 clone", receiving_team=team)
    secret = HandoverFactory(project=ProjectFactory(code="SECRET-1", name="Merger rehearsal", confidential=True))
    ChecklistItemFactory(handover=secret, title="Merger runbook signed")
    return {"crm": crm, "secret": secret, "insider": secret.project.manager, "outsider": UserFactory()}


def api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def found(response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.content
    return [(row["kind"], row["project_code"]) for row in response.json()["results"]]


def test_finds_a_project_by_code_then_its_handover_the_exact_code_first(world):
    response = api(world["outsider"]).get(API, {"q": "crm-2026"})

    assert found(response)[:3] == [("project", "CRM-2026"), ("project", "XCRM-2026"), ("handover", "CRM-2026")]
    first = response.json()["results"][0]
    assert set(first) == {"kind", "id", "label", "project_code", "url", "web_url"}
    assert first["label"] == "CRM-2026 CRM roll-out"
    assert first["url"].endswith(f"/api/v1/projects/{world['crm'].project_id}/")
    assert first["web_url"].endswith(f"/projects/{world['crm'].project_id}/")


def test_finds_projects_by_name_and_items_by_title(world):
    by_name = found(api(world["outsider"]).get(API, {"q": "roll-out"}))
    by_title = api(world["outsider"]).get(API, {"q": "restore"}).json()["results"]

    assert by_name == [("project", "CRM-2026"), ("handover", "CRM-2026")]
    assert [(row["kind"], row["label"]) for row in by_title] == [("item", "Backup restore tested")]
    assert by_title[0]["web_url"].endswith(f"/handovers/{world['crm'].pk}/#item-{by_title[0]['id']}")


@pytest.mark.parametrize("query", ["SECRET-1", "secret", "merger", "Merger runbook"])
def test_a_confidential_project_is_never_found_by_an_outsider(world, query):
    """GIVEN a confidential project, its handover and items WHEN an outsider searches for its code, name or item
    THEN nothing of it comes back, in the API or on the page; its manager finds it."""
    assert found(api(world["outsider"]).get(API, {"q": query})) == []
    page = Client()
    page.force_login(world["outsider"])
    body = page.get(reverse("handover:search"), {"q": query}).content.decode()
    assert 'data-testid="search-result"' not in body
    assert f"/projects/{world['secret'].project_id}/" not in body
    assert {code for _, code in found(api(world["insider"]).get(API, {"q": query}))} == {"SECRET-1"}


@pytest.mark.parametrize(
    ("query", "rule"),
    [("", "query_required"), ("   \t", "query_required"), ("a" * 101, "query_too_long"), ("a\x00b", "query_invalid")],
    ids=["empty", "whitespace", "too-long", "nul"],
)
def test_bad_queries_are_400_naming_q_in_the_api_and_on_the_page(world, query, rule):
    response = api(world["outsider"]).get(API, {"q": query})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == rule
    assert set(response.json()["error"]["fields"]) == {"q"}
    page = Client()
    page.force_login(world["outsider"])
    answer = page.get(reverse("handover:search"), {"q": query})
    assert answer.status_code == 400
    assert 'data-testid="field-error"' in answer.content.decode()


def test_a_missing_query_or_an_unknown_parameter_is_400_naming_it(world):
    assert api(world["outsider"]).get(API).json()["error"]["fields"].keys() == {"q"}
    assert api(world["outsider"]).get(API, {"q": "crm", "kind": "x"}).json()["error"]["fields"].keys() == {"kind"}
    page = Client()
    page.force_login(world["outsider"])
    assert page.get(reverse("handover:search")).status_code == 200  # the empty search form


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("%%%", []),  # a LIKE wildcard would match every row
        ("___", []),
        ("\\\\\\", []),
        ("''\"", []),
        ("100%", ["Uptime"]),
        ("the_week", ["Uptime"]),
        ("C:\\logs", ["Uptime"]),
        ("O'Brien's \"run", ["Uptime"]),
        ("%", []),  # short: an exact project code only
    ],
)
def test_odd_characters_are_taken_literally(world, query, expected):
    results = api(world["outsider"]).get(API, {"q": query}).json()["results"]

    assert [row["label"].split()[0] for row in results] == expected


def test_a_short_query_finds_an_exact_code_only(world):
    ProjectFactory(code="AB", name="AB testing")

    response = api(world["outsider"]).get(API, {"q": "ab"})

    assert response.json()["code_only"] is True
    assert found(response) == [("project", "AB")]


def test_results_are_bounded_per_kind_and_the_query_count_is_fixed(world, django_assert_num_queries):
    """GIVEN one, then many matching projects, handovers and items WHEN searching THEN three queries either way
    (one per kind), and at most PER_KIND results of each kind."""
    user = world["outsider"]
    ChecklistItemFactory(handover=HandoverFactory(project=ProjectFactory(code="BACKUP-X", name="Site")), title="Fan")
    with django_assert_num_queries(3):
        one = search(user, "backup")
    for n in range(PER_KIND + 5):
        handover = HandoverFactory(project=ProjectFactory(code=f"BACKUP-{n}", name="Backup site"))
        ChecklistItemFactory(handover=handover, title="Backup restore tested")

    with django_assert_num_queries(3):
        many = search(user, "backup")

    assert [r.kind for r in one.results] == ["project", "handover", "item"]
    kinds = [r.kind for r in many.results]
    assert kinds.count("project") == kinds.count("handover") == kinds.count("item") == PER_KIND
