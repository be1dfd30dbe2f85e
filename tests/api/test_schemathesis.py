"""Property-based tests of the whole API against its own OpenAPI schema (schemathesis), with every check.

The schema is loaded from the WSGI application, as a client would fetch it, and every operation is called with
cases generated from it, as ``schemathesis run --checks all`` would: the coverage phase (boundary values, each
parameter and field missing or of the wrong type, methods the schema does not declare) and the fuzzing phase, each
with valid (positive) and invalid (negative) data. Every response goes through every check schemathesis has: no
server error; a status code, content type, headers and body the schema documents; invalid data refused and valid
data accepted; 405 with ``Allow`` for an undeclared method; ... Failures of all operations are collected, so that
one run shows every finding.

Three passes, as the people who use the API:

* the project manager of every seeded project but one, and
* the operations owner of their handovers, each with their own token, so that valid cases get as far as the rules:
  the database holds handovers in every state an action starts from (ready to submit, submitted and verified,
  accepted, in hypercare, half done), items in every state, open conditions and stall flags, webhooks with
  deliveries; the cases aimed at an object are aimed at the ones the action can succeed on. A confidential project
  of someone else's does not exist for them. DELETEs run last, so that the objects they remove served every other
  operation first.
* anonymously: everything is 401 in the documented shape (and an undeclared method too: authentication comes
  first).

Valid data refused with 400 is a failure unless the refusal is one no schema can express, listed in
``SEMANTIC_REFUSALS`` (an id that names nothing, a name already taken, a date that must be in the future...).

The WSGI calls run in the test's thread, on the test's connection. The test is not wrapped in a transaction
(``transaction=True``), so that a database error in one request cannot poison the requests after it, and sequences
restart, so that the seeded rows have the small ids that generated cases hit too. The same budget runs everywhere,
sized for the suite's five minutes.
"""

import datetime as dt
import itertools
import json
import logging
import re
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
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

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

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass(frozen=True)
class Budget:
    """Cases per operation: the first ``coverage`` cases of the coverage phase (all of those for an undeclared
    method), and ``fuzz`` drawn cases per generation mode."""

    coverage: int
    fuzz: dict[GenerationMode, int]


PERSONAS = {
    "manager": Budget(coverage=3, fuzz={GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}),
    "owner": Budget(coverage=2, fuzz={GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}),
    None: Budget(coverage=2, fuzz={GenerationMode.POSITIVE: 1, GenerationMode.NEGATIVE: 1}),
}
# Not a vacuous run: at least this many cases per persona (the local budget gives about twice as many).
MIN_CASES = {"manager": 600, "owner": 300, None: 150}
HYPOTHESIS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# Valid data the API refuses for reasons the schema cannot state: what exists in the database, what is taken, the
# present moment, or two fields that must agree. Anything else refused with 400 is a gap in the schema.
SEMANTIC_REFUSALS = re.compile(
    "|".join(
        (
            r"object does not exist",  # a body naming an id of nothing (or of something confidential)
            r"Select a valid choice",  # a filter naming an id of nothing: 400 as documented on the parameter
            r"already exists|is taken|exists; edit it",  # unique names and codes
            r"must be in the future|must not be in the past|after|before",  # dates against today or each other
            r"Give a link or a note as evidence",  # evidence: a link or a note, at least one
            r"If-Match and version name different versions",  # the version twice, differently
            r"go together",  # readiness_risk with readiness_below
            r"Enter a valid URL",  # Django's URL rules are stricter than the format uri (label lengths, ...)
        )
    )
)


# Refusals that are about the input's form, which the schema must state; any other ``code`` names a rule of the
# domain (``snooze_in_past``, ``reason_required``: a reason is needed to reopen done work, ...).
FORM_CODES = {"invalid", "invalid_field", "parse_error", "invalid_if_match", "if_match_unsupported"}


def _semantic_refusal(response) -> bool:
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    if error["code"] not in FORM_CODES:
        return True
    messages = [m for messages in error["fields"].values() for m in messages] or [error["message"]]
    return all(SEMANTIC_REFUSALS.search(message) for message in messages)


def valid_data_accepted(ctx, response, case):
    """schemathesis' ``positive_data_acceptance``, less the refusals in ``SEMANTIC_REFUSALS``; a 412 (the version
    read is not the current one) depends on the state, as a 409 does."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError:
        if response.status_code == 412 or (response.status_code == 400 and _semantic_refusal(response)):
            return None
        raise


@dataclass
class Seeded:
    """What the cases are aimed at: for each resource, and for some actions, the ids worth calling it on."""

    tokens: dict[str, str] = field(default_factory=dict)
    by_resource: dict[str, list[int]] = field(default_factory=dict)
    by_action: dict[str, list[int]] = field(default_factory=dict)

    def targets(self, path: str) -> list[int]:
        parts = path.strip("/").split("/")  # api, v1, resource, {id}[, action]
        resource = parts[2]
        action = parts[4] if len(parts) > 4 else ""
        return self.by_action.get(f"{resource} {action}") or self.by_resource.get(resource, [])


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("pk").values_list("pk", flat=True))


def _seed() -> Seeded:
    """Two teams; five projects, one confidential; handovers in every state an action starts from; items in every
    state; a condition, stall flags with notifications, KPIs with readings, webhooks with deliveries."""
    admin = AdminFactory(username="fuzz-admin")
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
    # Confidential, and the manager and owner of it are others: for the personas, this does not exist.
    other_pm, other_owner = UserFactory(username="other-pm"), UserFactory(username="other-owner")
    team.members.add(other_owner)
    secret_project = ProjectFactory(code="SECRET-1", manager=other_pm, receiving_team=team, confidential=True)
    ps.project_transition(project=secret_project, to=Stage.PLANNING, by=other_pm)
    secret = hs.handover_create(
        project=secret_project, template=template, operations_owner=other_owner, target_date=target, by=other_pm
    )

    # Stall flags on the half-done and the confidential handover, in the personas' inboxes.
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
        for recipient in (manager, owner)
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

    personas = {"manager": manager, "owner": owner}
    secrets = {name: tokens.token_create(by=user, name=f"schemathesis {name}")[1] for name, user in personas.items()}
    for user in personas.values():
        tokens.token_create(by=user, name="spare")  # something for DELETE tokens/{id}/ to revoke
    secret_item = ChecklistItem.objects.filter(handover=secret).order_by("pk").first()
    handovers = [ready, *submitted, accepted, hypercare, half, cancellable, secret]
    return Seeded(
        tokens=secrets,
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
    )


def _aimed(operation, seeded: Seeded) -> list[int]:
    return seeded.targets(operation.path) if "{id}" in operation.path else []


def _strategy(operation, mode, seeded: Seeded):
    """Cases for ``operation``; where it acts on one object, mostly cases aimed at the objects it can act on."""
    strategy = operation.as_strategy(generation_mode=mode)
    aimed = [
        operation.as_strategy(generation_mode=mode, path_parameters={"id": pk}) for pk in _aimed(operation, seeded)
    ]
    return st.one_of(*aimed, strategy) if aimed else strategy


def _coverage_cases(schema, operation, seeded: Seeded, limit: int):
    """The coverage phase's cases, the first ``limit`` of them (every undeclared method among them), aimed at the
    seeded objects where they do not vary the id itself."""
    config = schema.config.generation_for(operation=operation, phase="coverage")
    cases = schema.iter_coverage_cases(operation, generation_modes=list(MODES), generation_config=config)
    targets = itertools.cycle(_aimed(operation, seeded) or [None])
    taken = 0
    for case in cases:
        scenario = str(getattr(case.meta.phase.data, "scenario", ""))
        undeclared_method = "unspecified_http_method" in scenario.lower()
        if taken >= limit and not undeclared_method:
            continue
        taken += not undeclared_method
        target = next(targets)
        varies_id = "path" in str(getattr(case.meta.phase.data, "parameter_location", "")).lower()
        if target is not None and not varies_id:
            case.path_parameters = {**(case.path_parameters or {}), "id": target}
        yield case


class Pass:
    """One persona's run: the status codes each operation answered, and every failure."""

    def __init__(self, schema, seeded: Seeded, persona: str | None):
        self.schema, self.seeded, self.persona = schema, seeded, persona
        self.headers = {"Authorization": f"Bearer {seeded.tokens[persona]}"} if persona else {}
        self.answered: dict[str, list[int]] = defaultdict(list)
        self.failures: list[str] = []

    def call(self, case) -> None:
        # The fuzzer may revoke any token, its own included (DELETE /tokens/{id}/): keep them usable.
        ApiToken.objects.filter(name__startswith="schemathesis").update(revoked_at=None)
        response = case.call_and_validate(
            headers=self.headers, excluded_checks=[positive_data_acceptance], additional_checks=[valid_data_accepted]
        )
        self.answered[case.operation.label].append(response.status_code)

    def run(self, budget: Budget) -> None:
        operations = [result.ok() for result in self.schema.get_all_operations()]
        # DELETEs last: the webhook and token they remove served every other operation first.
        operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
        for operation in operations:
            for case in _coverage_cases(self.schema, operation, self.seeded, budget.coverage):
                self._collect(operation, "coverage", self.call, case)
            for mode, count in budget.fuzz.items():
                self._collect(operation, mode.value, self._fuzz, operation, mode, count)

    def _fuzz(self, operation, mode, examples: int) -> None:
        @settings(HYPOTHESIS, max_examples=examples)
        @given(case=_strategy(operation, mode, self.seeded))
        def run(case):
            self.call(case)

        run()

    def _collect(self, operation, phase: str, function, *args) -> None:
        try:
            function(*args)
        except Unsatisfiable:
            pass  # nothing invalid to generate (an operation without parameters or body)
        except (Exception, FailureGroup) as error:  # collect every operation's failure, then report them all
            self.failures.append(f"as {self.persona or 'anonymous'}: {operation.label} [{phase}]:\n{error}")

    def report(self, started: float) -> int:
        cases = sum(len(codes) for codes in self.answered.values())
        name = self.persona or "anonymous"
        elapsed = time.monotonic() - started
        print(f"schemathesis {name}: {cases} cases over {len(self.answered)} operations in {elapsed:.1f}s")
        for label, codes in sorted(self.answered.items()):
            print("STATUS", name, label, sorted(set(codes)))
        return cases


@pytest.mark.parametrize("persona", list(PERSONAS), ids=lambda persona: persona or "anonymous")
@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_api_conforms_to_its_schema_under_generated_requests(caplog, persona):
    """Each persona's run is a test of its own, so that pytest-xdist runs the three side by side."""
    from config.wsgi import application

    # After the import: setting Django up applies its logging configuration, which resets this logger's level.
    caplog.set_level(logging.CRITICAL, logger="django.request")  # the expected 4xx would flood the output

    seeded = _seed()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

    started = time.monotonic()
    run = Pass(schema, seeded, persona)
    run.run(PERSONAS[persona])
    cases = run.report(started)

    assert not run.failures, f"{len(run.failures)} operations failed:\n\n" + "\n\n".join(run.failures)
    assert cases >= MIN_CASES[persona]
    answered = run.answered
    if persona is None:
        # Anonymously, nothing but 401 (and 404 for a path that names no endpoint, such as an id that is not a number).
        assert {code for codes in answered.values() for code in codes} == {401, 404}
        assert all(401 in codes for codes in answered.values())
        return
    # Not a vacuous pass: the token held throughout.
    assert not [label for label, codes in answered.items() if codes == [401] * len(codes)]
    writes = {
        label
        for label, codes in answered.items()
        if any(200 <= c < 300 for c in codes) and not label.startswith("GET ")
    }
    if persona == "owner":
        # Someone else's confidential project does not exist.
        assert 404 in answered["GET /api/v1/handovers/{id}/"]
        return
    assert len(answered) >= 79
    # Every collection was actually read.
    lists = [label for label in answered if label.startswith("GET ") and "{" not in label]
    assert len(lists) >= 12
    assert not [label for label in lists if 200 not in answered[label] and "webhooks" not in label]
    # Valid cases get past the rules: creates and moves succeed, not only refusals.
    assert {"POST /api/v1/projects/", "POST /api/v1/tokens/"} <= writes, sorted(writes)
    assert len([label for label in writes if label.startswith("POST /api/v1/handovers/{id}/")]) >= 3, sorted(writes)
    assert len([label for label in writes if label.startswith("POST /api/v1/items/{id}/")]) >= 3, sorted(writes)
    # What needs another role is refused, and what is someone else's confidential project does not exist.
    assert 403 in answered["POST /api/v1/teams/"]
    assert 404 in answered["GET /api/v1/projects/{id}/"]
