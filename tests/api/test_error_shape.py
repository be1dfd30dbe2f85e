"""Every response under /api/ is JSON in the one error shape: unknown routes, requests Django refuses before any view
runs, and server errors included. Outside /api/ the web UI keeps its HTML pages."""

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from config import api
from handover.api.views import MeView
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def assert_json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    error = response.json()["error"]
    assert set(error) == {"status", "code", "message", "fields"}
    assert error["status"] == status
    assert error["code"] == code
    assert error["message"]
    return error


@pytest.fixture
def signed_in():
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(UserFactory())
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope/",
        "/api/v1/projects/1/nope/",
        "/api/v1/projects/1/transition/extra/",
        "/api/v2/projects/",
        "/api/",
        "/api/nope",
        "/api/v1/%00/",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_an_unknown_endpoint_is_a_json_404(signed_in, path: str, method: str):
    """Also a POST with a session and no CSRF token: a route that does not exist is not a CSRF failure."""
    error = assert_json_error(getattr(signed_in, method)(path), 404, "not_found")
    assert "/api/schema/" in error["message"]


def test_an_unknown_endpoint_is_a_404_for_anonymous_callers_too():
    assert_json_error(APIClient().get("/api/v1/nope/"), 404, "not_found")


def test_a_path_without_its_trailing_slash_says_so():
    """Rather than a redirect (which would drop a POST's body), a 404 naming the right path."""
    client = APIClient()
    client.force_authenticate(UserFactory())
    error = assert_json_error(client.post("/api/v1/projects", {}, format="json"), 404, "not_found")
    assert "/api/v1/projects/" in error["message"]


def test_a_server_error_under_the_api_is_json(monkeypatch, caplog):
    def broken(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(MeView, "get", broken)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(UserFactory())
    with caplog.at_level("CRITICAL", logger="django.request"):
        error = assert_json_error(client.get("/api/v1/me/"), 500, "server_error")
    assert "boom" not in error["message"]  # nothing internal leaks


def test_a_request_django_refuses_before_any_view_is_a_json_400(caplog):
    """Too many query parameters is refused by Django itself (SuspiciousOperation)."""
    client = APIClient()
    client.force_authenticate(UserFactory())
    query = "&".join(f"p{n}=1" for n in range(1200))
    with caplog.at_level("CRITICAL", logger="django.security"):
        assert_json_error(client.get(f"/api/v1/projects/?{query}"), 400, "bad_request")


@pytest.mark.parametrize(
    ("handler", "args", "status"),
    [
        (api.handler400, (Exception(),), 400),
        (api.handler403, (Exception(),), 403),
        (api.handler404, (Exception(),), 404),
        (api.handler500, (), 500),
    ],
)
def test_outside_the_api_the_handlers_are_djangos_html_pages(handler, args, status):
    request = RequestFactory().get("/projects/")
    request.user = UserFactory()
    response = handler(request, *args)
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    api_response = handler(RequestFactory().get("/api/v1/projects/"), *args)
    assert api_response.status_code == status
    assert api_response["Content-Type"] == "application/json"
