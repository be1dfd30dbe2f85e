"""Bad input: every write endpoint refuses it with a 4xx in the one error shape, naming the field, and writes nothing.

The endpoints, their valid bodies and the states that let them succeed come from the permission matrix
(``tests/api/test_permissions.py``); each case here breaks one thing in an otherwise valid call by a caller who
holds the role, so the refusal can only be about the input. "Nothing written" is checked on a snapshot of every
domain table, taken before and after the call.
"""

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from handover.choices import HandoverStatus, ItemStatus, Risk, Side
from handover.models import (
    Activity,
    AdminEvent,
    ApiToken,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    Event,
    Evidence,
    Handover,
    Notification,
    StallFlag,
    TemplateItem,
    WebhookDelivery,
    WebhookSubscription,
)
from handover.readiness import recount
from operations.models import Kpi, KpiReading, OperationsEvent, OperationsTeam, Service
from projects.choices import Stage
from projects.models import Project, ProjectEvent
from tests.conftest import table_fingerprints

from .test_permissions import (
    API,
    CASES,
    Case,
    World,
    _quiet_refusals,  # noqa: F401 (autouse fixture)
)

pytestmark = pytest.mark.django_db
User = get_user_model()

CASE = {case.name: case for case in CASES}
WRITES = [case for case in CASES if case.method in ("post", "patch") and "(" not in case.name]
# Endpoints that take the version the client read (If-Match, or ``version`` in the body); every other write
# refuses both (see test_writes_without_versions_refuse_if_match_and_version).
VERSIONED = [
    "projects partial_update",
    "projects transition",
    "handovers partial_update",
    "handovers submit",
    "handovers accept",
    "handovers accept-with-conditions",
    "handovers return",
    "handovers start-hypercare",
    "handovers complete",
    "handovers cancel",
    "items partial_update",
    "items complete",
    "items verify",
    "items send-back",
    "items waive",
    "items approve-waiver",
    "items not-applicable",
    "items reopen",
]
MISSING = object()  # in a change: leave the field out
HUGE_ID = 10**30
UNKNOWN_ID = 999_999
TOO_LONG = "x" * 100_001

TABLES = (
    AdminEvent,
    Project,
    ProjectEvent,
    Handover,
    Activity,
    ChecklistItem,
    Comment,
    Evidence,
    Decision,
    Condition,
    ChecklistTemplate,
    TemplateItem,
    ApiToken,
    OperationsTeam,
    OperationsEvent,
    Service,
    Kpi,
    KpiReading,
    StallFlag,
    Notification,
    Event,
    WebhookSubscription,
    WebhookDelivery,
)


def snapshot() -> dict:
    """Every domain table's row count and a digest of all its rows, in one query (this runs twice per case)."""
    return table_fingerprints(TABLES)


def counts() -> dict:
    return {model.__name__: model.objects.count() for model in (Project, Handover, ProjectEvent, Activity)}


def assert_refused(response, field: str | None, status: int = 400, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:600]
    error = response.json()["error"]
    assert set(error) == {"status", "code", "message", "fields"}
    assert error["status"] == status
    assert error["message"]
    if code:
        assert error["code"] == code, error
    if field is not None:
        assert field in error["fields"], error
        assert all(isinstance(m, str) and m for m in error["fields"][field]), error
    return error


def _days(n: int) -> str:
    return (timezone.localdate() + dt.timedelta(days=n)).isoformat()


# ----------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Bad:
    """One thing wrong in an otherwise valid call of ``case``; ``field`` is what ``fields`` must name."""

    case: str
    label: str
    change: dict | Callable[[World], dict]
    field: str | None
    status: int = 400

    def __str__(self) -> str:
        return f"{self.case}: {self.label}"


# Text fields of each write endpoint: each gets a NUL character and an oversized string.
TEXT_FIELDS = {
    "projects create": ("code", "name", "description", "sponsor"),
    "projects partial_update": ("code", "name", "description", "sponsor"),
    "projects transition": ("reason",),
    "teams create": ("name", "description"),
    "teams partial_update": ("name", "description"),
    "services create": ("name", "description"),
    "services partial_update": ("name", "description"),
    "services kpis POST": ("name", "unit"),
    "kpis partial_update": ("name", "unit"),
    "kpis readings POST": ("note",),
    "templates create": ("name", "description"),
    "templates partial_update": ("description",),
    "handovers create": ("deliverables",),
    "handovers partial_update": ("deliverables",),
    "handovers accept": ("note",),
    "handovers return": ("reason",),
    "handovers start-hypercare": ("exit_criteria",),
    "handovers complete": ("note",),
    "handovers cancel": ("reason",),
    "handovers items POST": ("title", "guidance"),
    "handovers comments POST": ("body",),
    "items partial_update": ("title", "guidance"),
    "items verify": ("note",),
    "items send-back": ("reason",),
    "items waive": ("justification",),
    "items not-applicable": ("reason",),
    "items reopen": ("reason",),
    "items comments POST": ("body",),
    "items evidence POST": ("url", "text"),
    "conditions met": ("note",),
    "tokens create": ("name",),
    "saved-views create": ("name",),
    "stalls acknowledge": ("note",),
    "stalls snooze": ("reason",),
    "webhooks create": ("description",),
    "webhooks partial_update": ("description",),
}


def _condition(**change) -> Callable[[World], dict]:
    def build(w: World) -> dict:
        condition = {"text": "Tune alerts", "owner": w.users["ops_member"].pk, "due_date": _days(14), **change}
        return {"conditions": [condition]}

    return build


def _template_item(**change) -> dict:
    return {"items": [{"key": "runbook", "title": "Runbook", "risk": "failure", **change}]}


SPECIFIC = [
    # projects
    Bad("projects create", "code not a string", {"code": ["CRM"]}, "code"),
    Bad("projects create", "code badly formed", {"code": "crm 2026!"}, "code"),
    Bad("projects create", "code missing", {"code": MISSING}, "code"),
    Bad("projects create", "name null", {"name": None}, "name"),
    Bad("projects create", "name an object", {"name": {"en": "CRM"}}, "name"),
    Bad("projects create", "name a boolean", {"name": True}, "name"),
    Bad("projects create", "manager unknown", {"manager": UNKNOWN_ID}, "manager"),
    Bad("projects create", "manager beyond any id", {"manager": HUGE_ID}, "manager"),
    Bad("projects create", "manager a boolean", {"manager": True}, "manager"),
    Bad("projects create", "manager not an id", {"manager": "alice"}, "manager"),
    Bad("projects create", "members not a list", {"members": "alice"}, "members"),
    Bad("projects create", "members unknown", {"members": [UNKNOWN_ID]}, "members"),
    Bad("projects create", "members with null", {"members": [None]}, "members"),
    Bad("projects create", "members more than 500", {"members": list(range(1, 502))}, "members"),
    Bad("projects create", "members a string of digits", {"members": ["1e3"]}, "members"),
    Bad("projects create", "receiving_team unknown", {"receiving_team": UNKNOWN_ID}, "receiving_team"),
    Bad("projects create", "receiving_team a list", {"receiving_team": [1]}, "receiving_team"),
    Bad("projects create", "planned_start no such day", {"planned_start": "2026-02-30"}, "planned_start"),
    Bad("projects create", "planned_handover a number", {"planned_handover": 20260101}, "planned_handover"),
    Bad("projects create", "confidential not a boolean", {"confidential": "maybe"}, "confidential"),
    Bad("projects create", "confidential null", {"confidential": None}, "confidential"),
    Bad("projects create", "stage is read-only", {"stage": Stage.CLOSED}, "stage"),
    Bad("projects create", "id is read-only", {"id": 1}, "id"),
    Bad("projects create", "actual_handover is read-only", {"actual_handover": _days(0)}, "actual_handover"),
    Bad("projects create", "has_handover_plan is read-only", {"has_handover_plan": True}, "has_handover_plan"),
    Bad("projects partial_update", "stage is read-only", {"stage": Stage.CLOSED}, "stage"),
    Bad("projects partial_update", "id is read-only", {"id": 7}, "id"),
    Bad("projects partial_update", "manager unknown", {"manager": UNKNOWN_ID}, "manager"),
    Bad("projects partial_update", "receiving_team not an id", {"receiving_team": "desk"}, "receiving_team"),
    Bad("projects partial_update", "planned_handover not a date", {"planned_handover": "soon"}, "planned_handover"),
    Bad("projects partial_update", "members unknown", {"members": [UNKNOWN_ID]}, "members"),
    Bad(
        "projects partial_update",
        "receiving_team a fraction",
        lambda w: {"receiving_team": w.team.pk + 0.5},
        "receiving_team",
    ),
    Bad("projects create", "manager a fraction", lambda w: {"manager": w.users["manager"].pk + 0.9}, "manager"),
    Bad("projects partial_update", "name blank", {"name": "  "}, "name"),
    Bad("projects transition", "to not a stage", {"to": "nowhere"}, "to"),
    Bad("projects transition", "to missing", {"to": MISSING}, "to"),
    Bad("projects transition", "to a number", {"to": 3}, "to"),
    Bad("projects transition", "to skips a stage", {"to": Stage.CLOSED}, "to", status=409),
    Bad("projects transition", "back without a reason", {"to": Stage.CANCELLED}, "reason"),
    # teams, services, KPIs
    Bad("teams create", "name blank", {"name": ""}, "name"),
    Bad("teams create", "lead unknown", {"lead": UNKNOWN_ID}, "lead"),
    Bad("teams create", "members with a boolean", {"members": [True]}, "members"),
    Bad("teams create", "members more than 500", {"members": list(range(1, 502))}, "members"),
    Bad("teams create", "threshold negative", {"idle_days": -1}, "idle_days"),
    Bad("teams create", "threshold not a number", {"idle_days": "often"}, "idle_days"),
    Bad("teams create", "threshold beyond any integer", {"escalation_days": HUGE_ID}, "escalation_days"),
    Bad("teams partial_update", "lead not an id", {"lead": "boss"}, "lead"),
    Bad("teams partial_update", "id is read-only", {"id": 3}, "id"),
    Bad("services create", "team unknown", {"team": UNKNOWN_ID}, "team"),
    Bad("services create", "team null", {"team": None}, "team"),
    Bad("services create", "team a fraction", lambda w: {"team": w.team.pk + 0.5}, "team"),
    Bad("services create", "team a float", lambda w: {"team": float(w.team.pk)}, "team"),
    Bad("services create", "name blank", {"name": ""}, "name"),
    Bad("services create", "is_active not settable on create", {"is_active": False}, "is_active"),
    Bad("services partial_update", "is_active not a boolean", {"is_active": "sometimes"}, "is_active"),
    Bad("services partial_update", "team cannot move", lambda w: {"team": w.team.pk}, "team"),
    Bad("services kpis POST", "target not a number", {"target": "lots"}, "target"),
    Bad("services kpis POST", "target NaN", {"target": "NaN"}, "target"),
    Bad("services kpis POST", "target too large", {"target": "1e20"}, "target"),
    Bad("services kpis POST", "target missing", {"target": MISSING}, "target"),
    Bad("services kpis POST", "direction unknown", {"direction": "sideways"}, "direction"),
    Bad("services kpis POST", "review_date not a date", {"review_date": "next spring"}, "review_date"),
    Bad("services kpis POST", "service is read-only", {"service": 1}, "service"),
    Bad("services kpis POST", "latest_value is read-only", {"latest_value": "5"}, "latest_value"),
    Bad("kpis partial_update", "baseline not a number", {"baseline": [1]}, "baseline"),
    Bad("kpis partial_update", "target infinite", {"target": "Infinity"}, "target"),
    Bad("kpis partial_update", "id is read-only", {"id": 2}, "id"),
    Bad("kpis readings POST", "value not a number", {"value": "high"}, "value"),
    Bad("kpis readings POST", "value null", {"value": None}, "value"),
    Bad("kpis readings POST", "value too large", {"value": 1e300}, "value"),
    Bad("kpis readings POST", "value a JSON number", {"value": 42}, "value"),
    Bad("services kpis POST", "target a JSON number", {"target": 80}, "target"),
    Bad("kpis readings POST", "measured_at not a time", {"measured_at": "yesterday"}, "measured_at"),
    Bad(
        "kpis readings POST",
        "measured_at in the future",
        {"measured_at": (timezone.now() + dt.timedelta(days=2)).isoformat()},
        "measured_at",
    ),
    Bad("kpis readings POST", "recorded_by is read-only", {"recorded_by": 1}, "recorded_by"),
    # templates
    Bad("templates create", "kind unknown", {"kind": "bakery"}, "kind"),
    Bad("templates create", "items empty", {"items": []}, "items"),
    Bad(
        "templates create",
        "items more than 200",
        {"items": [{"key": f"k{n}", "title": "T", "risk": "failure"} for n in range(201)]},
        "items",
    ),
    Bad("templates create", "items not a list", {"items": "runbook"}, "items"),
    Bad("templates create", "item key not a slug", _template_item(key="run book!"), "items[0].key"),
    Bad("templates create", "item risk unknown", _template_item(risk="meteor"), "items[0].risk"),
    Bad("templates create", "item title with NUL", _template_item(title="a\x00b"), "items[0].title"),
    Bad("templates create", "item title oversized", _template_item(title=TOO_LONG), "items[0].title"),
    Bad("templates create", "item field unknown", _template_item(colour="red"), "items[0].colour"),
    Bad(
        "templates create",
        "item keys repeated",
        {"items": [{"key": "k", "title": "A", "risk": "failure"}, {"key": "k", "title": "B", "risk": "failure"}]},
        "items",
    ),
    Bad("templates create", "is_active not settable on create", {"is_active": False}, "is_active"),
    Bad("templates partial_update", "is_active not a boolean", {"is_active": "no way"}, "is_active"),
    Bad("templates partial_update", "name is fixed", {"name": "Renamed"}, "name"),
    Bad("templates partial_update", "items empty", {"items": []}, "items"),
    # handovers
    Bad("handovers create", "project unknown", {"project": UNKNOWN_ID}, "project"),
    Bad("handovers create", "project beyond any id", {"project": HUGE_ID}, "project"),
    Bad("handovers create", "project not an id", {"project": "CRM-2026"}, "project"),
    Bad("handovers create", "project a fraction", lambda w: {"project": w.project.pk + 0.5}, "project"),
    Bad("handovers create", "template a boolean", {"template": True}, "template"),
    Bad("handovers create", "project missing", {"project": MISSING}, "project"),
    Bad("handovers create", "template unknown", {"template": UNKNOWN_ID}, "template"),
    Bad("handovers create", "operations_owner unknown", {"operations_owner": UNKNOWN_ID}, "operations_owner"),
    Bad(
        "handovers create",
        "operations_owner not in the team",
        lambda w: {"operations_owner": w.users["viewer"].pk},
        "operations_owner",
    ),
    Bad("handovers create", "target_date not a date", {"target_date": "soon"}, "target_date"),
    Bad("handovers create", "service unknown", {"service": UNKNOWN_ID}, "service"),
    Bad("handovers create", "receiving_team unknown", {"receiving_team": UNKNOWN_ID}, "receiving_team"),
    Bad("handovers create", "status is read-only", {"status": HandoverStatus.ACCEPTED}, "status"),
    Bad("handovers create", "id is read-only", {"id": 1}, "id"),
    Bad("handovers partial_update", "status is read-only", {"status": HandoverStatus.ACCEPTED}, "status"),
    Bad("handovers partial_update", "id is read-only", {"id": 1}, "id"),
    Bad("handovers partial_update", "project is fixed", {"project": 1}, "project"),
    Bad("handovers partial_update", "readiness is read-only", {"readiness": {}}, "readiness"),
    Bad("handovers partial_update", "target_date not a date", {"target_date": "2026-13-01"}, "target_date"),
    Bad("handovers partial_update", "service unknown", {"service": UNKNOWN_ID}, "service"),
    Bad("handovers partial_update", "service a fraction", lambda w: {"service": w.service.pk + 0.7}, "service"),
    Bad(
        "handovers partial_update",
        "operations_owner a fraction",
        lambda w: {"operations_owner": w.users["owner"].pk + 0.9},
        "operations_owner",
    ),
    Bad(
        "handovers partial_update",
        "operations_owner not in the team",
        lambda w: {"operations_owner": w.users["viewer"].pk},
        "operations_owner",
    ),
    Bad("handovers accept-with-conditions", "conditions empty", {"conditions": []}, "conditions"),
    Bad(
        "handovers accept-with-conditions",
        "conditions more than 50",
        lambda w: {"conditions": _condition()(w)["conditions"] * 51},
        "conditions",
    ),
    Bad("handovers accept-with-conditions", "conditions not a list", {"conditions": "tune"}, "conditions"),
    Bad("handovers accept-with-conditions", "condition text NUL", _condition(text="a\x00b"), "conditions[0].text"),
    Bad(
        "handovers accept-with-conditions", "condition text oversized", _condition(text=TOO_LONG), "conditions[0].text"
    ),
    Bad("handovers accept-with-conditions", "condition text blank", _condition(text=" "), "conditions[0].text"),
    Bad(
        "handovers accept-with-conditions",
        "condition owner unknown",
        _condition(owner=UNKNOWN_ID),
        "conditions[0].owner",
    ),
    Bad(
        "handovers accept-with-conditions",
        "condition due not a date",
        _condition(due_date="x"),
        "conditions[0].due_date",
    ),
    Bad(
        "handovers accept-with-conditions",
        "condition due in the past",
        _condition(due_date="2020-01-01"),
        "conditions[0].due_date",
    ),
    Bad(
        "handovers accept-with-conditions", "condition field unknown", _condition(colour="red"), "conditions[0].colour"
    ),
    Bad("handovers return", "reason missing", {"reason": MISSING}, "reason"),
    Bad("handovers return", "reason blank", {"reason": "   "}, "reason"),
    Bad("handovers return", "items not a list", {"items": "all"}, "items"),
    Bad("handovers return", "item not an id", {"items": ["first"]}, "items[0]"),
    Bad("handovers return", "item beyond any id", {"items": [HUGE_ID]}, "items[0]"),
    Bad("handovers return", "item not on this checklist", {"items": [UNKNOWN_ID]}, "items"),
    Bad("handovers return", "items more than 500", {"items": list(range(1, 502))}, "items"),
    Bad("handovers start-hypercare", "ends_on not a date", {"ends_on": "later"}, "ends_on"),
    Bad("handovers start-hypercare", "ends_on in the past", {"ends_on": "2020-01-01"}, "ends_on"),
    Bad("handovers start-hypercare", "exit_criteria missing", {"exit_criteria": MISSING}, "exit_criteria"),
    Bad("handovers cancel", "reason blank", {"reason": " "}, "reason"),
    Bad("handovers items POST", "risk unknown", {"risk": "meteor"}, "risk"),
    Bad("handovers items POST", "side unknown", {"side": "both"}, "side"),
    Bad("handovers items POST", "mandatory not a boolean", {"mandatory": "perhaps"}, "mandatory"),
    Bad("handovers items POST", "assignee unknown", {"assignee": UNKNOWN_ID}, "assignee"),
    Bad("handovers items POST", "due_date not a date", {"due_date": "friday"}, "due_date"),
    Bad("handovers items POST", "status is read-only", {"status": ItemStatus.VERIFIED}, "status"),
    Bad("handovers items POST", "position is read-only", {"position": 1}, "position"),
    Bad("handovers comments POST", "body blank", {"body": ""}, "body"),
    Bad("handovers comments POST", "body a list", {"body": ["hi"]}, "body"),
    # items
    Bad("items partial_update", "status is read-only", {"status": ItemStatus.VERIFIED}, "status"),
    Bad("items partial_update", "id is read-only", {"id": 1}, "id"),
    Bad("items partial_update", "handover is fixed", {"handover": 1}, "handover"),
    Bad("items partial_update", "risk unknown", {"risk": "meteor"}, "risk"),
    Bad("items partial_update", "due_date not a date", {"due_date": "friday"}, "due_date"),
    Bad("items partial_update", "assignee unknown", {"assignee": UNKNOWN_ID}, "assignee"),
    Bad(
        "items partial_update",
        "assignee takes no part",
        lambda w: {"assignee": w.users["viewer"].pk},
        "assignee",
    ),
    Bad("items complete", "evidence not an object", {"evidence": "see wiki"}, "evidence"),
    Bad("items complete", "evidence empty", {"evidence": {}}, "evidence.url"),
    Bad("items complete", "evidence missing", {"evidence": MISSING}, "evidence"),
    Bad("items complete", "evidence url not a url", {"evidence": {"url": "wiki/runbook"}}, "evidence.url"),
    Bad("items complete", "evidence text NUL", {"evidence": {"text": "a\x00b"}}, "evidence.text"),
    Bad("items complete", "evidence text oversized", {"evidence": {"text": TOO_LONG}}, "evidence.text"),
    Bad("items complete", "evidence field unknown", {"evidence": {"file": "x.pdf"}}, "evidence.file"),
    Bad("items complete", "status is read-only", {"status": ItemStatus.DONE}, "status"),
    Bad("items send-back", "reason missing", {"reason": MISSING}, "reason"),
    Bad("items waive", "justification blank", {"justification": "  "}, "justification"),
    Bad("items not-applicable", "reason missing", {"reason": MISSING}, "reason"),
    Bad("items evidence POST", "neither url nor text", {"url": MISSING}, "url"),
    Bad("items evidence POST", "url not a url", {"url": "ftp//broken"}, "url"),
    Bad("items comments POST", "body missing", {"body": MISSING}, "body"),
    # conditions, tokens
    Bad("conditions met", "status is read-only", {"status": "met"}, "status"),
    Bad("tokens create", "read_only not a boolean", {"read_only": "sometimes"}, "read_only"),
    Bad("tokens create", "expires_at not a time", {"expires_at": "tomorrow"}, "expires_at"),
    Bad("tokens create", "expires_at in the past", {"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    Bad("tokens create", "user unknown", {"user": UNKNOWN_ID}, "user"),
    Bad("tokens create", "prefix is read-only", {"prefix": "hov_"}, "prefix"),
    Bad("tokens create", "name missing", {"name": MISSING}, "name"),
    # saved views
    Bad("saved-views create", "name missing", {"name": MISSING}, "name"),
    Bad("saved-views create", "page unknown", {"page": "kanban"}, "page"),
    Bad("saved-views create", "filters not an object", {"filters": ["overdue"]}, "filters"),
    Bad("saved-views create", "filter unknown", {"filters": {"colour": "red"}}, "filters.colour"),
    # stall flags, notifications, webhooks
    Bad("stalls acknowledge", "note missing", {"note": MISSING}, "note"),
    Bad("stalls acknowledge", "note blank", {"note": " "}, "note"),
    Bad("stalls snooze", "until not a time", {"until": "later"}, "until"),
    Bad("stalls snooze", "until in the past", {"until": "2020-01-01T00:00:00Z"}, "until"),
    Bad(
        "stalls snooze",
        "until too far",
        {"until": (timezone.now() + dt.timedelta(days=400)).isoformat()},
        "until",
    ),
    Bad("stalls snooze", "reason missing", {"reason": MISSING}, "reason"),
    Bad(
        "stalls snooze", "acknowledged_at is read-only", {"acknowledged_at": "2020-01-01T00:00:00Z"}, "acknowledged_at"
    ),
    Bad("notifications read-all", "ids not a list", {"ids": "all"}, "ids"),
    Bad("notifications read-all", "id not an integer", {"ids": ["first"]}, "ids[0]"),
    Bad("notifications read-all", "id beyond any id", {"ids": [HUGE_ID]}, "ids[0]"),
    Bad("webhooks create", "url missing", {"url": MISSING}, "url"),
    Bad("webhooks create", "url not a url", {"url": "hooks.example.com"}, "url"),
    Bad("webhooks create", "url not http", {"url": "ftp://hooks.example.com/x"}, "url"),
    Bad("webhooks create", "url with NUL", {"url": "https://hooks.example.com/\x00"}, "url"),
    Bad("webhooks create", "url oversized", {"url": "https://hooks.example.com/" + TOO_LONG}, "url"),
    Bad("webhooks create", "event unknown", {"events": ["handover.exploded"]}, "events[0]"),
    Bad("webhooks create", "events not a list", {"events": "all"}, "events"),
    Bad("webhooks create", "secret is read-only", {"secret": "whsec_mine"}, "secret"),
    Bad("webhooks create", "is_active not a boolean", {"is_active": "paused"}, "is_active"),
    Bad("webhooks partial_update", "url not http", {"url": "javascript:alert(1)"}, "url"),
    Bad("webhooks partial_update", "event unknown", {"events": ["nope"]}, "events[0]"),
    Bad("webhooks partial_update", "owner is read-only", {"owner": 1}, "owner"),
]


def _generated() -> list[Bad]:
    bad = []
    for case in WRITES:
        bad.append(Bad(case.name, "unknown field", {"colour": "red"}, "colour"))
        for name in TEXT_FIELDS.get(case.name, ()):
            bad.append(Bad(case.name, f"{name} with NUL", {name: "run\x00book"}, name))
            bad.append(Bad(case.name, f"{name} oversized", {name: TOO_LONG}, name))
    for name in VERSIONED:
        bad.append(Bad(name, "version a string", {"version": "7"}, "version"))
        bad.append(Bad(name, "version a boolean", {"version": True}, "version"))
    return bad


BAD = _generated() + SPECIFIC


def _body(case: Case, w: World, change) -> dict:
    body = dict(case.body(w)) if case.body else {}
    for name, value in (change(w) if callable(change) else change).items():
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def _prepare(case: Case, role: str = "admin") -> tuple[World, APIClient, str]:
    w = World(role)
    if case.setup:
        case.setup(w)
    path = case.path(w)
    client = APIClient()
    client.force_authenticate(w.user(role))  # who is signed in is not the point here; test_permissions covers it
    return w, client, path


def _admin_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create(username="admin", is_staff=True))
    return client


# ---------------------------------------------------------------------------------------------------- tests


NO_INPUT = {"handovers submit", "items approve-waiver", "notifications read"}


def test_every_write_endpoint_has_bad_input_cases():
    """Every write endpoint that takes input has cases of its own, beyond the unknown field every one gets."""
    writes = {case.name for case in WRITES}
    specific = {b.case for b in SPECIFIC} | set(TEXT_FIELDS)
    assert specific <= writes
    assert specific | NO_INPUT == writes


@pytest.mark.parametrize("bad", BAD, ids=str)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(bad: Bad):
    case = CASE[bad.case]
    w, client, path = _prepare(case)
    body = _body(case, w, bad.change)
    before, rows = counts(), snapshot()
    response = getattr(client, case.method)(path, body, format="json")
    assert_refused(response, bad.field, bad.status)
    assert counts() == before
    assert snapshot() == rows


MALFORMED = [
    pytest.param('{"name": ', None, id="truncated"),
    pytest.param("{'name': 'single quotes'}", None, id="not-json"),
    pytest.param('{"name": NaN}', None, id="nan-literal"),
    pytest.param("[1, 2]", "non_field_errors", id="array"),
    pytest.param('"just a string"', "non_field_errors", id="string"),
    pytest.param("null", "non_field_errors", id="null"),
]


@pytest.mark.parametrize(
    ("case", "raw", "field"),
    [
        *[
            (case, raw, field)
            for case in WRITES
            for raw, field in (('{"name": ', None), ("[1, 2]", "non_field_errors"))
        ],
        *[(CASE["handovers partial_update"], *param.values) for param in MALFORMED],
        *[(CASE["items complete"], *param.values) for param in MALFORMED],
    ],
    ids=lambda v: str(v) if isinstance(v, Case) else None,
)
def test_malformed_body_is_400_and_writes_nothing(case: Case, raw: str, field):
    _, client, path = _prepare(case)
    before, rows = counts(), snapshot()
    response = client.generic(case.method.upper(), path, raw, content_type="application/json")
    error = assert_refused(response, field)
    if field is None:
        assert error["code"] == "parse_error"
    assert counts() == before
    assert snapshot() == rows


# Hostile bodies that once ended in a 500: a document nested far beyond anything the API takes (RecursionError in
# the decoder), and lone surrogate escapes, which decode into text that cannot be written as UTF-8 again (the 400
# that echoed them failed to render).
HOSTILE = [
    pytest.param("[" * 100_000, id="array-nested-100000-deep"),
    pytest.param('{"name":' * 50_000, id="object-nested-50000-deep"),
    pytest.param('{"name": ' + "[" * 40 + "]" * 40 + "}", id="nested-deeper-than-32"),
    pytest.param('{"name": "\\ud800"}', id="lone-surrogate-in-a-value"),
    pytest.param('{"\\udfff": 1}', id="lone-surrogate-in-a-key"),
    pytest.param('{"to": "\\ud800"}', id="lone-surrogate-as-a-choice"),
    pytest.param('{"items": [{"text": ["\\udc00"]}]}', id="lone-surrogate-nested"),
]


@pytest.mark.parametrize("raw", HOSTILE)
@pytest.mark.parametrize(
    "name", ["projects create", "projects transition", "handovers accept-with-conditions", "items complete"]
)
def test_hostile_json_is_a_parse_error_and_writes_nothing(name: str, raw: str):
    case = CASE[name]
    _, client, path = _prepare(case)
    before, rows = counts(), snapshot()
    response = client.generic(case.method.upper(), path, raw, content_type="application/json")
    error = assert_refused(response, None, code="parse_error")
    assert "nested deeper than 32" in error["message"] or "lone surrogate" in error["message"], error
    assert counts() == before
    assert snapshot() == rows


def test_a_surrogate_pair_is_one_character_and_is_kept():
    """Only a *lone* surrogate is refused: an escaped pair is an ordinary character outside the BMP."""
    _, client, path = _prepare(CASE["projects create"])
    raw = '{"code": "EMOJI-1", "name": "\\ud83d\\ude80 Launch"}'
    response = client.generic("POST", path, raw, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "\U0001f680 Launch"


def test_text_that_is_not_unicode_is_rendered_as_escapes_not_a_500():
    """Should such text reach the renderer another way, it is written as JSON escapes."""
    from config.api_parsers import JSONRenderer

    assert (
        JSONRenderer().render({"to": ["\ud800 is not a valid choice."]}) == b'{"to":["\\ud800 is not a valid choice."]}'
    )


BAD_IF_MATCH = [
    '"seven"',
    'W/"7a"',
    '"-1"',
    '"\xb2"',
    '"7.0"',
    "7 8",
    '"7", "8"',
    "",
    '"99999999999"',  # more than any version
    '"' + "9" * 5000 + '"',  # int() of over 4300 digits raises ValueError: this was a 500
    "9" * 5000,
]


@pytest.mark.parametrize(
    ("name", "if_match"),
    [
        *[(name, '"seven"') for name in VERSIONED],
        *[
            (name, tag)
            for name in ("projects partial_update", "handovers submit", "items complete")
            for tag in BAD_IF_MATCH
        ],
    ],
)
def test_if_match_that_is_not_a_version_is_400(name: str, if_match: str):
    case = CASE[name]
    w, client, path = _prepare(case)
    body = case.body(w) if case.body else {}
    before, rows = counts(), snapshot()
    response = getattr(client, case.method)(path, body, format="json", HTTP_IF_MATCH=if_match)
    assert_refused(response, "If-Match", code="invalid_if_match")
    assert counts() == before
    assert snapshot() == rows


def test_confidential_project_in_handover_create_is_refused_as_an_unknown_id():
    """GIVEN a confidential project and a manager of other projects who takes no part in it
    WHEN they plan a handover naming its id
    THEN 400 on `project`, worded exactly as for an id that does not exist: no hint that it is there."""
    case = CASE["handovers create"]
    w, client, path = _prepare(case, "outsider")
    body = case.body(w)
    before, rows = counts(), snapshot()
    hidden = assert_refused(client.post(path, body, format="json"), "project")
    missing = assert_refused(client.post(path, {**body, "project": UNKNOWN_ID}, format="json"), "project")
    assert hidden["fields"]["project"][0].replace(str(w.project.pk), "ID") == missing["fields"]["project"][0].replace(
        str(UNKNOWN_ID), "ID"
    )
    assert hidden["code"] == missing["code"]
    assert counts() == before
    assert snapshot() == rows


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{API}/projects/{{}}/", id="project"),
        pytest.param(f"{API}/handovers/{{}}/", id="handover"),
        pytest.param(f"{API}/items/{{}}/", id="item"),
        pytest.param(f"{API}/conditions/{{}}/", id="condition"),
        pytest.param(f"{API}/teams/{{}}/", id="team"),
        pytest.param(f"{API}/services/{{}}/kpis/", id="service-kpis"),
        pytest.param(f"{API}/kpis/{{}}/readings/", id="kpi-readings"),
        pytest.param(f"{API}/tokens/{{}}/", id="token"),
    ],
)
@pytest.mark.parametrize("pk", [UNKNOWN_ID, HUGE_ID, "abc", "%00", "-1"])
def test_unknown_ids_in_paths_are_404(path: str, pk):
    client = _admin_client()
    for method in ("get", "post"):
        response = getattr(client, method)(path.format(pk), {}, format="json")
        if response.status_code == 405:
            continue
        assert_refused(response, None, status=404)


# ------------------------------------------------------------------------------------------- lost updates


def _etag_target(what: str, w: World) -> tuple[str, dict, dict]:
    """A URL and two different valid changes of it."""
    if what == "project":
        return f"{API}/projects/{w.project.pk}/", {"name": "Phase 1"}, {"name": "Phase 2"}
    if what == "handover":
        return f"{API}/handovers/{w.handover.pk}/", {"deliverables": "CRM"}, {"deliverables": "CRM and runbooks"}
    return f"{API}/items/{w.item.pk}/", {"due_date": _days(5)}, {"due_date": _days(6)}


@pytest.mark.parametrize("what", ["project", "handover", "item"])
def test_patch_with_a_stale_etag_is_412_and_changes_nothing(what: str):
    """GIVEN two people who read the same version (ETag)
    WHEN the first saves a change and the second saves theirs with the ETag they read
    THEN the second gets 412 and the first's change stands; with the fresh ETag the second succeeds."""
    w = World("admin")
    url, first, second = _etag_target(what, w)
    client = APIClient()
    client.force_login(w.user("admin"))
    read = client.get(url)
    etag = read["ETag"]
    assert etag == f'"{read.json()["version"]}"'

    saved = client.patch(url, first, format="json", HTTP_IF_MATCH=etag)
    assert saved.status_code == 200, saved.content
    fresh = saved["ETag"]
    assert fresh != etag
    assert client.get(url)["ETag"] == fresh

    before, rows = counts(), snapshot()
    stale = client.patch(url, second, format="json", HTTP_IF_MATCH=etag)
    assert_refused(stale, None, status=412, code="stale_version")
    stale_body = client.patch(url, {**second, "version": int(etag.strip('"'))}, format="json")
    assert_refused(stale_body, None, status=412, code="stale_version")
    assert counts() == before
    assert snapshot() == rows
    current = client.get(url).json()
    assert all(current[key] == value for key, value in first.items())

    retried = client.patch(url, second, format="json", HTTP_IF_MATCH=f"W/{fresh}")
    assert retried.status_code == 200, retried.content
    assert all(retried.json()[key] == value for key, value in second.items())


def test_a_change_of_members_alone_moves_the_etag_and_a_stale_one_is_412():
    """GIVEN two people who read the same project WHEN the first changes only its members THEN the ETag moves, and
    the second's change of members with the ETag they read is 412 and leaves the first's members in place."""
    w = World("admin")
    url = f"{API}/projects/{w.project.pk}/"
    client = APIClient()
    client.force_login(w.user("admin"))
    etag = client.get(url)["ETag"]

    saved = client.patch(url, {"members": [w.users["viewer"].pk]}, format="json", HTTP_IF_MATCH=etag)
    assert saved.status_code == 200, saved.content
    assert saved["ETag"] != etag

    before, rows = counts(), snapshot()
    stale = client.patch(url, {"members": [w.users["member"].pk]}, format="json", HTTP_IF_MATCH=etag)
    assert_refused(stale, None, status=412, code="stale_version")
    assert (counts(), snapshot()) == (before, rows)
    assert [m["id"] for m in client.get(url).json()["members"]] == [w.users["viewer"].pk]


def test_if_match_and_version_must_agree():
    case = CASE["projects partial_update"]
    _, client, path = _prepare(case)
    etag = client.get(path)["ETag"]
    before, rows = counts(), snapshot()
    response = client.patch(path, {"name": "Phase 1", "version": 99}, format="json", HTTP_IF_MATCH=etag)
    assert_refused(response, "version", code="invalid_if_match")
    assert counts() == before
    assert snapshot() == rows


def test_if_match_star_asks_for_no_comparison():
    case = CASE["projects partial_update"]
    _, client, path = _prepare(case)
    response = client.patch(path, {"name": "Phase 1"}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200, response.content


UNVERSIONED = [case for case in WRITES if case.name not in VERSIONED]


@pytest.mark.parametrize("case", UNVERSIONED, ids=str)
def test_writes_without_versions_refuse_if_match_and_version(case: Case):
    """GIVEN a write whose object carries no version (a team, a KPI, a stall flag, ...)
    WHEN the client sends If-Match, or version in the body, believing itself protected against lost updates
    THEN 400 naming what it sent, and nothing written: never a silently ignored precondition."""
    w, client, path = _prepare(case)
    body = dict(case.body(w)) if case.body else {}
    before, rows = counts(), snapshot()
    response = getattr(client, case.method)(path, body, format="json", HTTP_IF_MATCH='"1"')
    assert_refused(response, "If-Match", code="if_match_unsupported")
    response = getattr(client, case.method)(path, {**body, "version": 1}, format="json")
    error = assert_refused(response, "version")
    assert error["fields"]["version"] == ["This endpoint does not compare versions; leave version out."]
    assert counts() == before
    assert snapshot() == rows


@pytest.mark.parametrize("name", ["tokens destroy (own)", "webhooks destroy"])
def test_deletes_refuse_if_match(name: str):
    case = next(c for c in CASES if c.name == name)
    _, client, path = _prepare(case)
    before, rows = counts(), snapshot()
    assert_refused(client.delete(path, HTTP_IF_MATCH='"1"'), "If-Match", code="if_match_unsupported")
    assert counts() == before
    assert snapshot() == rows


def test_the_versioned_writes_are_those_the_schema_documents():
    """If-Match, the ETag answered and 412 are documented exactly where versions are compared."""
    from .test_permissions import _pattern

    schema = _schema()
    documented = {
        (path, method)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if any(p["name"] == "If-Match" and p["in"] == "header" for p in op.get("parameters", []))
    }
    with_412 = {
        (path, m) for path, item in schema["paths"].items() for m, op in item.items() if "412" in op["responses"]
    }
    versioned = {(f"{API}/{_pattern(CASE[name])}".replace("{pk}", "{id}"), CASE[name].method) for name in VERSIONED}
    assert documented == versioned
    assert with_412 == versioned
    for path, method in versioned:
        assert "ETag" in schema["paths"][path][method]["responses"]["200"]["headers"], path


@pytest.mark.parametrize("name", ["projects transition", "handovers cancel", "items complete", "items waive"])
def test_action_with_a_stale_etag_is_412_and_changes_nothing(name: str):
    case = CASE[name]
    w, client, path = _prepare(case)
    target = {  # built lazily: a world's handover, once built, moves its project to planning
        "projects": lambda: f"{API}/projects/{w.project.pk}/",
        "handovers": lambda: f"{API}/handovers/{w.handover.pk}/",
        "items": lambda: f"{API}/items/{w.item.pk}/",
    }[name.split()[0]]()
    stale = f'"{int(client.get(target)["ETag"].strip(chr(34))) - 1}"'
    before, rows = counts(), snapshot()
    response = client.post(path, case.body(w), format="json", HTTP_IF_MATCH=stale)
    assert_refused(response, None, status=412, code="stale_version")
    assert counts() == before
    assert snapshot() == rows
    ok = client.post(path, case.body(w), format="json", HTTP_IF_MATCH=client.get(target)["ETag"])
    assert ok.status_code == 200, ok.content


# -------------------------------------------------------------------------------------------------- lists

LISTS = [
    f"{API}/projects/",
    f"{API}/teams/",
    f"{API}/services/",
    f"{API}/kpis/",
    f"{API}/templates/",
    f"{API}/handovers/",
    f"{API}/items/",
    f"{API}/conditions/",
    f"{API}/tokens/",
    f"{API}/stalls/",
    f"{API}/notifications/",
    f"{API}/webhooks/",
]


def test_page_size_is_capped_at_the_maximum():
    w = World("admin")
    Project.objects.bulk_create(Project(code=f"P-{n:03d}", name=f"Project {n}") for n in range(120))
    client = APIClient()
    client.force_login(w.user("admin"))
    page = client.get(f"{API}/projects/", {"page_size": 1000}).json()
    assert page["count"] == 121
    assert len(page["results"]) == 100
    assert len(client.get(f"{API}/projects/", {"page_size": 10}).json()["results"]) == 10
    assert len(client.get(f"{API}/projects/").json()["results"]) == 25


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"page_size": 1000}, 200, None),  # capped at 100
        ({"page_size": "0100"}, 200, None),
        ({"page_size": "9" * 5000}, 200, None),  # capped too; never int() of thousands of digits
        ({"page_size": "lots"}, 400, "page_size"),
        ({"page_size": -5}, 400, "page_size"),
        ({"page_size": 0}, 400, "page_size"),
        ({"page_size": "2.5"}, 400, "page_size"),
        ({"page_size": ""}, 400, "page_size"),
        ({"page": "abc"}, 400, "page"),
        ({"page": ""}, 400, "page"),
        ({"page": "0"}, 400, "page"),
        ({"page": "last"}, 400, "page"),
        ({"page": 99}, 404, None),
        ({"page": "9" * 5000}, 404, None),
        ({"ordering": "no_such_field"}, 400, "ordering"),
        ({"ordering": "-no_such_field"}, 400, "ordering"),
        ({"ordering": "\x00"}, 400, "ordering"),
        ({"stauts": "submitted"}, 400, "stauts"),
    ],
    ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else str(v),
)
def test_paging_parameters_never_fail_with_500(path: str, params: dict, status: int, field: str | None):
    client = _admin_client()
    response = client.get(path, params)
    assert response.status_code == status, response.content
    if status == 200:
        assert len(response.json()["results"]) <= 100
    else:
        assert_refused(response, field, status=status)


class Portfolio:
    """Projects and handovers that differ in one thing each, so that every filter has a known answer.

    ========  =========  ========  ======  ===========================  ============  ========================
    project   stage      manager   team    planned handover             handover      readiness (verified)
    ========  =========  ========  ======  ===========================  ============  ========================
    ALPHA     initiation ann       desk    10 days ago (overdue)        preparing,    nothing verified
                                                                         target passed
    BRAVO     planning   bob       desk    in 20 days                   submitted     all verified; adoption
                                                                                      items not applicable
    CHARLIE   execution  ann       field   in 30 days                   returned      failure items only
    DELTA     closed     bob       field   40 days ago (closed: not     (none)
                                           overdue)
    ========  =========  ========  ======  ===========================  ============  ========================
    """

    def __init__(self) -> None:
        names = ("admin", "ann", "bob", "olga", "oscar")
        users = User.objects.bulk_create(
            User(username=n, email=f"{n}@example.com", is_staff=n == "admin", password="!") for n in names
        )
        self.users = dict(zip(names, users, strict=True))
        u = self.users
        self.desk = OperationsTeam.objects.create(name="Service desk", lead=u["olga"])
        self.field = OperationsTeam.objects.create(name="Field service", lead=u["oscar"])
        today = timezone.localdate()
        rows = [
            ("ALPHA", "Alpha CRM roll-out", Stage.INITIATION, "ann", self.desk, -10),
            ("BRAVO", "Bravo fulfilment site", Stage.PLANNING, "bob", self.desk, 20),
            ("CHARLIE", "Charlie office move", Stage.EXECUTION, "ann", self.field, 30),
            ("DELTA", "Delta process redesign", Stage.CLOSED, "bob", self.field, -40),
        ]
        self.projects = {
            code: Project.objects.create(
                code=code,
                name=name,
                stage=stage,
                manager=u[manager],
                receiving_team=team,
                planned_handover=today + dt.timedelta(days=days),
            )
            for code, name, stage, manager, team, days in rows
        }
        self.desk_service = Service.objects.create(team=self.desk, name="CRM platform")
        self.field_service = Service.objects.create(team=self.field, name="Site operations")
        handovers = [
            ("ALPHA", HandoverStatus.PREPARING, "olga", -1, ()),
            ("BRAVO", HandoverStatus.SUBMITTED, "olga", 10, tuple(Risk)),
            ("CHARLIE", HandoverStatus.RETURNED, "oscar", 20, (Risk.FAILURE,)),
        ]
        self.handovers = {}
        now = timezone.now()
        for code, status, owner, days, verified in handovers:
            project = self.projects[code]
            handover = Handover.objects.create(
                project=project,
                receiving_team=project.receiving_team,
                operations_owner=u[owner],
                target_date=today + dt.timedelta(days=days),
                status=status,
                status_changed_at=now,
                last_activity_at=now,
                created_at=now,
                deliverables=f"{code.title()} deliverables",
            )
            ChecklistItem.objects.bulk_create(
                ChecklistItem(
                    handover=handover,
                    title=f"{code} {risk} {side}",
                    risk=risk,
                    side=side,
                    status=_portfolio_status(code, risk, verified),
                    not_applicable_reason="No users change their way of working" if code == "BRAVO" else "",
                )
                for risk in Risk
                for side in Side
            )
            self.handovers[code] = handover
        recount(h.pk for h in self.handovers.values())  # the items were written directly: count them into readiness

    def client(self) -> APIClient:
        client = APIClient()
        client.force_authenticate(self.users["admin"])
        return client


def _portfolio_status(code: str, risk: Risk, verified) -> ItemStatus:
    if code == "BRAVO" and risk == Risk.ADOPTION:
        return ItemStatus.NOT_APPLICABLE  # nothing applicable left on that risk: it is not ready
    return ItemStatus.VERIFIED if risk in verified else ItemStatus.OPEN


def _codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    return [row["code"] if "code" in row else row["project"]["code"] for row in rows]


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("projects", {"stage": "planning"}, {"BRAVO"}),
        ("projects", {"stage": ["initiation", "closed"]}, {"ALPHA", "DELTA"}),
        ("projects", {"receiving_team": "@desk"}, {"ALPHA", "BRAVO"}),
        ("projects", {"manager": "@ann"}, {"ALPHA", "CHARLIE"}),
        ("projects", {"overdue": "true"}, {"ALPHA"}),
        ("projects", {"overdue": "false"}, {"BRAVO", "CHARLIE", "DELTA"}),
        ("projects", {"search": "office"}, {"CHARLIE"}),
        ("projects", {"search": "bravo"}, {"BRAVO"}),
        ("projects", {"stage": "execution", "manager": "@bob"}, set()),
        ("projects", {"team": "@field"}, {"CHARLIE", "DELTA"}),
        ("projects", {"confidential": "false"}, {"ALPHA", "BRAVO", "CHARLIE", "DELTA"}),
        ("projects", {"confidential": "true"}, set()),
        ("projects", {"ordering": "-stage,code"}, {"ALPHA", "BRAVO", "CHARLIE", "DELTA"}),
        ("handovers", {"status": "submitted"}, {"BRAVO"}),
        ("handovers", {"status": ["preparing", "returned"]}, {"ALPHA", "CHARLIE"}),
        ("handovers", {"receiving_team": "@field"}, {"CHARLIE"}),
        ("handovers", {"operations_owner": "@olga"}, {"ALPHA", "BRAVO"}),
        ("handovers", {"manager": "@bob"}, {"BRAVO"}),
        ("handovers", {"project": "@ALPHA"}, {"ALPHA"}),
        ("handovers", {"overdue": "true"}, {"ALPHA"}),
        ("handovers", {"overdue": "false"}, {"BRAVO", "CHARLIE"}),
        ("handovers", {"team": "@desk"}, {"ALPHA", "BRAVO"}),
        ("handovers", {"stage": "execution"}, {"CHARLIE"}),
        ("handovers", {"stage": ["initiation", "planning"]}, {"ALPHA", "BRAVO"}),
        ("handovers", {"stage": "execution", "team": "@desk"}, set()),
        ("handovers", {"has_open_stall": "true"}, set()),
        ("handovers", {"has_open_stall": "0"}, {"ALPHA", "BRAVO", "CHARLIE"}),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "0.5"}, {"ALPHA", "CHARLIE"}),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "1"}, {"ALPHA", "CHARLIE"}),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "0"}, set()),
        ("handovers", {"readiness_risk": "failure", "readiness_below": "0.5"}, {"ALPHA"}),
        # BRAVO's adoption items are all not applicable: no share, which counts as nothing ready.
        ("handovers", {"readiness_risk": "adoption", "readiness_below": "0.5"}, {"ALPHA", "BRAVO", "CHARLIE"}),
        ("handovers", {"readiness_risk": "adoption", "readiness_below": "0.01"}, {"ALPHA", "BRAVO", "CHARLIE"}),
        ("handovers", {"readiness_risk": "adoption", "readiness_below": "0"}, set()),
        ("handovers", {"readiness_risk": "inefficiency", "readiness_below": "1"}, {"ALPHA", "CHARLIE"}),
        ("handovers", {"search": "CHARLIE"}, {"CHARLIE"}),
        ("handovers", {"search": "Alpha deliverables"}, {"ALPHA"}),
    ],
    # Sets sorted: the ids must be the same in every process of pytest-xdist, whatever its hash seed.
    ids=lambda v: (
        json.dumps(v, default=str) if isinstance(v, dict) else ",".join(sorted(v)) if isinstance(v, set) else str(v)
    ),
)
def test_filters_narrow_the_list(path: str, params: dict, expected: set[str]):
    world = Portfolio()
    ids = {
        "desk": world.desk.pk,
        "field": world.field.pk,
        **{name: user.pk for name, user in world.users.items()},
        **{code: project.pk for code, project in world.projects.items()},
    }
    query = {key: ids[value[1:]] if str(value).startswith("@") else value for key, value in params.items()}
    assert set(_codes(world.client().get(f"{API}/{path}/", query))) == expected


def test_a_project_whose_handover_was_accepted_is_not_overdue():
    """The API's ``overdue`` means what the web board shows: planned date passed, no handover accepted yet."""
    world = Portfolio()
    client = world.client()
    assert set(_codes(client.get(f"{API}/projects/", {"overdue": "true"}))) == {"ALPHA"}

    Project.objects.filter(code="ALPHA").update(actual_handover=timezone.localdate())

    assert _codes(client.get(f"{API}/projects/", {"overdue": "true"})) == []
    assert "ALPHA" in _codes(client.get(f"{API}/projects/", {"overdue": "false"}))


def test_filters_on_services_items_and_conditions():
    world = Portfolio()
    client = world.client()
    services = client.get(f"{API}/services/", {"team": world.field.pk}).json()["results"]
    assert [s["name"] for s in services] == ["Site operations"]
    alpha = world.handovers["ALPHA"]
    items = client.get(f"{API}/items/", {"handover": alpha.pk, "side": "operations", "risk": "failure"}).json()
    assert [i["title"] for i in items["results"]] == ["ALPHA failure operations"]
    verified = client.get(f"{API}/items/", {"status": "verified", "page_size": 100}).json()["results"]
    assert {i["handover"] for i in verified} == {world.handovers["BRAVO"].pk, world.handovers["CHARLIE"].pk}
    assert client.get(f"{API}/conditions/", {"status": "open"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "ordering", "expected"),
    [
        ("projects", "code", ["ALPHA", "BRAVO", "CHARLIE", "DELTA"]),
        ("projects", "-code", ["DELTA", "CHARLIE", "BRAVO", "ALPHA"]),
        ("projects", "planned_handover", ["DELTA", "ALPHA", "BRAVO", "CHARLIE"]),
        ("handovers", "target_date", ["ALPHA", "BRAVO", "CHARLIE"]),
        ("handovers", "-target_date", ["CHARLIE", "BRAVO", "ALPHA"]),
        ("handovers", "status", ["ALPHA", "CHARLIE", "BRAVO"]),  # preparing, returned, submitted
    ],
)
def test_ordering(path: str, ordering: str, expected: list[str]):
    world = Portfolio()
    assert _codes(world.client().get(f"{API}/{path}/", {"ordering": ordering})) == expected


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("projects", {"stage": "finished"}, "stage"),
        ("projects", {"receiving_team": "desk"}, "receiving_team"),
        ("projects", {"receiving_team": UNKNOWN_ID}, "receiving_team"),
        ("projects", {"manager": "ann"}, "manager"),
        ("projects", {"manager": HUGE_ID}, "manager"),
        ("projects", {"overdue": "maybe"}, "overdue"),
        ("projects", {"confidential": "maybe"}, "confidential"),
        ("projects", {"confidential": "yes"}, "confidential"),
        ("projects", {"team": UNKNOWN_ID}, "team"),
        ("projects", {"ordering": "nonexistent"}, "ordering"),
        ("projects", {"ordering": "code,-nonexistent"}, "ordering"),
        ("projects", {"stauts": "planning"}, "stauts"),
        ("projects", {"planned_handover_before": "next year"}, "planned_handover_before"),
        ("projects", {"search": "\x00"}, None),
        ("handovers", {"status": "done"}, "status"),
        ("handovers", {"project": "CRM"}, "project"),
        ("handovers", {"receiving_team": "x"}, "receiving_team"),
        ("handovers", {"operations_owner": "olga"}, "operations_owner"),
        ("handovers", {"manager": "bob"}, "manager"),
        ("handovers", {"manager": HUGE_ID}, None),
        ("handovers", {"overdue": "yes"}, "overdue"),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "2"}, "readiness_below"),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "-0.1"}, "readiness_below"),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "half"}, "readiness_below"),
        ("handovers", {"readiness_risk": "overall", "readiness_below": "NaN"}, "readiness_below"),
        ("handovers", {"readiness_risk": "meteor", "readiness_below": "0.5"}, "readiness_risk"),
        ("handovers", {"readiness_below": "0.5"}, "readiness_risk"),
        ("handovers", {"readiness_risk": "adoption"}, "readiness_below"),
        ("handovers", {"stage": "finished"}, "stage"),
        ("handovers", {"team": "desk"}, "team"),
        ("handovers", {"team": UNKNOWN_ID}, "team"),
        ("handovers", {"has_open_stall": "maybe"}, "has_open_stall"),
        ("handovers", {"stauts": "submitted"}, "stauts"),
        ("handovers", {"target_date": "2026-01-01"}, "target_date"),
        ("handovers", {"ordering": "nonexistent"}, "ordering"),
        ("handovers", {"target_date_after": "2026-02-30"}, "target_date_after"),
        ("handovers", {"search": "\x00"}, None),
        ("items", {"status": "finished"}, "status"),
        ("items", {"risk": "meteor"}, "risk"),
        ("items", {"handover": "x"}, "handover"),
        ("items", {"assignee": "ann"}, "assignee"),
        ("items", {"mandatory": "perhaps"}, "mandatory"),
        ("items", {"mandatory": "yes"}, "mandatory"),
        ("conditions", {"status": "late"}, "status"),
        ("conditions", {"handover": UNKNOWN_ID}, "handover"),
        ("services", {"team": "desk"}, "team"),
        ("services", {"is_active": "maybe"}, "is_active"),
        ("kpis", {"direction": "up"}, "direction"),
        ("kpis", {"is_adoption": "sometimes"}, "is_adoption"),
        ("templates", {"kind": "bakery"}, "kind"),
        ("templates", {"is_active": "on"}, "is_active"),
        ("tokens", {"read_only": "maybe"}, "read_only"),
        ("notifications", {"unread": "maybe"}, "unread"),
        ("stalls", {"open": "maybe"}, "open"),
        ("conditions", {"search": "\x00"}, None),
        ("teams", {"lead": "boss"}, "lead"),
    ],
    ids=lambda v: json.dumps(v, default=str) if isinstance(v, dict) else str(v),
)
def test_invalid_filter_value_is_400_naming_it(path: str, params: dict, field: str | None):
    world = Portfolio()
    response = world.client().get(f"{API}/{path}/", params)
    if field is None and response.status_code == 200:
        return  # a value that cannot match anything may also just match nothing: never a 500
    assert_refused(response, field)


# --------------------------------------------------------------------------------- lists, as the schema has them


@cache
def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _list_operations() -> dict[str, dict]:
    """Every paginated list of the API (top-level and nested), with its documented GET operation."""
    return {
        path: item["get"]
        for path, item in _schema()["paths"].items()
        if "get" in item and any(p["name"] == "page" for p in item["get"].get("parameters", []))
    }


def _list_url(path: str, w: World) -> str:
    if "{id}" not in path:
        return path
    owner = {
        "projects": lambda: w.project,
        "handovers": lambda: w.handover,
        "items": lambda: w.item,
        "services": lambda: w.service,
        "kpis": lambda: w.kpi,
        "webhooks": lambda: w.webhook,
    }[path.removeprefix(f"{API}/").split("/")[0]]()
    return path.replace("{id}", str(owner.pk))


def _query_params(path: str) -> list[dict]:
    return [p for p in _list_operations()[path].get("parameters", []) if p["in"] == "query"]


def _sample(parameter: dict) -> str:
    """A well-formed value for a documented query parameter."""
    schema = parameter["schema"]
    if schema.get("type") == "array":
        return schema["items"].get("enum", ["x"])[0]
    if "enum" in schema:
        return schema["enum"][0]
    return {
        "boolean": "true",
        "integer": "1",
        "number": "0.5",
    }.get(schema.get("type"), timezone.localdate().isoformat() if schema.get("format") == "date" else "x")


LIST_PATHS = sorted(_list_operations())


def _unknown(response, name: str) -> bool:
    if response.status_code != 400:
        return False
    return any(m.startswith("Unknown query parameter") for m in response.json()["error"]["fields"].get(name, []))


def test_there_are_lists_nested_under_objects_and_all_are_paginated():
    assert {f"{API}/handovers/{{id}}/items/", f"{API}/services/{{id}}/kpis/", f"{API}/items/{{id}}/evidence/"} <= set(
        LIST_PATHS
    )
    bare = [
        path
        for path, item in _schema()["paths"].items()
        if item.get("get", {})
        .get("responses", {})
        .get("200", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("type")
        == "array"
    ]
    assert bare == [], "lists without pagination"


@pytest.mark.parametrize("path", LIST_PATHS)
def test_every_list_takes_each_query_parameter_it_documents(path: str):
    """GIVEN a list and each query parameter its schema documents, with a well-formed value
    THEN none of them is refused as unknown (a value may still match nothing or name an unknown id)."""
    w = World("admin")
    client = APIClient()
    client.force_authenticate(w.user("admin"))
    url = _list_url(path, w)
    for parameter in _query_params(path):
        name = parameter["name"]
        response = client.get(url, {name: _sample(parameter)})
        assert response.status_code in (200, 400), (name, response.content)
        assert not _unknown(response, name), (name, response.content)


@pytest.mark.parametrize("path", LIST_PATHS)
def test_every_list_refuses_what_it_does_not_take(path: str):
    """An unknown parameter (a typo of a filter), a page size that is not a number, an unknown ordering and a
    boolean that is neither true nor false: each a 400 naming the parameter, never silently ignored."""
    w = World("admin")
    client = APIClient()
    client.force_authenticate(w.user("admin"))
    url = _list_url(path, w)
    assert _unknown(client.get(url, {"stauts": "submitted"}), "stauts")
    assert_refused(client.get(url, {"page_size": "lots"}), "page_size")
    documented = {p["name"]: p for p in _query_params(path)}
    if "ordering" in documented:
        assert_refused(client.get(url, {"ordering": "nonexistent"}), "ordering")
        every = ",".join(documented["ordering"]["schema"]["items"]["enum"])
        assert client.get(url, {"ordering": every}).status_code == 200  # each documented field orders
    else:
        assert _unknown(client.get(url, {"ordering": "id"}), "ordering")
    if "search" in documented:
        assert client.get(url, {"search": "runbook"}).status_code == 200
    else:
        assert _unknown(client.get(url, {"search": "runbook"}), "search")
    for name, parameter in documented.items():
        if parameter["schema"].get("type") == "boolean":
            assert_refused(client.get(url, {name: "maybe"}), name)


def test_members_are_looked_up_in_one_query():
    w = World("admin")
    client = APIClient()
    client.force_authenticate(w.user("admin"))
    url = f"{API}/projects/{w.project.pk}/"
    few = [w.users["member"].pk]
    many = [u.pk for u in User.objects.bulk_create(User(username=f"u{n}", password="!") for n in range(30))]
    with CaptureQueriesContext(connection) as one:
        assert client.patch(url, {"members": few}, format="json").status_code == 200
    client.patch(url, {"members": []}, format="json")
    with CaptureQueriesContext(connection) as thirty:
        assert client.patch(url, {"members": many}, format="json").status_code == 200
    lookups = [q for q in thirty.captured_queries if 'FROM "auth_user"' in q["sql"] and '"id" IN' in q["sql"]]
    assert len(lookups) == 1
    # Adding thirty members writes thirty rows and thirty audit events; the lookup itself does not grow.
    assert len([q for q in one.captured_queries if 'FROM "auth_user"' in q["sql"] and '"id" IN' in q["sql"]]) == 1


def test_a_model_validation_message_names_its_field_once():
    """The service's message is Django's own; the API names the field in the summary, and only there."""
    w = World("admin")
    client = APIClient()
    client.force_authenticate(w.user("admin"))
    error = assert_refused(
        client.post(f"{API}/projects/", {"code": "CRM-2026", "name": "Again"}, format="json"), "code"
    )
    assert error["fields"]["code"] == ["Project with this Code already exists."]
    assert error["message"] == "code: Project with this Code already exists."
