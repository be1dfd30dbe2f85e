"""Property-based tests of the whole API against its own OpenAPI schema (schemathesis).

The schema is loaded from the WSGI application, as a client would fetch it, and every operation is called with
cases generated from it (valid ones, and invalid ones that the API must refuse), as an administrator with an API
token, against a database seeded with a few projects, handovers and items. Each response must not be a server
error and must have a status code the schema documents for that operation. Failures of all operations are
collected, so that one run shows every finding.

The WSGI calls run in the test's thread, on the test's connection. The test is not wrapped in a transaction
(``transaction=True``), so that a database error in one request cannot poison the requests after it, and sequences
restart, so that the seeded rows have the small ids the cases aim at.
"""

import datetime as dt
import logging
import time
from collections import defaultdict

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

from handover import outbox
from handover import services as hs
from handover.choices import Channel, NotificationKind, StallRule
from handover.models import ApiToken, Notification, StallFlag
from operations import services as ops
from projects import services as ps
from projects.choices import Stage
from tests.factories import AdminFactory, ProjectFactory, ServiceFactory, TeamFactory, TemplateFactory, UserFactory

# Examples per operation and generation mode: the 79 operations give well over the 500 cases the suite promises.
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 5}
MIN_CASES = 500
SEEDED_IDS = (1, 2, 3)
CHECKS = [not_a_server_error, status_code_conformance]
HYPOTHESIS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _seed():
    """Two teams, three projects (one confidential), two handovers with worked items, a condition, a KPI, a stall
    flag with its notification and a webhook."""
    admin = AdminFactory(username="fuzz-admin")
    manager, member, lead, owner = (UserFactory(username=n) for n in ("pm", "dev", "lead", "owner"))
    team = TeamFactory(name="Service desk", lead=lead, members=[owner])
    TeamFactory(name="Network")
    service = ServiceFactory(team=team, name="CRM platform")
    kpi = ops.kpi_create(service=service, by=admin, name="Adoption", target=80, baseline=10, is_adoption=True)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=42)
    template = TemplateFactory(name="Roll-out")
    target = timezone.localdate() + dt.timedelta(days=30)

    handovers = []
    for code in ("CRM-1", "ERP-2"):
        project = ProjectFactory(code=code, manager=manager, receiving_team=team, members=[member])
        ps.project_transition(project=project, to=Stage.PLANNING, by=manager)
        handovers.append(
            hs.handover_create(
                project=project,
                template=template,
                operations_owner=owner,
                target_date=target,
                service=service,
                by=manager,
            )
        )
    ProjectFactory(code="SECRET-3", manager=manager, receiving_team=team, confidential=True)

    # The first handover is worked, submitted and accepted with a condition; the second is half done.
    first, second = handovers
    for item in first.items.all():
        by = manager if item.side == "project" else lead
        hs.item_complete(item=item, by=by, evidence_url="https://wiki.example.com/runbook")
    hs.handover_submit(handover=first, by=manager)
    for item in first.items.all():
        hs.item_verify(item=item, by=owner)
    hs.handover_accept_with_conditions(
        handover=first,
        by=owner,
        conditions=[{"text": "Tune alerts", "owner": owner, "due_date": target}],
    )
    for item in list(second.items.filter(side="project"))[:2]:
        hs.item_complete(item=item, by=manager, evidence_text="Done in sprint 4")
    hs.comment_add(handover=second, by=member, body="Runbook draft is on the wiki.")

    # A stall flag on the second handover, in the administrator's inbox, and a webhook subscription.
    now = timezone.now()
    flag = StallFlag.objects.create(handover=second, rule=StallRule.IDLE, opened_at=now, detail={"days": 8})
    Notification.objects.create(
        recipient=admin,
        channel=Channel.IN_APP,
        flag=flag,
        kind=NotificationKind.OPENED,
        next_attempt_at=now,
        subject="Stalled: idle",
        body="Nothing moved for 8 days.",
        created_at=now,
    )
    outbox.webhook_create(by=admin, url="https://hooks.example.com/handover", events=["handover.submitted"])

    _, raw = hs.token_create(by=admin, name="schemathesis")
    return raw


def _strategy(operation, mode):
    """Cases for ``operation``; where it acts on one object, also cases aimed at the seeded rows (ids 1 to 3)."""
    strategy = operation.as_strategy(generation_mode=mode)
    if "{id}" not in operation.path:
        return strategy
    seeded = [operation.as_strategy(generation_mode=mode, path_parameters={"id": pk}) for pk in SEEDED_IDS]
    return st.one_of(strategy, *seeded)


def _fuzz(operation, mode, answered: list[int], *, headers: dict, token: ApiToken) -> None:
    """Call ``operation`` with the cases generated in ``mode``, checking each response; collect the status codes."""

    @settings(HYPOTHESIS, max_examples=EXAMPLES[mode])
    @given(case=_strategy(operation, mode))
    def run(case):
        # The fuzzer may revoke any token, its own included (DELETE /tokens/{id}/): keep it usable.
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)
        answered.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    run()


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_api_conforms_to_its_schema_under_generated_requests(caplog):
    caplog.set_level(logging.ERROR, logger="django.request")  # the expected 4xx would flood the output
    from config.wsgi import application

    raw = _seed()
    token = ApiToken.objects.get(name="schemathesis")
    headers = {"Authorization": f"Bearer {raw}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

    answered: dict[str, list[int]] = defaultdict(list)
    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in EXAMPLES:
            try:
                _fuzz(operation, mode, answered[operation.label], headers=headers, token=token)
            except Unsatisfiable:
                continue  # nothing invalid to generate (an operation without parameters or body)
            except (Exception, FailureGroup) as error:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} [{mode.value}]:\n{error}")
    cases = sum(len(codes) for codes in answered.values())
    print(f"schemathesis: {cases} cases over {len(answered)} operations in {time.monotonic() - started:.1f}s")
    for label, codes in sorted(answered.items()):
        print("STATUS", label, sorted(set(codes)))

    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    assert cases >= MIN_CASES
    # Not a vacuous pass: the token held throughout, and every collection was actually read.
    assert not [label for label, codes in answered.items() if 401 in codes]
    lists = [label for label in answered if label.startswith("GET ") and "{" not in label]
    assert len(lists) >= 12
    assert not [label for label in lists if 200 not in answered[label]]
