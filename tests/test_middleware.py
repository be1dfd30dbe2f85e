"""The headers every answer carries (Content-Security-Policy, Permissions-Policy, X-Request-ID), the reference a
server error shows and logs, and templates that need nothing the policy forbids. In a browser:
tests/browser/test_csp.py."""

import re
from pathlib import Path
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from handover.api.views import MeView

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [ROOT / "config" / "templates", *ROOT.glob("*/templates")]


def policy(response) -> dict[str, list[str]]:
    directives = [part.strip().split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {name: values for name, *values in directives}


def assert_strict(response) -> None:
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    header = response["Content-Security-Policy"]
    assert "unsafe" not in header
    assert "http" not in header  # no other origin
    assert "nonce-" not in header  # nothing inline, so no nonce either
    features = dict(part.strip().split("=", 1) for part in response["Permissions-Policy"].split(","))
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert features[feature] == "()"
    assert re.fullmatch(r"[0-9a-f]{12}", response["X-Request-ID"])


@pytest.mark.django_db
def test_a_page_and_an_api_answer_carry_the_content_security_and_permissions_policies(client, manager):
    client.force_login(manager)

    page = client.get(reverse("home"))
    api = client.get("/api/v1/me/", HTTP_ACCEPT="application/json")
    refused = Client().get("/api/v1/me/", HTTP_ACCEPT="application/json")

    assert page.status_code == 200
    assert api.status_code == 200
    assert refused.status_code == 401
    for response in (page, api, refused):
        assert_strict(response)
    assert page["X-Request-ID"] != api["X-Request-ID"]


@pytest.mark.django_db
def test_only_the_api_docs_may_load_data_images_and_they_run_no_inline_script(admin_client):
    page = admin_client.get("/api/docs/")
    script = admin_client.get("/api/docs/?script=")

    assert policy(page)["img-src"] == ["'self'", "data:"]
    assert policy(page)["script-src"] == ["'self'"]
    html = page.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert "<style" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html  # ours, not a CDN
    assert '<script src="/api/docs/?script="></script>' in html
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in script.content


def test_no_template_needs_inline_script_or_style():
    """What the policy would block never reaches a page: no <style>, no style="...", no inline <script> (a JSON
    data block excepted), no on...= handler, no hx-on (htmx evaluates no code: allowEval is off)."""
    found = []
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html"):
            text = re.sub(r"\{#.*?#\}", "", path.read_text())  # comments may name what they avoid
            for pattern in (
                r"<style",
                r"\sstyle=",
                r"<script(?![^>]*\b(src|type=\"application/json\")=?)[^>]*>",
                r"\son[a-z]+=",
                r"hx-on",
                r"javascript:",
            ):
                if re.search(pattern, text):
                    found.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert found == []


@pytest.mark.django_db
def test_a_server_error_page_shows_the_reference_its_log_line_carries(viewer, caplog):
    """GIVEN a page that crashes WHEN it is opened THEN the 500 page shows the request's reference, which is its
    X-Request-ID and the request_id of Django's log record of the traceback."""
    client = Client(raise_request_exception=False)
    client.force_login(viewer)

    with mock.patch("handover.views._stage_chart_of", side_effect=RuntimeError("boom")):
        response = client.get(reverse("home"))

    reference = response["X-Request-ID"]
    html = response.content.decode()
    assert response.status_code == 500
    assert f'<code class="reference" data-testid="error-reference">{reference}</code>' in html
    assert "boom" not in html
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.request_id == reference
    assert record.exc_info is not None
    assert_strict(response)


@pytest.mark.django_db
def test_an_api_server_error_names_its_reference_in_the_error_shape(viewer, caplog):
    client = Client(raise_request_exception=False)
    client.force_login(viewer)

    with mock.patch.object(MeView, "get", side_effect=RuntimeError("boom")):
        response = client.get("/api/v1/me/", HTTP_ACCEPT="application/json")

    reference = response["X-Request-ID"]
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert response.json()["error"]["message"].endswith(f"recorded under reference {reference}.")
    assert [r.request_id for r in caplog.records if r.name == "django.request"] == [reference]
