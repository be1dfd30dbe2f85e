"""The OpenAPI schema is valid, free of generator warnings, and documents every action's request and errors."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

API = "/api/v1/"
ERROR_REF = "#/components/schemas/Error"
# POST actions that take no input: the move is the whole request (If-Match may still carry the version).
NO_BODY = {
    "/api/v1/handovers/{id}/submit/",
    "/api/v1/items/{id}/approve-waiver/",
    "/api/v1/notifications/{id}/read/",
}
# POST actions that cannot refuse once the object is found: marking a notification read is idempotent.
NEVER_REFUSED = {"/api/v1/notifications/{id}/read/"}
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
        if path not in NEVER_REFUSED:
            assert responses & {"400", "409"}, f"{path}: {sorted(responses)}"
        if "{" in path:
            assert "404" in responses, f"{path}: {sorted(responses)}"
        for code in responses - {"200", "201"}:
            assert _ref(op["responses"][code]["content"]) == ERROR_REF, f"{path} {code}"


def test_every_operation_documents_authentication_and_missing_objects(schema):
    for path, method, op in _operations(schema):
        responses = set(op["responses"])
        assert {"401", "403"} <= responses, f"{method.upper()} {path}: {sorted(responses)}"
        if re.search(r"\{\w+\}", path):
            assert "404" in responses, f"{method.upper()} {path}: {sorted(responses)}"
        assert op.get("security"), f"{method.upper()} {path} documents no authentication"


def test_every_paginated_or_filtered_list_documents_bad_filters_and_missing_pages(schema):
    """A filter value that does not parse is a 400; a page past the end is DRF's 404."""
    for path, _, op in _operations(schema, "get"):
        query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        responses = set(op["responses"])
        if "page" in query:
            assert "404" in responses, f"GET {path}: {sorted(responses)}"
        if query - {"page", "page_size", "search", "ordering"}:
            assert "400" in responses, f"GET {path}: {sorted(responses)}"
