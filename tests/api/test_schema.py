"""The OpenAPI schema is valid, free of generator warnings, and documents every action's request and errors."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

API = "/api/v1/"
ERROR_REF = "#/components/schemas/Error"
# POST actions that take no input: marking a notification read (a body with fields is refused, 400). Submitting
# and approving a waiver take nothing but, optionally, the version read.
NO_BODY = {"/api/v1/notifications/{id}/read/"}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict, *methods: str):
    for path, item in schema["paths"].items():
        for method in methods or METHODS:
            if method in item and path.startswith(API):
                yield path, method, item[method]


def _ref(content: dict) -> str | None:
    schema = content.get("application/json", {}).get("schema", {})
    return schema.get("$ref") or schema.get("items", {}).get("$ref")


def test_spectacular_validates_without_warnings(tmp_path):
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out), stdout=StringIO())
    assert out.read_text().startswith("openapi: 3")


def test_every_post_action_documents_its_request_body(schema):
    """A POST without a documented body must be one of the few actions that take none."""
    posts = list(_operations(schema, "post"))
    assert len(posts) > 20
    without_body = {path for path, _, op in posts if "requestBody" not in op}
    assert without_body == NO_BODY
    for path, _, op in posts:
        if path in NO_BODY:
            continue
        body = op["requestBody"]
        assert set(body["content"]) >= {"application/json"}, path
        ref = _ref(body["content"])
        assert ref, path
        assert ref.startswith("#/components/schemas/"), path
        component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert component.get("properties"), f"{path}: {ref} documents no fields"


def test_every_post_action_documents_its_errors(schema):
    """401/403 always; 404 when it acts on one object; 400 or 409 for refused input or moves; all in the one shape."""
    for path, _, op in _operations(schema, "post"):
        responses = set(op["responses"])
        assert responses & {"200", "201"}, path
        assert {"401", "403"} <= responses, f"{path}: {sorted(responses)}"
        assert responses & {"400", "409"}, f"{path}: {sorted(responses)}"
        if "{" in path:
            assert "404" in responses, f"{path}: {sorted(responses)}"
        for code in responses - {"200", "201", "414"}:  # 414 is gunicorn's own page (see below)
            assert _ref(op["responses"][code]["content"]) == ERROR_REF, f"{path} {code}"


def test_every_operation_documents_authentication_and_missing_objects(schema):
    for path, method, op in _operations(schema):
        responses = set(op["responses"])
        assert {"401", "403"} <= responses, f"{method.upper()} {path}: {sorted(responses)}"
        if re.search(r"\{\w+\}", path):
            assert "404" in responses, f"{method.upper()} {path}: {sorted(responses)}"
        assert op.get("security"), f"{method.upper()} {path} documents no authentication"


def test_every_list_documents_bad_parameters_and_missing_pages(schema):
    """Every list refuses a parameter it does not take or cannot parse (400); a page past the end is DRF's 404."""
    lists = 0
    for path, _, op in _operations(schema, "get"):
        query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        responses = set(op["responses"])
        if "page" in query:
            lists += 1
            assert {"400", "404"} <= responses, f"GET {path}: {sorted(responses)}"
            assert {"page", "page_size"} <= query
        elif query:
            assert "400" in responses, f"GET {path}: {sorted(responses)}"
    assert lists == 24


def test_page_size_and_ordering_document_what_is_accepted(schema):
    op = schema["paths"]["/api/v1/handovers/"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["page_size"]["schema"] == {"type": "integer", "minimum": 1}
    assert "100" in params["page_size"]["description"]
    ordering = params["ordering"]
    assert ordering["style"] == "form"
    assert ordering["explode"] is False
    assert {"target_date", "-target_date", "status"} <= set(ordering["schema"]["items"]["enum"])
    assert params["overdue"]["schema"] == {"type": "boolean"}
    assert {"stage", "team", "readiness_risk", "readiness_below", "has_open_stall"} <= set(params)


def test_search_is_documented_only_where_it_searches(schema):
    from django.urls import resolve

    for path, _, op in _operations(schema, "get"):
        if "search" not in {p["name"] for p in op.get("parameters", [])}:
            continue
        view = resolve(path.replace("{id}", "1")).func
        assert getattr(view.cls, "search_fields", None), path


def test_project_code_rule_is_in_the_schema(schema):
    """A generated create can only succeed if the schema says what a code looks like."""
    for name in ("ProjectWriteRequest", "PatchedProjectUpdateRequest"):
        code = schema["components"]["schemas"][name]["properties"]["code"]
        assert code["pattern"] == "^[A-Za-z0-9][A-Za-z0-9-]{1,29}$", code
        assert code["maxLength"] == 30


def test_a_webhook_is_created_with_a_url(schema):
    assert schema["components"]["schemas"]["WebhookCreateRequest"]["required"] == ["url"]
    assert "required" not in schema["components"]["schemas"]["PatchedWebhookUpdateRequest"]


def test_input_lists_document_their_bound(schema):
    components = schema["components"]["schemas"]
    assert components["AcceptWithConditionsRequest"]["properties"]["conditions"]["maxItems"] == 50
    assert components["ReturnRequest"]["properties"]["items"]["maxItems"] == 500
    assert components["ProjectWriteRequest"]["properties"]["members"]["maxItems"] == 500
    assert components["TeamWriteRequest"]["properties"]["members"]["maxItems"] == 500
    assert components["TemplateWriteRequest"]["properties"]["items"]["maxItems"] == 200


def test_objects_with_a_version_document_their_etag(schema):
    for path in ("/api/v1/projects/{id}/", "/api/v1/handovers/{id}/", "/api/v1/items/{id}/"):
        assert "ETag" in schema["paths"][path]["get"]["responses"]["200"]["headers"], path
        patch = schema["paths"][path]["patch"]
        assert "If-Match" in {p["name"] for p in patch["parameters"] if p["in"] == "header"}, path
        assert "412" in patch["responses"]
        assert "version" in _component(schema, patch["requestBody"])["properties"], path
    for path in ("/api/v1/projects/", "/api/v1/handovers/"):
        assert "ETag" in schema["paths"][path]["post"]["responses"]["201"]["headers"], path
    for path in ("/api/v1/teams/{id}/", "/api/v1/kpis/{id}/", "/api/v1/templates/{id}/"):
        patch = schema["paths"][path]["patch"]
        assert "412" not in patch["responses"], path
        assert "version" not in _component(schema, patch["requestBody"])["properties"], path


def _component(schema: dict, body: dict) -> dict:
    return schema["components"]["schemas"][_ref(body["content"]).rsplit("/", 1)[1]]


@pytest.mark.django_db
def test_the_docs_page_loads_nothing_from_another_host(client):
    """Swagger UI comes from drf-spectacular-sidecar's static files, not a CDN."""
    from django.contrib.staticfiles import finders

    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    references = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", html)
    assert references, html
    external = [ref for ref in references if re.match(r"^(https?:)?//", ref)]
    assert external == [], external
    for ref in references:
        if ref.startswith("/static/"):
            assert finders.find(ref.removeprefix("/static/")), ref


@pytest.mark.django_db
def test_the_browsable_api_renders_lists_objects_and_nested_lists():
    """The strict filters, ordering and pagination also serve the HTML forms of the browsable API."""
    from rest_framework.test import APIClient

    from .test_permissions import World

    w = World("admin")
    client = APIClient()
    client.force_login(w.user("admin"))
    for path in (
        "/api/v1/handovers/",
        "/api/v1/projects/?ordering=-code",
        f"/api/v1/handovers/{w.handover.pk}/",
        f"/api/v1/handovers/{w.handover.pk}/items/",
        f"/api/v1/items/{w.item.pk}/",
    ):
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, (path, response.content[:300])
        assert response["Content-Type"].startswith("text/html"), path
    refused = client.get("/api/v1/handovers/?stauts=submitted", HTTP_ACCEPT="text/html")
    assert refused.status_code == 400


def test_every_operation_documents_throttling_and_the_servers_limits(schema):
    """429 with Retry-After, 406 for an Accept it cannot satisfy, 415 where there is a body, gunicorn's 414."""
    for path, method, op in _operations(schema):
        responses = op["responses"]
        assert "Retry-After" in responses["429"]["headers"], f"{method} {path}"
        assert _ref(responses["406"]["content"]) == ERROR_REF, f"{method} {path}"
        assert "text/html" in responses["414"]["content"], f"{method} {path}"
        assert ("415" in responses) == ("requestBody" in op), f"{method} {path}"
        if "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", [])):
            assert "400" in responses, f"{method} {path}"


def test_request_bodies_refuse_unknown_fields_and_nul_characters(schema):
    """What StrictSerializerMixin and DRF's CharField refuse, the schema forbids: unknown fields, NUL, blank text."""
    requests = {name: c for name, c in schema["components"]["schemas"].items() if name.endswith("Request")}
    assert len(requests) > 30
    for name, component in requests.items():
        assert component["additionalProperties"] is False, name
        for field_name, prop in component["properties"].items():
            if prop.get("type") == "string" and "enum" not in prop and "format" not in prop:
                assert re.search(r"\^\[\^\\x00\]|A-Za-z0-9|a-zA-Z0-9|\\d", prop["pattern"]), (name, field_name)
    reason = schema["components"]["schemas"]["ReasonRequest"]["properties"]["reason"]
    assert not re.match(reason["pattern"], " \t")
    assert not re.match(reason["pattern"], "a\x00b")
    assert re.match(reason["pattern"], " Vendor left ")
    target = schema["components"]["schemas"]["KpiWriteRequest"]["properties"]["target"]
    assert not re.match(target["pattern"], "")
    assert re.match(target["pattern"], "-12.5")


def test_nested_objects_of_nullable_relations_are_nullable():
    """met_by, receiving_team, a stage...: what can be null in the database is null in the schema."""
    import importlib
    import inspect

    from rest_framework import serializers

    missing = []
    for module_name in ("projects.api.serializers", "operations.api.serializers", "handover.api.serializers"):
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, serializers.ModelSerializer) or cls.__module__ != module_name:
                continue
            for name, field in cls().fields.items():
                if not isinstance(field, serializers.Serializer | serializers.RelatedField):
                    continue
                model_field = next((f for f in cls.Meta.model._meta.fields if f.name == field.source), None)
                if model_field is not None and model_field.null and not field.allow_null:
                    missing.append(f"{cls.__name__}.{name}")
    assert missing == []
