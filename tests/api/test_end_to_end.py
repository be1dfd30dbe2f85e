"""A project carried from initiation to closed over HTTP by two tools: the manager's and the operations owner's."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from handover import services as hs
from handover.choices import Side
from tests.factories import TemplateFactory


def _client(user, *, read_only=False) -> APIClient:
    _, raw = hs.token_create(by=user, name=f"{user.username} tool", read_only=read_only)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


@pytest.mark.django_db
def test_project_from_initiation_to_closed_over_http_with_a_return_and_conditional_acceptance(
    manager, owner, lead, member, team
):
    """GIVEN a project in initiation and tokens for its manager and the operations owner
    WHEN they carry it through planning, a handover that is returned once and then accepted with a condition
    THEN the project closes, and history, decisions and activity tell the whole story."""
    template = TemplateFactory(name="API template")
    pm, ops = _client(manager), _client(owner)

    created = _ok(
        pm.post(
            "/api/v1/projects/",
            {"code": "api-1", "name": "CRM roll-out", "receiving_team": team.pk, "members": [member.pk]},
        ),
        201,
    )
    pid = created["id"]
    assert created["code"] == "API-1"
    assert created["manager"]["id"] == manager.pk
    assert created["stage"] == "initiation"

    _ok(pm.post(f"/api/v1/projects/{pid}/transition/", {"to": "planning"}))
    blocked = pm.post(f"/api/v1/projects/{pid}/transition/", {"to": "execution"})
    assert blocked.status_code == 409
    assert blocked.json()["error"]["code"] == "gate_handover_plan"

    target = (timezone.localdate() + dt.timedelta(days=30)).isoformat()
    handover = _ok(
        pm.post(
            "/api/v1/handovers/",
            {"project": pid, "template": template.pk, "operations_owner": owner.pk, "target_date": target},
        ),
        201,
    )
    hid = handover["id"]
    assert handover["status"] == "preparing"
    assert handover["readiness"]["overall"]["mandatory"] == 6
    _ok(pm.post(f"/api/v1/projects/{pid}/transition/", {"to": "execution"}))

    items = _ok(pm.get(f"/api/v1/handovers/{hid}/items/"))
    for item in items:
        client = pm if item["side"] == Side.PROJECT else _client(lead)
        evidence = {"url": "https://wiki.example.com/runbook"} if item["mandatory"] else {"text": "done"}
        _ok(client.post(f"/api/v1/items/{item['id']}/complete/", {"evidence": evidence}))
    _ok(pm.post(f"/api/v1/handovers/{hid}/submit/"))

    # Operations verifies all but one, sends that one back and returns the handover.
    project_items = [i for i in items if i["side"] == Side.PROJECT and i["mandatory"]]
    rejected = project_items[0]
    for item in items:
        if item["id"] != rejected["id"]:
            _ok(ops.post(f"/api/v1/items/{item['id']}/verify/", {}))
    not_yet = ops.post(f"/api/v1/handovers/{hid}/accept/", {})
    assert not_yet.status_code == 409
    assert not_yet.json()["error"]["code"] == "accept_mandatory_unverified"
    returned = _ok(
        ops.post(f"/api/v1/handovers/{hid}/return/", {"reason": "Runbook link is dead", "items": [rejected["id"]]})
    )
    assert returned["status"] == "returned"
    assert returned["return_count"] == 1

    # The manager fixes the item (the handover resumes preparing) and resubmits.
    fixed = _ok(
        pm.post(f"/api/v1/items/{rejected['id']}/complete/", {"evidence": {"url": "https://wiki.example.com/v2"}})
    )
    assert fixed["status"] == "done"
    assert _ok(pm.get(f"/api/v1/handovers/{hid}/"))["status"] == "preparing"
    _ok(pm.post(f"/api/v1/handovers/{hid}/submit/"))
    _ok(ops.post(f"/api/v1/items/{rejected['id']}/verify/", {"note": "Works now"}))

    due = (timezone.localdate() + dt.timedelta(days=14)).isoformat()
    accepted = _ok(
        ops.post(
            f"/api/v1/handovers/{hid}/accept-with-conditions/",
            {"conditions": [{"text": "Tune alert thresholds", "owner": owner.pk, "due_date": due}]},
        )
    )
    assert accepted["status"] == "accepted_with_conditions"

    for stage in ("monitoring", "closure", "closed"):
        _ok(pm.post(f"/api/v1/projects/{pid}/transition/", {"to": stage}))
    closed = _ok(pm.get(f"/api/v1/projects/{pid}/"))
    assert closed["stage"] == "closed"
    assert closed["actual_handover"] == timezone.localdate().isoformat()

    history = _ok(pm.get(f"/api/v1/projects/{pid}/history/"))["results"]
    moves = [(e["from_stage"], e["to_stage"]) for e in history if e["kind"] == "stage_changed"]
    assert moves == [
        ("initiation", "planning"),
        ("planning", "execution"),
        ("execution", "monitoring"),
        ("monitoring", "closure"),
        ("closure", "closed"),
    ]
    decisions = _ok(ops.get(f"/api/v1/handovers/{hid}/decisions/"))
    assert [d["kind"] for d in decisions] == ["returned", "accepted_with_conditions"]
    frozen = {i["id"]: i["status"] for i in decisions[0]["snapshot"]["items"]}
    assert frozen[rejected["id"]] == "done"  # as it stood when returned, before being sent back
    assert decisions[1]["conditions"][0]["text"] == "Tune alert thresholds"
    activity = _ok(ops.get(f"/api/v1/handovers/{hid}/activity/?page_size=100"))
    assert activity["count"] > 20
