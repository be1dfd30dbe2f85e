"""Who may call what: every endpoint and action of /api/v1/ against every role.

The table ``CASES`` lists each route of ``config.urls`` (the router and ``me/``) with the status every role gets.
Each (case, role) pair is its own test with a fresh ``World`` (on people built once per module), rolled back after
it, so a state change in one never leaks into another.

Roles (docs/domain.md "People and roles"):

* ``anonymous``: no credentials: 401 with ``WWW-Authenticate`` everywhere.
* ``viewer``: signed in, no role. Their world's project is *not* confidential, so they read it but may not write.
* ``manager``, ``member``, ``owner`` (the handover's operations owner, a member of the receiving team), ``lead``
  (the receiving team's lead) and ``admin``: the participants. Their world's project *is* confidential, so each row
  also shows that a confidential project stays fully usable by the people who take part in it.
* ``outsider``: signed in, no part in the confidential project: it and its handovers, items, conditions and stall
  flags are 404 and absent from lists (and filtering a list by their ids answers as for ids that do not exist).

Also here: a read-only token may read everything and write nothing (403); a revoked, expired or unknown token is 401.

Allowed calls answer 2xx. A state-dependent action is set up in the state that lets it succeed; a few rows
also call it in the wrong state, where the allowed roles get the 409 that shows the role check passed.
States are set directly in the database: this file is about who may act; how the states are reached is covered
by the services' own tests.
"""

import copy
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from config.urls import api_v1
from handover import saved_views
from handover.choices import (
    Channel,
    ConditionStatus,
    DecisionKind,
    HandoverStatus,
    ItemStatus,
    NotificationKind,
    Risk,
    Side,
    StallRule,
    TemplateKind,
)
from handover.models import (
    ApiToken,
    ChecklistItem,
    ChecklistTemplate,
    Condition,
    Decision,
    Handover,
    Notification,
    SavedView,
    StallFlag,
    TemplateItem,
    WebhookSubscription,
)
from handover.readiness import recount
from handover.tokens import services as tokens
from operations.models import OperationsTeam
from projects.choices import Stage
from projects.models import Project
from tests.conftest import rolled_back_after
from tests.factories import KpiFactory, ServiceFactory

pytestmark = pytest.mark.django_db
User = get_user_model()

ROLES = ("anonymous", "viewer", "manager", "member", "owner", "lead", "admin", "outsider")
MANAGERS = ("manager", "admin")
OWNERS = ("owner", "lead", "admin")
PLANNERS = ("manager", "owner", "lead", "admin")
PARTICIPANTS = ("manager", "member", "owner", "lead", "admin")
TEAM_MANAGERS = ("lead", "admin")
TEAM_MEMBERS = ("owner", "lead", "admin")

API = "/api/v1"


@pytest.fixture(autouse=True)
def _quiet_refusals():
    """Hundreds of deliberate 4xx would each log a warning (slow and noisy); a 500 still logs."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _days(n: int) -> str:
    return (timezone.localdate() + dt.timedelta(days=n)).isoformat()


# ---------------------------------------------------------------------------------------------------- world


@dataclass(frozen=True)
class People:
    """The users, the receiving team and the (confidential) project every World starts from."""

    users: dict
    team: OperationsTeam
    project: Project

    @classmethod
    def build(cls) -> "People":
        # Built with plain queries rather than factories: the matrix makes some 700 worlds and must stay fast.
        names = ("admin", "viewer", "outsider", "manager", "member", "owner", "lead", "ops_member")
        users = User.objects.bulk_create(
            User(username=name, email=f"{name}@example.com", is_staff=name == "admin", password="!") for name in names
        )
        u = dict(zip(names, users, strict=True))
        team = OperationsTeam.objects.create(name="Service desk", lead=u["lead"])
        team.members.add(u["owner"], u["ops_member"])
        project = Project.objects.create(
            code="CRM-2026", name="CRM roll-out", manager=u["manager"], receiving_team=team, confidential=True
        )
        project.members.add(u["member"])
        return cls(u, team, project)


@pytest.fixture(scope="module")
def _people_once(django_db_setup, django_db_blocker) -> Iterator[People]:
    """``People``, built once per module (and process) in a transaction rolled back after its last test."""
    with rolled_back_after(django_db_blocker):
        yield People.build()


@pytest.fixture
def new_world(_people_once, db) -> Callable[[str], "World"]:
    """``new_world(role)``: a World on the module's ``People``; what the test writes is rolled back after it."""
    return lambda role: World(role, _people_once)


class World:
    """The people and objects one row needs; objects are built on first use, so each test makes only its own."""

    def __init__(self, role: str, people: People | None = None) -> None:
        self.role = role
        people = people or People.build()
        # Copies: a test may change its instances (signing in sets last_login), never those of the next test.
        self.users = {name: copy.copy(user) for name, user in people.users.items()}
        self.team = copy.copy(people.team)
        self.project = copy.copy(people.project)
        if role == "viewer":  # the project the viewer sees is not confidential
            Project.objects.filter(pk=self.project.pk).update(confidential=False)
            self.project.confidential = False

    def user(self, role: str):
        return self.users.get(role)

    @cached_property
    def template(self):
        template = ChecklistTemplate.objects.create(kind=TemplateKind.SOFTWARE_ROLLOUT, name="Small roll-out")
        TemplateItem.objects.bulk_create(
            TemplateItem(template=template, key=f"{risk}-{side}", title=f"{risk}/{side}", risk=risk, side=side)
            for risk in Risk
            for side in Side
        )
        return template

    @cached_property
    def handover(self):
        """A preparing handover in planning: per risk a mandatory item of each side, plus an optional one."""
        now = timezone.now()
        Project.objects.filter(pk=self.project.pk).update(stage=Stage.PLANNING, has_handover_plan=True)
        handover = Handover.objects.create(
            project=self.project,
            receiving_team=self.team,
            operations_owner=self.users["owner"],
            target_date=timezone.localdate() + dt.timedelta(days=30),
            status=HandoverStatus.PREPARING,
            status_changed_at=now,
            last_activity_at=now,
            created_at=now,
        )
        items = [
            ChecklistItem(handover=handover, title=f"{risk}/{side}", risk=risk, side=side, position=position)
            for position, (risk, side) in enumerate(((r, s) for r in Risk for s in Side), start=1)
        ]
        items.append(ChecklistItem(handover=handover, title="Nice to have", risk=Risk.ADOPTION, mandatory=False))
        # The item the rows act on: mandatory, project-side, assigned to the project member.
        items[0].assignee = self.users["member"]
        ChecklistItem.objects.bulk_create(items)
        return handover

    @cached_property
    def item(self):
        return self.handover.items.get(assignee=self.users["member"])

    @cached_property
    def condition(self):
        """An open condition of a conditional acceptance, owned by the project member."""
        now = timezone.now()
        self.set_handover(HandoverStatus.ACCEPTED_WITH_CONDITIONS, items=ItemStatus.VERIFIED)
        decision = Decision.objects.create(
            handover=self.handover,
            kind=DecisionKind.ACCEPTED_WITH_CONDITIONS,
            decided_by=self.users["owner"],
            decided_at=now,
            snapshot={},
        )
        return Condition.objects.create(
            handover=self.handover,
            decision=decision,
            text="Tune alert thresholds",
            owner=self.users["member"],
            due_date=timezone.localdate() + dt.timedelta(days=14),
        )

    @cached_property
    def stall(self) -> StallFlag:
        """An open idle flag on the handover."""
        return StallFlag.objects.create(handover=self.handover, rule=StallRule.IDLE, opened_at=timezone.now())

    def notification_for(self, name: str) -> Notification:
        now = timezone.now()
        return Notification.objects.create(
            recipient=self.users[name],
            channel=Channel.IN_APP,
            flag=self.stall,
            kind=NotificationKind.OPENED,
            subject="CRM-2026 is idle",
            body="Nothing happened for 7 days.",
            created_at=now,
            next_attempt_at=now,
        )

    @cached_property
    def own_notification(self) -> Notification:
        return self.notification_for(self.role if self.role in self.users else "ops_member")

    @cached_property
    def others_notification(self) -> Notification:
        return self.notification_for("ops_member")

    @cached_property
    def webhook(self) -> WebhookSubscription:
        return WebhookSubscription.objects.create(
            owner=self.users["admin"],
            url="https://hooks.example.com/handover",
            events=["handover.submitted"],
            secret="whsec_test",
        )

    @cached_property
    def service(self):
        return ServiceFactory(team=self.team, name="CRM platform")

    @cached_property
    def kpi(self):
        return KpiFactory(service=self.service, name="Weekly active users")

    def token_of(self, role: str) -> ApiToken:
        user = self.users.get(role) or self.users["ops_member"]
        token, _ = tokens.token_create(by=user, name=f"{user.username} tool")
        return token

    def saved_view_of(self, role: str) -> SavedView:
        user = self.users.get(role) or self.users["ops_member"]
        return saved_views.saved_view_create(user=user, page="portfolio", name="My team", filters={"team": "1"})

    @cached_property
    def own_saved_view(self) -> SavedView:
        return self.saved_view_of(self.role)

    @cached_property
    def others_saved_view(self) -> SavedView:
        return self.saved_view_of("ops_member")

    @cached_property
    def own_token(self) -> ApiToken:
        return self.token_of(self.role)

    @cached_property
    def others_token(self) -> ApiToken:
        return self.token_of("ops_member")

    # States, set in the database (see the module docstring).

    def set_handover(self, status: HandoverStatus, *, items: ItemStatus | None = None) -> None:
        now = timezone.now()
        handover = self.handover
        if items is not None:
            done = {"done_by": self.users["manager"], "done_at": now}
            verified = {"verified_by": self.users["owner"], "verified_at": now}
            extra = {**done, **verified} if items == ItemStatus.VERIFIED else done
            handover.items.update(status=items, status_changed_at=now, **extra)
            recount([handover.pk])  # the items were moved behind the services' back: count them as they are
        stamps = {"status": status, "status_changed_at": now}
        if status != HandoverStatus.PREPARING:
            stamps["submitted_at"] = now
        if status in (HandoverStatus.ACCEPTED, HandoverStatus.ACCEPTED_WITH_CONDITIONS, HandoverStatus.HYPERCARE):
            stamps.update(decided_at=now, accepted_at=now)
        if status == HandoverStatus.HYPERCARE:
            stamps.update(
                hypercare_started_at=now,
                hypercare_ends_on=timezone.localdate() + dt.timedelta(days=30),
                hypercare_exit_criteria="Fewer than 5 incidents a week",
            )
        Handover.objects.filter(pk=handover.pk).update(**stamps)

    def set_item(self, status: ItemStatus, **fields) -> None:
        now = timezone.now()
        ChecklistItem.objects.filter(pk=self.item.pk).update(status=status, status_changed_at=now, **fields)
        recount([self.handover.pk])


# ---------------------------------------------------------------------------------------------------- table


def roles(default, **overrides) -> dict:
    """Every role gets ``default`` except anonymous (401) and the ``overrides``."""
    table = dict.fromkeys(ROLES, default)
    table["anonymous"] = 401
    table.update(overrides)
    return table


def may(allowed: tuple[str, ...], ok=200, *, scoped: bool = True) -> dict:
    """``allowed`` get ``ok``; every other signed-in role 403, and the outsider 404 when the object is confidential."""
    table = roles(403, **dict.fromkeys(allowed, ok))
    if scoped:
        table["outsider"] = 404
    return table


READ = roles(200)
SCOPED_READ = roles(200, outsider=404)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: Callable[[World], str]
    expect: dict
    body: Callable[[World], object] | None = None
    setup: Callable[[World], None] | None = None
    # For lists of confidential things: the id that participants see and the outsider must not.
    listed: Callable[[World], int] | None = None

    def __str__(self) -> str:
        return self.name


def _ready_to_submit(w: World) -> None:
    w.set_handover(HandoverStatus.PREPARING, items=ItemStatus.DONE)


def _submitted_ready(w: World) -> None:
    w.set_handover(HandoverStatus.SUBMITTED, items=ItemStatus.VERIFIED)


def _item_done(w: World) -> None:
    w.set_item(ItemStatus.DONE, done_by=w.users["manager"], done_at=timezone.now())


def _condition_met(w: World) -> None:
    Condition.objects.filter(pk=w.condition.pk).update(
        status=ConditionStatus.MET, met_by=w.users["owner"], met_at=timezone.now()
    )


def _revoke_own_token(w: World) -> None:
    ApiToken.objects.filter(pk=w.own_token.pk).update(revoked_at=timezone.now())


CASES = [
    # projects
    Case("projects list", "get", lambda w: f"{API}/projects/", READ, listed=lambda w: w.project.pk),
    Case(
        "projects create",
        "post",
        lambda w: f"{API}/projects/",
        roles(201),
        body=lambda w: {"code": "NEW-1", "name": "New office"},
    ),
    Case("projects retrieve", "get", lambda w: f"{API}/projects/{w.project.pk}/", SCOPED_READ),
    Case(
        "projects partial_update",
        "patch",
        lambda w: f"{API}/projects/{w.project.pk}/",
        may(MANAGERS),
        body=lambda w: {"name": "CRM roll-out, phase 1"},
    ),
    Case(
        "projects partial_update (to another manager)",
        "patch",
        lambda w: f"{API}/projects/{w.project.pk}/",
        may(("admin",)),
        body=lambda w: {"manager": w.users["member"].pk},
    ),
    Case(
        "projects transition",
        "post",
        lambda w: f"{API}/projects/{w.project.pk}/transition/",
        may(MANAGERS),
        body=lambda w: {"to": "planning"},
    ),
    Case(
        "projects transition (gate blocks)",
        "post",
        lambda w: f"{API}/projects/{w.project.pk}/transition/",
        may(MANAGERS, (409, "gate_handover_plan")),
        body=lambda w: {"to": "execution"},
        setup=lambda w: Project.objects.filter(pk=w.project.pk).update(stage=Stage.PLANNING),
    ),
    Case("projects history", "get", lambda w: f"{API}/projects/{w.project.pk}/history/", SCOPED_READ),
    # teams
    Case("teams list", "get", lambda w: f"{API}/teams/", READ),
    Case(
        "teams create",
        "post",
        lambda w: f"{API}/teams/",
        may(("admin",), 201, scoped=False),
        body=lambda w: {"name": "Facilities"},
    ),
    Case("teams retrieve", "get", lambda w: f"{API}/teams/{w.team.pk}/", READ),
    Case(
        "teams partial_update",
        "patch",
        lambda w: f"{API}/teams/{w.team.pk}/",
        may(TEAM_MANAGERS, scoped=False),
        body=lambda w: {"description": "Staffed 24/7"},
    ),
    # services
    Case("services list", "get", lambda w: f"{API}/services/", READ, setup=lambda w: w.service),
    Case(
        "services create",
        "post",
        lambda w: f"{API}/services/",
        may(TEAM_MANAGERS, 201, scoped=False),
        body=lambda w: {"team": w.team.pk, "name": "Field service"},
    ),
    Case("services retrieve", "get", lambda w: f"{API}/services/{w.service.pk}/", READ),
    Case(
        "services partial_update",
        "patch",
        lambda w: f"{API}/services/{w.service.pk}/",
        may(TEAM_MANAGERS, scoped=False),
        body=lambda w: {"description": "The CRM and its integrations"},
    ),
    Case("services kpis GET", "get", lambda w: f"{API}/services/{w.service.pk}/kpis/", READ),
    Case(
        "services kpis POST",
        "post",
        lambda w: f"{API}/services/{w.service.pk}/kpis/",
        may(TEAM_MANAGERS, 201, scoped=False),
        body=lambda w: {"name": "Adoption rate", "target": "80"},
    ),
    # kpis
    Case("kpis list", "get", lambda w: f"{API}/kpis/", READ, setup=lambda w: w.kpi),
    Case("kpis retrieve", "get", lambda w: f"{API}/kpis/{w.kpi.pk}/", READ),
    Case(
        "kpis partial_update",
        "patch",
        lambda w: f"{API}/kpis/{w.kpi.pk}/",
        may(TEAM_MANAGERS, scoped=False),
        body=lambda w: {"target": "90"},
    ),
    Case("kpis readings GET", "get", lambda w: f"{API}/kpis/{w.kpi.pk}/readings/", READ),
    Case(
        "kpis readings POST",
        "post",
        lambda w: f"{API}/kpis/{w.kpi.pk}/readings/",
        may(TEAM_MEMBERS, 201, scoped=False),
        body=lambda w: {"value": "42.5"},
    ),
    # templates
    Case("templates list", "get", lambda w: f"{API}/templates/", READ, setup=lambda w: w.template),
    Case(
        "templates create",
        "post",
        lambda w: f"{API}/templates/",
        may(("admin",), 201, scoped=False),
        body=lambda w: {
            "kind": "custom",
            "name": "Pop-up store",
            "items": [{"key": "k", "title": "T", "risk": "failure"}],
        },
    ),
    Case("templates retrieve", "get", lambda w: f"{API}/templates/{w.template.pk}/", READ),
    Case(
        "templates partial_update",
        "patch",
        lambda w: f"{API}/templates/{w.template.pk}/",
        may(("admin",), scoped=False),
        body=lambda w: {"is_active": False},
    ),
    # handovers
    Case("handovers list", "get", lambda w: f"{API}/handovers/", READ, listed=lambda w: w.handover.pk),
    Case(
        "handovers create",
        "post",
        lambda w: f"{API}/handovers/",
        # The outsider cannot name the confidential project: 400 on `project`, as for an id that does not exist.
        may(MANAGERS, 201) | {"outsider": (400, "invalid")},
        body=lambda w: {
            "project": w.project.pk,
            "template": w.template.pk,
            "operations_owner": w.users["owner"].pk,
            "target_date": _days(30),
        },
    ),
    Case("handovers retrieve", "get", lambda w: f"{API}/handovers/{w.handover.pk}/", SCOPED_READ),
    Case(
        "handovers partial_update",
        "patch",
        lambda w: f"{API}/handovers/{w.handover.pk}/",
        may(PLANNERS),
        body=lambda w: {"deliverables": "The CRM, its runbooks and training"},
    ),
    Case(
        "handovers submit",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/submit/",
        may(MANAGERS),
        setup=_ready_to_submit,
    ),
    Case(
        "handovers submit (mandatory items open)",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/submit/",
        may(MANAGERS, (409, "submit_mandatory_open")),
    ),
    Case(
        "handovers accept",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/accept/",
        may(OWNERS),
        body=lambda w: {"note": "Ready"},
        setup=_submitted_ready,
    ),
    Case(
        "handovers accept (not submitted)",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/accept/",
        may(OWNERS, (409, "not_submitted")),
        body=lambda w: {},
    ),
    Case(
        "handovers accept-with-conditions",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/accept-with-conditions/",
        may(OWNERS),
        body=lambda w: {
            "conditions": [{"text": "Tune alerts", "owner": w.users["ops_member"].pk, "due_date": _days(14)}]
        },
        setup=_submitted_ready,
    ),
    Case(
        "handovers return",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/return/",
        may(OWNERS),
        body=lambda w: {"reason": "The runbook link is dead"},
        setup=lambda w: w.set_handover(HandoverStatus.SUBMITTED),
    ),
    Case(
        "handovers start-hypercare",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/start-hypercare/",
        may(OWNERS),
        body=lambda w: {"ends_on": _days(30), "exit_criteria": "Fewer than 5 incidents a week"},
        setup=lambda w: w.set_handover(HandoverStatus.ACCEPTED, items=ItemStatus.VERIFIED),
    ),
    Case(
        "handovers complete",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/complete/",
        may(OWNERS),
        body=lambda w: {},
        setup=lambda w: w.set_handover(HandoverStatus.HYPERCARE, items=ItemStatus.VERIFIED),
    ),
    Case(
        "handovers cancel",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/cancel/",
        may(PLANNERS),
        body=lambda w: {"reason": "Descoped"},
    ),
    Case("handovers items GET", "get", lambda w: f"{API}/handovers/{w.handover.pk}/items/", SCOPED_READ),
    Case(
        "handovers items POST",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/items/",
        may(PLANNERS, 201),
        body=lambda w: {"title": "Licence keys handed over", "risk": "inefficiency"},
    ),
    Case("handovers activity", "get", lambda w: f"{API}/handovers/{w.handover.pk}/activity/", SCOPED_READ),
    Case("handovers decisions", "get", lambda w: f"{API}/handovers/{w.handover.pk}/decisions/", SCOPED_READ),
    Case("handovers comments GET", "get", lambda w: f"{API}/handovers/{w.handover.pk}/comments/", SCOPED_READ),
    Case(
        "handovers comments POST",
        "post",
        lambda w: f"{API}/handovers/{w.handover.pk}/comments/",
        may(PARTICIPANTS, 201),
        body=lambda w: {"body": "Training is booked for the 12th."},
    ),
    Case("handovers conditions", "get", lambda w: f"{API}/handovers/{w.handover.pk}/conditions/", SCOPED_READ),
    # items
    Case("items list", "get", lambda w: f"{API}/items/", READ, listed=lambda w: w.item.pk),
    Case("items retrieve", "get", lambda w: f"{API}/items/{w.item.pk}/", SCOPED_READ),
    Case(
        "items partial_update",
        "patch",
        lambda w: f"{API}/items/{w.item.pk}/",
        may(PLANNERS),
        body=lambda w: {"due_date": _days(10)},
    ),
    Case(
        "items complete",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/complete/",
        # A project-side item: the manager or its assignee (the member); operations does not do project work.
        may(("manager", "member", "admin")),
        body=lambda w: {"evidence": {"text": "Runbook on the wiki"}},
    ),
    Case(
        "items verify",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/verify/",
        may(OWNERS),
        body=lambda w: {"note": "Checked"},
        setup=_item_done,
    ),
    Case(
        "items verify (not done)",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/verify/",
        may(OWNERS, (409, "item_transition")),
        body=lambda w: {},
    ),
    Case(
        "items send-back",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/send-back/",
        may(OWNERS),
        body=lambda w: {"reason": "The link is dead"},
        setup=_item_done,
    ),
    Case(
        "items waive",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/waive/",
        may(PLANNERS),
        body=lambda w: {"justification": "Covered by the vendor contract"},
    ),
    Case(
        "items approve-waiver",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/approve-waiver/",
        may(OWNERS),
        setup=lambda w: w.set_item(
            ItemStatus.WAIVED, waiver_justification="Vendor covers it", waiver_requested_by=w.users["manager"]
        ),
    ),
    Case(
        "items not-applicable",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/not-applicable/",
        may(PLANNERS),
        body=lambda w: {"reason": "No users outside the office"},
    ),
    Case(
        "items reopen",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/reopen/",
        # The assignee may take back their own done item.
        may(PARTICIPANTS),
        body=lambda w: {"reason": "Wrong runbook"},
        setup=_item_done,
    ),
    Case("items comments GET", "get", lambda w: f"{API}/items/{w.item.pk}/comments/", SCOPED_READ),
    Case(
        "items comments POST",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/comments/",
        may(PARTICIPANTS, 201),
        body=lambda w: {"body": "Which runbook?"},
    ),
    Case("items evidence GET", "get", lambda w: f"{API}/items/{w.item.pk}/evidence/", SCOPED_READ),
    Case(
        "items evidence POST",
        "post",
        lambda w: f"{API}/items/{w.item.pk}/evidence/",
        may(PARTICIPANTS, 201),
        body=lambda w: {"url": "https://wiki.example.com/runbook"},
    ),
    # conditions
    Case("conditions list", "get", lambda w: f"{API}/conditions/", READ, listed=lambda w: w.condition.pk),
    Case("conditions retrieve", "get", lambda w: f"{API}/conditions/{w.condition.pk}/", SCOPED_READ),
    Case(
        "conditions met",
        "post",
        lambda w: f"{API}/conditions/{w.condition.pk}/met/",
        # The condition's owner (here the project member) or the operations owner.
        may(("member", *OWNERS)),
        body=lambda w: {"note": "Thresholds tuned"},
    ),
    Case(
        "conditions met (already met)",
        "post",
        lambda w: f"{API}/conditions/{w.condition.pk}/met/",
        may(("member", *OWNERS), (409, "condition_met")),
        body=lambda w: {},
        setup=_condition_met,
    ),
    # tokens: everyone manages their own; an administrator sees every token
    Case("tokens list", "get", lambda w: f"{API}/tokens/", READ),
    Case("tokens create", "post", lambda w: f"{API}/tokens/", roles(201), body=lambda w: {"name": "CI"}),
    Case("tokens retrieve (own)", "get", lambda w: f"{API}/tokens/{w.own_token.pk}/", READ),
    Case("tokens retrieve (another's)", "get", lambda w: f"{API}/tokens/{w.others_token.pk}/", roles(404, admin=200)),
    Case("tokens destroy (own)", "delete", lambda w: f"{API}/tokens/{w.own_token.pk}/", roles(204)),
    Case("tokens destroy (another's)", "delete", lambda w: f"{API}/tokens/{w.others_token.pk}/", roles(404, admin=204)),
    Case(
        "tokens destroy (already revoked)",
        "delete",
        lambda w: f"{API}/tokens/{w.own_token.pk}/",
        roles((409, "token_revoked")),
        setup=_revoke_own_token,
    ),
    # me
    Case("me", "get", lambda w: f"{API}/me/", READ),
    # search: what each may see (the confidential project is the outsider's to miss)
    Case(
        "search",
        "get",
        lambda w: f"{API}/search/",
        READ,
        body=lambda w: {"q": "CRM-2026"},
        listed=lambda w: w.project.pk,
    ),
    # saved views: everyone's own, nobody else's (not even an administrator's)
    Case("saved-views list", "get", lambda w: f"{API}/saved-views/", READ),
    Case(
        "saved-views create",
        "post",
        lambda w: f"{API}/saved-views/",
        roles(201),
        body=lambda w: {"name": "Late", "page": "handovers", "filters": {"overdue": "true"}},
    ),
    Case("saved-views retrieve (own)", "get", lambda w: f"{API}/saved-views/{w.own_saved_view.pk}/", READ),
    Case(
        "saved-views retrieve (another's)", "get", lambda w: f"{API}/saved-views/{w.others_saved_view.pk}/", roles(404)
    ),
    Case("saved-views destroy (own)", "delete", lambda w: f"{API}/saved-views/{w.own_saved_view.pk}/", roles(204)),
    Case(
        "saved-views destroy (another's)",
        "delete",
        lambda w: f"{API}/saved-views/{w.others_saved_view.pk}/",
        roles(404),
    ),
    # stall flags: on the handovers you can see; the operations owner acts on them
    Case("stalls list", "get", lambda w: f"{API}/stalls/", READ, listed=lambda w: w.stall.pk),
    Case("stalls retrieve", "get", lambda w: f"{API}/stalls/{w.stall.pk}/", SCOPED_READ),
    Case(
        "stalls acknowledge",
        "post",
        lambda w: f"{API}/stalls/{w.stall.pk}/acknowledge/",
        may(OWNERS),
        body=lambda w: {"note": "Chasing the vendor"},
    ),
    Case(
        "stalls snooze",
        "post",
        lambda w: f"{API}/stalls/{w.stall.pk}/snooze/",
        may(OWNERS),
        body=lambda w: {"until": (timezone.now() + dt.timedelta(days=3)).isoformat(), "reason": "Vendor on leave"},
    ),
    # notifications: everyone's own inbox, nobody else's (not even an administrator's)
    Case("notifications list", "get", lambda w: f"{API}/notifications/", READ),
    # A notice about a confidential project is for those who still take part in it: the outsider's own is 404.
    Case(
        "notifications retrieve (own)",
        "get",
        lambda w: f"{API}/notifications/{w.own_notification.pk}/",
        SCOPED_READ,
    ),
    Case(
        "notifications retrieve (another's)",
        "get",
        lambda w: f"{API}/notifications/{w.others_notification.pk}/",
        roles(404),
    ),
    Case(
        "notifications read",
        "post",
        lambda w: f"{API}/notifications/{w.own_notification.pk}/read/",
        SCOPED_READ,
    ),
    Case("notifications read-all", "post", lambda w: f"{API}/notifications/read-all/", READ, body=lambda w: {}),
    # webhooks: administrators only
    Case("webhooks list", "get", lambda w: f"{API}/webhooks/", may(("admin",), scoped=False)),
    Case(
        "webhooks create",
        "post",
        lambda w: f"{API}/webhooks/",
        may(("admin",), 201, scoped=False),
        body=lambda w: {"url": "https://hooks.example.com/new"},  # no events: all of them
    ),
    Case("webhooks retrieve", "get", lambda w: f"{API}/webhooks/{w.webhook.pk}/", may(("admin",), scoped=False)),
    Case(
        "webhooks partial_update",
        "patch",
        lambda w: f"{API}/webhooks/{w.webhook.pk}/",
        may(("admin",), scoped=False),
        body=lambda w: {"description": "CI pipeline"},
    ),
    Case("webhooks destroy", "delete", lambda w: f"{API}/webhooks/{w.webhook.pk}/", may(("admin",), 204, scoped=False)),
    Case(
        "webhooks deliveries",
        "get",
        lambda w: f"{API}/webhooks/{w.webhook.pk}/deliveries/",
        may(("admin",), scoped=False),
    ),
]

EXPECTED_ROUTES = {
    # Every route of the router and me/, as (path pattern, method); checked against config.urls below.
    ("projects/", "get"),
    ("projects/", "post"),
    ("projects/{pk}/", "get"),
    ("projects/{pk}/", "patch"),
    ("projects/{pk}/transition/", "post"),
    ("projects/{pk}/history/", "get"),
    ("teams/", "get"),
    ("teams/", "post"),
    ("teams/{pk}/", "get"),
    ("teams/{pk}/", "patch"),
    ("services/", "get"),
    ("services/", "post"),
    ("services/{pk}/", "get"),
    ("services/{pk}/", "patch"),
    ("services/{pk}/kpis/", "get"),
    ("services/{pk}/kpis/", "post"),
    ("kpis/", "get"),
    ("kpis/{pk}/", "get"),
    ("kpis/{pk}/", "patch"),
    ("kpis/{pk}/readings/", "get"),
    ("kpis/{pk}/readings/", "post"),
    ("templates/", "get"),
    ("templates/", "post"),
    ("templates/{pk}/", "get"),
    ("templates/{pk}/", "patch"),
    ("handovers/", "get"),
    ("handovers/", "post"),
    ("handovers/{pk}/", "get"),
    ("handovers/{pk}/", "patch"),
    ("handovers/{pk}/submit/", "post"),
    ("handovers/{pk}/accept/", "post"),
    ("handovers/{pk}/accept-with-conditions/", "post"),
    ("handovers/{pk}/return/", "post"),
    ("handovers/{pk}/start-hypercare/", "post"),
    ("handovers/{pk}/complete/", "post"),
    ("handovers/{pk}/cancel/", "post"),
    ("handovers/{pk}/items/", "get"),
    ("handovers/{pk}/items/", "post"),
    ("handovers/{pk}/activity/", "get"),
    ("handovers/{pk}/decisions/", "get"),
    ("handovers/{pk}/comments/", "get"),
    ("handovers/{pk}/comments/", "post"),
    ("handovers/{pk}/conditions/", "get"),
    ("items/", "get"),
    ("items/{pk}/", "get"),
    ("items/{pk}/", "patch"),
    ("items/{pk}/complete/", "post"),
    ("items/{pk}/verify/", "post"),
    ("items/{pk}/send-back/", "post"),
    ("items/{pk}/waive/", "post"),
    ("items/{pk}/approve-waiver/", "post"),
    ("items/{pk}/not-applicable/", "post"),
    ("items/{pk}/reopen/", "post"),
    ("items/{pk}/comments/", "get"),
    ("items/{pk}/comments/", "post"),
    ("items/{pk}/evidence/", "get"),
    ("items/{pk}/evidence/", "post"),
    ("conditions/", "get"),
    ("conditions/{pk}/", "get"),
    ("conditions/{pk}/met/", "post"),
    ("tokens/", "get"),
    ("tokens/", "post"),
    ("tokens/{pk}/", "get"),
    ("tokens/{pk}/", "delete"),
    ("me/", "get"),
    ("search/", "get"),
    ("saved-views/", "get"),
    ("saved-views/", "post"),
    ("saved-views/{pk}/", "get"),
    ("saved-views/{pk}/", "delete"),
    ("stalls/", "get"),
    ("stalls/{pk}/", "get"),
    ("stalls/{pk}/acknowledge/", "post"),
    ("stalls/{pk}/snooze/", "post"),
    ("notifications/", "get"),
    ("notifications/{pk}/", "get"),
    ("notifications/{pk}/read/", "post"),
    ("notifications/read-all/", "post"),
    ("webhooks/", "get"),
    ("webhooks/", "post"),
    ("webhooks/{pk}/", "get"),
    ("webhooks/{pk}/", "patch"),
    ("webhooks/{pk}/", "delete"),
    ("webhooks/{pk}/deliveries/", "get"),
}


# -------------------------------------------------------------------------------------------------- helpers


def client_for(world: World, role: str) -> APIClient:
    client = APIClient()
    user = world.user(role)
    if user is not None:
        client.force_login(user)
    return client


def call(client: APIClient, case: Case, world: World):
    path = case.path(world)
    body = case.body(world) if case.body else None
    return getattr(client, case.method)(path, body, format="json")


def assert_status(response, expected, where: str) -> None:
    status, code = expected if isinstance(expected, tuple) else (expected, None)
    assert response.status_code == status, f"{where}: {response.status_code} {response.content[:500]!r}"
    if status >= 400:
        error = response.json()["error"]
        assert error["status"] == status, where
        assert set(error) == {"status", "code", "message", "fields"}, where
        if code:
            assert error["code"] == code, f"{where}: {error}"
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="api"', where


def _ids(response) -> set[int]:
    data = response.json()
    rows = data["results"] if isinstance(data, dict) else data
    return {row["id"] for row in rows}


# ---------------------------------------------------------------------------------------------------- tests


def test_the_table_covers_every_route_of_the_api():
    """Adding a route or a method without a row here fails: the table is the API's permission documentation."""
    routed = set()
    for pattern in api_v1:
        path = str(pattern.pattern).removeprefix("^").removesuffix("$")
        if path == "" or "format>" in path:
            continue  # the router's root view and format suffixes
        view = pattern.callback
        allowed = view.cls.http_method_names if hasattr(view, "cls") else view.view_class.http_method_names
        actions = getattr(view, "actions", None) or {m: m for m in ("get", "post") if hasattr(view.view_class, m)}
        # DRF adds "head" to a viewset's actions the first time one of its GETs is served: it mirrors "get".
        routed |= {(path.replace("(?P<pk>[^/.]+)", "{pk}"), m) for m in actions if m in allowed and m != "head"}
    assert routed == EXPECTED_ROUTES
    assert {(_pattern(case), case.method) for case in CASES} == EXPECTED_ROUTES


def _pattern(case: Case) -> str:
    """The route a case calls, with ids as {pk}."""
    return re.sub(r"/\d+/", "/{pk}/", case.path(_PathOnly()).removeprefix(f"{API}/"))


class _PathOnly:
    """Stands in for a World when only the shape of a case's path is wanted."""

    pk = 1

    def __getattr__(self, name):
        return self


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_permission_matrix(case: Case, role: str, new_world):
    world = new_world(role)
    if case.setup:
        case.setup(world)
    hidden_or_shown = case.listed(world) if case.listed else None
    response = call(client_for(world, role), case, world)
    assert_status(response, case.expect[role], f"{case.name} as {role}")
    if hidden_or_shown is not None and response.status_code == 200:
        listed = hidden_or_shown in _ids(response)
        assert listed == (role != "outsider"), f"{case.name} as {role}: listed={listed}"


WRITES = [case for case in CASES if case.method != "get"]
READS = [case for case in CASES if case.method == "get"]


def _token_client(world: World, role: str, **options) -> APIClient:
    _, raw = tokens.token_create(by=world.user(role), name="tool", **options)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.mark.parametrize("case", WRITES, ids=str)
def test_read_only_token_is_refused_every_write(case: Case, new_world):
    """An administrator's read-only token: whatever the role would allow, a write is 403."""
    world = new_world("admin")
    if case.setup:
        case.setup(world)
    response = call(_token_client(world, "admin", read_only=True), case, world)
    assert_status(response, (403, "permission_denied"), case.name)
    assert response.json()["error"]["message"] == "This API token is read-only."


@pytest.mark.parametrize("case", READS, ids=str)
def test_read_only_token_reads_everything(case: Case, new_world):
    world = new_world("admin")
    if case.setup:
        case.setup(world)
    response = call(_token_client(world, "admin", read_only=True), case, world)
    assert_status(response, case.expect["admin"], case.name)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.name in ("projects partial_update", "handovers submit", "items complete", "me")],
    ids=str,
)
def test_read_write_token_acts_as_its_user(case: Case, new_world):
    world = new_world("manager")
    if case.setup:
        case.setup(world)
    response = call(_token_client(world, "manager"), case, world)
    assert_status(response, case.expect["manager"], case.name)


def _revoked(world: World) -> str:
    token, raw = tokens.token_create(by=world.user("admin"), name="old")
    tokens.token_revoke(token=token, by=world.user("admin"))
    return raw


def _expired(world: World) -> str:
    token, raw = tokens.token_create(
        by=world.user("admin"), name="old", expires_at=timezone.now() + dt.timedelta(hours=1)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    return raw


def _of_inactive_user(world: World) -> str:
    _, raw = tokens.token_create(by=world.user("admin"), name="old")
    type(world.user("admin")).objects.filter(pk=world.user("admin").pk).update(is_active=False)
    return raw


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda w: f"Bearer {_revoked(w)}", id="revoked"),
        pytest.param(lambda w: f"Bearer {_expired(w)}", id="expired"),
        pytest.param(lambda w: f"Bearer {_of_inactive_user(w)}", id="inactive-user"),
        pytest.param(lambda w: "Bearer hov_not-a-token", id="unknown"),
        pytest.param(lambda w: "Bearer", id="no-secret"),
        pytest.param(lambda w: "Bearer a b", id="two-secrets"),
    ],
)
@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name in ("me", "projects list", "projects partial_update")], ids=str
)
def test_unusable_token_is_401(case: Case, credentials, new_world):
    world = new_world("admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=credentials(world))
    response = call(client, case, world)
    assert_status(response, 401, case.name)


@pytest.mark.parametrize(
    ("path", "filter_on"),
    [
        (f"{API}/handovers/", "project"),
        (f"{API}/items/", "handover"),
        (f"{API}/conditions/", "handover"),
        (f"{API}/stalls/", "handover"),
    ],
)
def test_list_filters_do_not_reveal_confidential_ids(path: str, filter_on: str, new_world):
    """GIVEN a confidential project with a handover, and an outsider
    WHEN the outsider filters a list by the project's (or handover's) id and by an id that does not exist
    THEN both answer alike: a confidential id is as unknown as a missing one."""
    world = new_world("outsider")
    target = world.project.pk if filter_on == "project" else world.handover.pk
    client = client_for(world, "outsider")
    hidden = client.get(path, {filter_on: target})
    missing = client.get(path, {filter_on: 999_999})
    assert hidden.status_code == missing.status_code, (hidden.content, missing.content)
    if hidden.status_code == 400:
        assert hidden.json()["error"]["fields"].keys() == missing.json()["error"]["fields"].keys() == {filter_on}
    else:
        assert _ids(hidden) == _ids(missing) == set()
