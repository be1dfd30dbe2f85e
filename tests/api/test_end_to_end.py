"""A project carried from initiation to closed over HTTP by two tools: the manager's and the operations owner's.

Each tool holds exactly one API token, which its person created over HTTP (``POST /api/v1/tokens/``) from a signed-in
session; after that only the bearer tokens are used. The checklist is the kind a small roll-out would use: the
mandatory items are the project's work, verified by the operations owner (nobody verifies their own work); on the
operations side there is an optional item the owner does themselves, and a mandatory one that does not apply here,
which the owner marks not applicable with the reason.
"""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from handover import services as hs
from handover.choices import Risk, Side, TemplateKind
from handover.models import ApiToken
from tests.factories import AdminFactory

API = "/api/v1"
pytestmark = pytest.mark.django_db


def _ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


def _refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def _token_over_http(user, name: str) -> str:
    """The person, signed in to the web UI, creates their tool's token; the secret is shown once."""
    session = APIClient()
    session.force_login(user)
    created = _ok(session.post(f"{API}/tokens/", {"name": name}, format="json"), 201)
    assert created["user"]["id"] == user.pk
    assert created["token"].startswith("hov_")
    return created["token"]


def _tool(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _small_rollout_template():
    """What an administrator set up beforehand (not part of the two tools' story)."""
    spec = hs.TemplateItemSpec
    return hs.template_create(
        by=AdminFactory(),
        kind=TemplateKind.SOFTWARE_ROLLOUT,
        name="Small software roll-out",
        items=[
            spec(key="runbooks", title="Runbooks accepted by tier 2", risk=Risk.INEFFICIENCY, side=Side.PROJECT),
            spec(key="knowledge", title="Knowledge transfer held", risk=Risk.INEFFICIENCY, side=Side.PROJECT),
            spec(key="monitoring", title="Monitoring routed to on-call", risk=Risk.FAILURE, side=Side.PROJECT),
            spec(key="restore", title="Backup restore tested", risk=Risk.FAILURE, side=Side.PROJECT),
            spec(key="training", title="Users trained", risk=Risk.ADOPTION, side=Side.PROJECT),
            spec(key="vendor", title="Vendor contracts owned", risk=Risk.INEFFICIENCY, side=Side.OPERATIONS),
            spec(
                key="catalogue",
                title="Service catalogue entry updated",
                risk=Risk.INEFFICIENCY,
                side=Side.OPERATIONS,
                mandatory=False,
            ),
        ],
    )


def _all(client: APIClient, url: str) -> list[dict]:
    """Every row of a paginated list, following ``next``."""
    rows, page = [], _ok(client.get(url, {"page_size": 2}))
    while True:
        rows += page["results"]
        if not page["next"]:
            return rows
        page = _ok(client.get(page["next"]))


def test_project_from_initiation_to_closed_over_http_with_a_return_and_conditional_acceptance(
    manager, owner, member, team
):
    """GIVEN a manager and an operations owner, each with a tool holding the token they created over HTTP
    WHEN they carry a project through planning and a handover that is returned once (an item sent back), fixed,
    resubmitted and accepted with a condition, sending If-Match on the way
    THEN the project closes, a stale If-Match is refused with 412 and changes nothing, and history, decisions,
    conditions and activity tell the whole story."""
    template = _small_rollout_template()
    pm = _tool(_token_over_http(manager, "PM tool"))
    ops = _tool(_token_over_http(owner, "ITSM integration"))
    assert _ok(pm.get(f"{API}/me/"))["token_read_only"] is False

    # The manager opens the project and moves it to planning, sending back the ETag they were given.
    created = pm.post(
        f"{API}/projects/",
        {"code": "crm-2027", "name": "CRM roll-out", "receiving_team": team.pk, "members": [member.pk]},
        format="json",
    )
    project = _ok(created, 201)
    pid = project["id"]
    assert project["code"] == "CRM-2027"
    assert project["manager"]["id"] == manager.pk
    assert project["stage"] == "initiation"
    planning = pm.post(f"{API}/projects/{pid}/transition/", {"to": "planning"}, HTTP_IF_MATCH=created["ETag"])
    assert _ok(planning)["stage"] == "planning"
    # The same, now stale, ETag: the move that was made meanwhile is not overwritten.
    stale = pm.patch(f"{API}/projects/{pid}/", {"name": "CRM"}, format="json", HTTP_IF_MATCH=created["ETag"])
    _refused(stale, 412, "stale_version")
    assert _ok(pm.get(f"{API}/projects/{pid}/"))["name"] == "CRM roll-out"
    _refused(pm.post(f"{API}/projects/{pid}/transition/", {"to": "execution"}), 409, "gate_handover_plan")

    # The manager plans the handover; leaving planning is now open.
    target = (timezone.localdate() + dt.timedelta(days=30)).isoformat()
    handover = _ok(
        pm.post(
            f"{API}/handovers/",
            {"project": pid, "template": template.pk, "operations_owner": owner.pk, "target_date": target},
            format="json",
        ),
        201,
    )
    hid = handover["id"]
    assert handover["status"] == "preparing"
    assert handover["readiness"]["overall"]["mandatory"] == 6
    _ok(pm.post(f"{API}/projects/{pid}/transition/", {"to": "execution"}, HTTP_IF_MATCH=planning["ETag"]))

    # Both read the handover; the owner adds an item, so the manager's copy is stale: their edit is refused.
    read = pm.get(f"{API}/handovers/{hid}/")
    added = ops.post(
        f"{API}/handovers/{hid}/items/",
        {"title": "CRM in the on-call runbook index", "risk": "failure", "side": "operations", "mandatory": False},
        format="json",
    )
    _ok(added, 201)
    edit = {"deliverables": "CRM, integrations, runbooks"}
    _refused(pm.patch(f"{API}/handovers/{hid}/", edit, format="json", HTTP_IF_MATCH=read["ETag"]), 412, "stale_version")
    fresh = pm.get(f"{API}/handovers/{hid}/")
    assert _ok(pm.patch(f"{API}/handovers/{hid}/", edit, format="json", HTTP_IF_MATCH=fresh["ETag"]))["deliverables"]

    # The checklist is a paginated list.
    first_page = _ok(pm.get(f"{API}/handovers/{hid}/items/", {"page_size": 1}))
    assert first_page["count"] == 8
    assert len(first_page["results"]) == 1
    items = _all(pm, f"{API}/handovers/{hid}/items/")
    assert [i["position"] for i in items] == sorted(i["position"] for i in items)
    by_title = {i["title"]: i for i in items}
    project_side = [i for i in items if i["side"] == Side.PROJECT]
    assert all(i["mandatory"] for i in project_side)

    # The manager does the project's work, with evidence; the owner does the operations side's.
    for item in project_side:
        done = pm.post(f"{API}/items/{item['id']}/complete/", {"evidence": {"url": "https://wiki.example.com/crm"}})
        assert _ok(done)["status"] == "done"
    vendor = by_title["Vendor contracts owned"]
    na = ops.post(f"{API}/items/{vendor['id']}/not-applicable/", {"reason": "Built in-house: no vendor to manage."})
    assert _ok(na)["status"] == "not_applicable"
    catalogue = by_title["Service catalogue entry updated"]
    _ok(ops.post(f"{API}/items/{catalogue['id']}/complete/", {"evidence": {"text": "Entry CRM-01 published"}}))

    submitted = pm.get(f"{API}/handovers/{hid}/")
    assert _ok(pm.post(f"{API}/handovers/{hid}/submit/", HTTP_IF_MATCH=submitted["ETag"]))["status"] == "submitted"

    # The owner verifies all but the restore test, which they send back with the return.
    restore = by_title["Backup restore tested"]
    for item in project_side:
        if item["id"] != restore["id"]:
            _ok(ops.post(f"{API}/items/{item['id']}/verify/", {"note": "Walked through with tier 2"}))
    _refused(ops.post(f"{API}/handovers/{hid}/accept/", {}), 409, "accept_mandatory_unverified")
    reason = "The restore test restored last year's backup; test with a current one."
    returned = _ok(ops.post(f"{API}/handovers/{hid}/return/", {"reason": reason, "items": [restore["id"]]}))
    assert returned["status"] == "returned"
    assert returned["return_count"] == 1
    sent_back = _ok(pm.get(f"{API}/items/{restore['id']}/"))
    assert sent_back["status"] == "open"
    assert sent_back["sent_back_reason"] == reason

    # The manager redoes it (the handover resumes preparing), says so, and resubmits.
    redone = pm.post(
        f"{API}/items/{restore['id']}/complete/",
        {"evidence": {"url": "https://wiki.example.com/crm/restore-2027-03"}},
        HTTP_IF_MATCH=f'"{sent_back["version"]}"',
    )
    assert _ok(redone)["status"] == "done"
    assert _ok(pm.get(f"{API}/handovers/{hid}/"))["status"] == "preparing"
    _ok(pm.post(f"{API}/items/{restore['id']}/comments/", {"body": "Restored this morning's backup in 40 min."}), 201)
    _ok(pm.post(f"{API}/handovers/{hid}/submit/"))

    # The owner verifies the fix and accepts, with a condition the operations side follows up.
    _ok(ops.post(f"{API}/items/{restore['id']}/verify/", {"note": "Restore works now"}))
    due = (timezone.localdate() + dt.timedelta(days=14)).isoformat()
    decision_read = ops.get(f"{API}/handovers/{hid}/")
    accepted = ops.post(
        f"{API}/handovers/{hid}/accept-with-conditions/",
        {"conditions": [{"text": "Tune alert thresholds", "owner": owner.pk, "due_date": due}], "note": "Good work"},
        HTTP_IF_MATCH=decision_read["ETag"],
    )
    assert _ok(accepted)["status"] == "accepted_with_conditions"

    # The manager closes the project, one stage at a time, each move with the ETag of the last.
    etag = pm.get(f"{API}/projects/{pid}/")["ETag"]
    for stage in ("monitoring", "closure", "closed"):
        moved = pm.post(f"{API}/projects/{pid}/transition/", {"to": stage}, HTTP_IF_MATCH=etag)
        assert _ok(moved)["stage"] == stage
        etag = moved["ETag"]
    closed = _ok(pm.get(f"{API}/projects/{pid}/"))
    assert closed["actual_handover"] == timezone.localdate().isoformat()

    # What happened, as either tool reads it.
    history = _all(pm, f"{API}/projects/{pid}/history/")
    moves = [(e["from_stage"], e["to_stage"]) for e in history if e["kind"] == "stage_changed"]
    assert moves == [
        ("initiation", "planning"),
        ("planning", "execution"),
        ("execution", "monitoring"),
        ("monitoring", "closure"),
        ("closure", "closed"),
    ]
    decisions = _all(ops, f"{API}/handovers/{hid}/decisions/")
    assert [d["kind"] for d in decisions] == ["returned", "accepted_with_conditions"]
    frozen = {i["id"]: i["status"] for i in decisions[0]["snapshot"]["items"]}
    assert frozen[restore["id"]] == "done"  # as it stood when returned, before being sent back
    assert frozen[vendor["id"]] == "not_applicable"
    conditions = _all(ops, f"{API}/handovers/{hid}/conditions/")
    assert [(c["text"], c["owner"]["id"], c["status"]) for c in conditions] == [
        ("Tune alert thresholds", owner.pk, "open")
    ]
    assert _ok(ops.get(f"{API}/conditions/", {"handover": hid, "status": "open"}))["count"] == 1
    activity = _ok(ops.get(f"{API}/handovers/{hid}/activity/", {"page_size": 100}))
    assert activity["count"] > 20
    assert {a["actor"]["id"] for a in activity["results"]} == {manager.pk, owner.pk}

    # Two tools, two tokens, both used; nothing else acted.
    tokens = ApiToken.objects.order_by("id")
    assert [(t.user_id, t.name) for t in tokens] == [(manager.pk, "PM tool"), (owner.pk, "ITSM integration")]
    assert all(t.last_used_at is not None for t in tokens)
