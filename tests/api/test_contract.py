"""The API does what its schema says where a client could be surprised: methods, query values, text fields."""

import pytest
from rest_framework.test import APIClient

from .test_permissions import World

API = "/api/v1"


@pytest.fixture
def admin_client():
    w = World("admin")
    client = APIClient()
    client.force_authenticate(w.user("admin"))
    client.world = w
    return client


@pytest.mark.django_db
def test_an_undeclared_method_is_405_with_allow_before_if_match_is_looked_at(admin_client):
    """GIVEN an action that takes only POST WHEN it is called with DELETE and an If-Match THEN 405, not a 400 about
    If-Match, and Allow names the methods it takes."""
    w = admin_client.world
    response = admin_client.delete(f"{API}/handovers/{w.handover.pk}/submit/", HTTP_IF_MATCH='"1"')
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]
    put = admin_client.put(f"{API}/teams/{w.team.pk}/", {"name": "x"}, format="json", HTTP_IF_MATCH='"1"')
    assert put.status_code == 405
    assert "PATCH" in put["Allow"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("templates", {"kind": ""}, "kind"),
        ("templates", {"is_active": " "}, "is_active"),
        ("handovers", {"status": ""}, "status"),
        ("handovers", {"target_date_before": ""}, "target_date_before"),
        ("projects", {"manager": ""}, "manager"),
        ("projects", {"page": ""}, "page"),
        ("projects", {"page": "2x"}, "page"),
    ],
)
def test_an_empty_or_malformed_query_value_is_refused_naming_it(admin_client, path, params, field):
    response = admin_client.get(f"{API}/{path}/", params)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_search_and_ordering_may_be_empty(admin_client):
    assert admin_client.get(f"{API}/handovers/", {"search": "", "ordering": ""}).status_code == 200


@pytest.mark.django_db
def test_a_number_is_not_text(admin_client):
    w = admin_client.world
    response = admin_client.post(f"{API}/handovers/{w.handover.pk}/comments/", {"body": 5}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"body": ["Not a valid string."]}
