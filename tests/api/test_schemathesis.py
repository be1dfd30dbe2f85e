"""Property-based tests of the whole API against its own OpenAPI schema (schemathesis).

The schema is loaded from the WSGI application, as a client would fetch it, and every operation is called with
cases generated from it (valid ones, and invalid ones that the API must refuse). Each response must not be a server
error and must have a status code the schema documents for that operation. Failures of all operations are
collected, so that one run shows every finding.

Two passes, each with its own API token:

* an administrator, who may do everything, so that valid cases get as far as the rules: the database holds
  handovers in every state an action starts from (ready to submit, submitted and verified, accepted, in hypercare,
  half done), items in every state, open conditions and stall flags, webhooks with deliveries; and the cases aimed
  at an object are aimed at the ones the action can succeed on. DELETEs run last, so that the objects they remove
  served every other operation first.
* a viewer (signed in, no role), fewer cases: what they may not do must be refused (403), and what is confidential
  must not exist for them (404), in the documented shape.

The WSGI calls run in the test's thread, on the test's connection. The test is not wrapped in a transaction
(``transaction=True``), so that a database error in one request cannot poison the requests after it, and sequences
restart, so that the seeded rows have the small ids that generated cases hit too.
"""

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from handover import services as hs
from handover.choices import (
    Channel,
    DeliveryStatus,
    EventType,
    NotificationKind,
    Side,
    StallRule,
)
from handover.models import (
    ApiToken,
    ChecklistItem,
    Condition,
    Event,
    Handover,
    Notification,
    StallFlag,
    WebhookDelivery,
)
from handover.tokens import services as tokens
from handover.webhooks import services as webhooks
from operations import services as ops
from projects import services as ps
from projects.choices import Stage
from tests.factories import AdminFactory, ProjectFactory, ServiceFactory, TeamFactory, TemplateFactory, UserFactory

# Examples per operation and generation mode. Some 80 operations give well over the 500 cases the suite promises,
# in about a minute on a small machine.
ADMIN = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 2}
VIEWER = {GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}
MIN_CASES = 500
CHECKS = [not_a_server_error, status_code_conformance]
HYPOTHESIS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@dataclass
class Seeded:
    """What the cases are aimed at: for each resource, and for some actions, the ids worth calling it on."""

    admin_token: str = ""
    viewer_token: str = ""
    by_resource: dict[str, list[int]] = field(default_factory=dict)
    by_action: dict[str, list[int]] = field(default_factory=dict)
    for_viewer: dict[str, list[int]] = field(default_factory=dict)

    def targets(self, path: str, *, viewer: bool) -> list[int]:
        parts = path.strip("/").split("/")  # api, v1, resource, {id}[, action]
        resource = parts[2]
        action = parts[4] if len(parts) > 4 else ""
        if viewer and resource in self.for_viewer:
            return self.for_viewer[resource]
        return self.by_action.get(f"{resource} {action}") or self.by_resource.get(resource, [])


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def _seed() -> Seeded:
    """Two teams; five projects, one confidential; handovers in every state an action starts from; items in every
    state; a condition, stall flags with notifications, KPIs with readings, webhooks with deliveries."""
    admin = AdminFactory(username="fuzz-admin")
    viewer = UserFactory(username="viewer")
    manager, member, lead, owner = (UserFactory(username=n) for n in ("pm", "dev", "lead", "owner"))
    team = TeamFactory(name="Service desk", lead=lead, members=[owner])
    TeamFactory(name="Network")
    service = ServiceFactory(team=team, name="CRM platform")
    kpi = ops.kpi_create(service=service, by=admin, name="Adoption", target=80, baseline=10, is_adoption=True)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=42)
    ops.kpi_create(service=service, by=admin, name="Incidents", target=5, direction="lower")
    template = TemplateFactory(name="Roll-out")
    TemplateFactory(name="Site launch")
    target = timezone.localdate() + dt.timedelta(days=30)

    def planned(code: str, *, confidential: bool = False) -> Handover:
        project = ProjectFactory(
            code=code, manager=manager, receiving_team=team, members=[member], confidential=confidential
        )
        ps.project_transition(project=project, to=Stage.PLANNING, by=manager)
        return hs.handover_create(
            project=project, template=template, operations_owner=owner, target_date=target, service=service, by=manager
        )

    def work(handover: Handover, *, verify: bool) -> None:
        for item in handover.items.all():
            by = manager if item.side == Side.PROJECT else lead
            hs.item_complete(item=item, by=by, evidence_url="https://wiki.example.com/runbook")
        if verify:
            hs.handover_submit(handover=handover, by=manager)
            for item in handover.items.all():
                hs.item_verify(item=item, by=owner)

    ready = planned("READY-1")  # preparing, every item done: submit succeeds
    work(ready, verify=False)
    submitted = [planned(f"SUBMITTED-{n}") for n in (1, 2, 3)]  # submitted, all verified: accept / return succeed
    for handover in submitted:
        work(handover, verify=True)
    accepted = planned("ACCEPTED-1")  # accepted with a condition: start-hypercare succeeds
    work(accepted, verify=True)
    hs.handover_accept_with_conditions(
        handover=accepted, by=owner, conditions=[{"text": "Tune alerts", "owner": owner, "due_date": target}]
    )
    hypercare = planned("HYPERCARE-1")  # in hypercare: complete succeeds
    work(hypercare, verify=True)
    hs.handover_accept(handover=hypercare, by=owner)
    hs.handover_start_hypercare(handover=hypercare, by=owner, ends_on=target, exit_criteria="Five quiet days")
    half = planned("HALF-1")  # preparing, one item in each state an item action starts from
    p0, p1, p2, p3 = half.items.filter(side=Side.PROJECT).order_by("position")  # p3 is optional
    o0, o1, o2 = half.items.filter(side=Side.OPERATIONS).order_by("position")
    for item in (p0, p1, p3):
        hs.item_complete(item=item, by=manager, evidence_text="Done in sprint 4")
    hs.item_reopen(item=p3, by=manager, reason="One more check")  # open, with evidence: completes without any
    hs.item_waive(item=p2, by=manager, justification="The vendor runs it")  # pending the owner's approval
    hs.item_complete(item=o2, by=lead, evidence_url="https://wiki.example.com/on-call")
    hs.comment_add(handover=half, by=member, body="Runbook draft is on the wiki.")
    cancellable = planned("CANCEL-1")
    secret = planned("SECRET-1", confidential=True)  # for the viewer, this does not exist

    # Stall flags on the half-done and the confidential handover, in the administrator's inbox.
    now = timezone.now()
    flags = [
        StallFlag.objects.create(handover=h, rule=StallRule.IDLE, opened_at=now, detail={"days": 8})
        for h in (half, secret)
    ]
    Notification.objects.bulk_create(
        Notification(
            recipient=recipient,
            channel=Channel.IN_APP,
            flag=flag,
            kind=NotificationKind.OPENED,
            next_attempt_at=now,
            subject="Stalled: idle",
            body="Nothing moved for 8 days.",
            created_at=now,
        )
        for flag in flags
        for recipient in (admin, viewer)
    )
    # Webhooks, each with deliveries in its log.
    hooks = [
        webhooks.webhook_create(by=admin, url=f"https://hooks.example.com/{n}", events=["handover.submitted"])
        for n in range(3)
    ]
    event = Event.objects.create(type=EventType.HANDOVER_SUBMITTED, payload={"handover": ready.pk}, created_at=now)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event=event,
            subscription=hook,
            status=DeliveryStatus.SENT,
            attempts=1,
            next_attempt_at=now,
            delivered_at=now,
            last_status_code=204,
            created_at=now,
        )
        for hook in hooks
    )

    _, admin_token = tokens.token_create(by=admin, name="schemathesis")
    _, viewer_token = tokens.token_create(by=viewer, name="schemathesis viewer")
    tokens.token_create(by=admin, name="spare")  # something for DELETE tokens/{id}/ to revoke
    secret_item = ChecklistItem.objects.filter(handover=secret).order_by("pk").first()
    handovers = [ready, *submitted, accepted, hypercare, half, cancellable, secret]
    return Seeded(
        admin_token=admin_token,
        viewer_token=viewer_token,
        by_resource={
            "projects": [h.project_id for h in handovers],
            "handovers": [h.pk for h in handovers],
            "items": [*_ids(ChecklistItem.objects.filter(handover=half)), secret_item.pk],
            "conditions": _ids(Condition.objects.all()),
            "teams": [team.pk],
            "services": [service.pk],
            "kpis": _ids(kpi.service.kpis.all()),
            "templates": [template.pk],
            "tokens": _ids(ApiToken.objects.all()),
            "stalls": [f.pk for f in flags],
            "notifications": _ids(Notification.objects.all()),
            "webhooks": [h.pk for h in hooks],
        },
        # Each action aimed at objects in the state it starts from, none shared with an action that runs before it
        # and would move them on (operations run in the schema's order, DELETEs last).
        by_action={
            "handovers submit": [ready.pk],
            "handovers accept-with-conditions": [submitted[0].pk],
            "handovers accept": [submitted[1].pk],
            "handovers return": [submitted[2].pk],
            "handovers start-hypercare": [accepted.pk],
            "handovers complete": [hypercare.pk],
            "handovers cancel": [cancellable.pk],
            "handovers items": [half.pk, secret.pk],
            "handovers comments": [half.pk, secret.pk],
            "items complete": [p3.pk],
            "items verify": [p0.pk],
            "items send-back": [p1.pk],
            "items approve-waiver": [p2.pk],
            "items not-applicable": [o0.pk],
            "items waive": [o1.pk],
            "items reopen": [o2.pk],
            "projects transition": [half.project_id, cancellable.project_id],
        },
        # The viewer: one object they may see and one that, being confidential, does not exist for them.
        for_viewer={
            "projects": [half.project_id, secret.project_id],
            "handovers": [half.pk, secret.pk],
            "items": [p0.pk, secret_item.pk],
            "stalls": [f.pk for f in flags],
            "notifications": _ids(Notification.objects.filter(recipient__username="viewer")),
        },
    )


def _strategy(operation, mode, seeded: Seeded, *, viewer: bool):
    """Cases for ``operation``; where it acts on one object, mostly cases aimed at the objects it can act on."""
    strategy = operation.as_strategy(generation_mode=mode)
    if "{id}" not in operation.path:
        return strategy
    aimed = [
        operation.as_strategy(generation_mode=mode, path_parameters={"id": pk})
        for pk in seeded.targets(operation.path, viewer=viewer)
    ]
    return st.one_of(*aimed, strategy)


def _fuzz(operation, mode, examples: int, answered: list[int], *, seeded: Seeded, viewer: bool) -> None:
    """Call ``operation`` with the cases generated in ``mode``, checking each response; collect the status codes."""
    headers = {"Authorization": f"Bearer {seeded.viewer_token if viewer else seeded.admin_token}"}

    @settings(HYPOTHESIS, max_examples=examples)
    @given(case=_strategy(operation, mode, seeded, viewer=viewer))
    def run(case):
        # The fuzzer may revoke any token, its own included (DELETE /tokens/{id}/): keep both usable.
        ApiToken.objects.filter(name__startswith="schemathesis").update(revoked_at=None)
        answered.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    run()


def _run_pass(schema, examples: dict, *, seeded: Seeded, viewer: bool) -> tuple[dict[str, list[int]], list[str]]:
    answered: dict[str, list[int]] = defaultdict(list)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # DELETEs last: the webhook and token they remove served every other operation first.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        for mode, count in examples.items():
            try:
                _fuzz(operation, mode, count, answered[operation.label], seeded=seeded, viewer=viewer)
            except Unsatisfiable:
                continue  # nothing invalid to generate (an operation without parameters or body)
            except (Exception, FailureGroup) as error:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} [{mode.value}]:\n{error}")
    return answered, failures


def _report(name: str, answered: dict[str, list[int]], started: float) -> int:
    cases = sum(len(codes) for codes in answered.values())
    print(f"schemathesis {name}: {cases} cases over {len(answered)} operations in {time.monotonic() - started:.1f}s")
    for label, codes in sorted(answered.items()):
        print("STATUS", name, label, sorted(set(codes)))
    return cases


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_api_conforms_to_its_schema_under_generated_requests(caplog):
    from config.wsgi import application

    # After the import: setting Django up applies its logging configuration, which resets this logger's level.
    caplog.set_level(logging.ERROR, logger="django.request")  # the expected 4xx would flood the output

    seeded = _seed()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

    started = time.monotonic()
    admin, admin_failures = _run_pass(schema, ADMIN, seeded=seeded, viewer=False)
    admin_cases = _report("admin", admin, started)
    started = time.monotonic()
    viewer, viewer_failures = _run_pass(schema, VIEWER, seeded=seeded, viewer=True)
    viewer_cases = _report("viewer", viewer, started)

    failures = admin_failures + [f"as a viewer: {failure}" for failure in viewer_failures]
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    assert admin_cases + viewer_cases >= MIN_CASES
    assert len(admin) >= 79
    # Not a vacuous pass: the tokens held throughout, and every collection was actually read.
    assert not [label for label, codes in {**admin, **viewer}.items() if 401 in codes]
    lists = [label for label in admin if label.startswith("GET ") and "{" not in label]
    assert len(lists) >= 12
    assert not [label for label in lists if 200 not in admin[label]]
    # The administrator's valid cases get past the rules: creates and moves succeed, not only refusals.
    succeeded = {label for label, codes in admin.items() if any(200 <= code < 300 for code in codes)}
    writes = {label for label in succeeded if not label.startswith("GET ")}
    assert {"POST /api/v1/projects/", "POST /api/v1/teams/", "POST /api/v1/tokens/"} <= writes, sorted(writes)
    assert len([label for label in writes if label.startswith("POST /api/v1/handovers/{id}/")]) >= 3, sorted(writes)
    assert len([label for label in writes if label.startswith("POST /api/v1/items/{id}/")]) >= 3, sorted(writes)
    assert "GET /api/v1/webhooks/{id}/deliveries/" in succeeded
    # The viewer is refused what needs a role, and does not see what is confidential.
    assert any(403 in codes for codes in viewer.values())
    assert 404 in viewer["GET /api/v1/handovers/{id}/"]
    assert 404 in viewer["GET /api/v1/projects/{id}/"]
