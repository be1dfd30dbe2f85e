"""``manage.py seed_demo``: a believable organisation to click through, built through the services.

Everything is created by the same service calls the API and the web UI make, as the people who would make them,
so the history (project events, handover activity, decisions, operations audit) is complete. The calls all run
now, within a second or two; to give the data believable ages, each call is made inside ``clock.at(story time)``,
which remembers the real interval the call ran in and when, in the story, it should have happened. Afterwards
``StoryClock.rewrite`` moves every timestamp written inside such an interval to its story time with bulk
updates, keeping the order and the spacing of what one call wrote. That leaves handovers idle for more than a
week, submissions waiting for a decision, items done but unverified, targets passed, an adoption KPI below target
in hypercare and an overdue condition, so that stall detection has something to find.

Idempotent: if any demo project exists, it says so and changes nothing.
"""

import os
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import overload

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction
from django.db.models import Count
from django.utils import timezone

from config.errors import DomainError
from handover import checklists
from handover import services as hs
from handover.choices import HandoverStatus, ItemStatus, Risk, Side, TemplateKind
from handover.models import (
    Activity,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    Event,
    Evidence,
    Handover,
    WebhookDelivery,
)
from operations import services as ops
from operations.models import Kpi, KpiReading, OperationsEvent, OperationsTeam, Service
from projects import services as ps
from projects.choices import Stage
from projects.models import Project, ProjectEvent

User = get_user_model()

DEFAULT_PASSWORD = "handover-demo"

# (username, first name, last name, role shown at the end)
PEOPLE = [
    ("priya.shah", "Priya", "Shah", "project manager"),
    ("tom.becker", "Tom", "Becker", "project manager"),
    ("amara.okafor", "Amara", "Okafor", "project manager"),
    ("lucas.moreau", "Lucas", "Moreau", "project manager"),
    ("sofia.rossi", "Sofia", "Rossi", "project member"),
    ("daniel.kim", "Daniel", "Kim", "project member"),
    ("hannah.weber", "Hannah", "Weber", "project member"),
    ("omar.haddad", "Omar", "Haddad", "project member"),
    ("julia.novak", "Julia", "Novak", "project member"),
    ("grace.lindqvist", "Grace", "Lindqvist", "lead, IT Service Desk"),
    ("nina.berg", "Nina", "Berg", "operations owner, IT Service Desk"),
    ("raj.patel", "Raj", "Patel", "operations member, IT Service Desk"),
    ("chloe.martin", "Chloe", "Martin", "operations member, IT Service Desk"),
    ("marcus.adeyemi", "Marcus", "Adeyemi", "lead, Site Operations"),
    ("felix.wagner", "Felix", "Wagner", "operations owner, Site Operations"),
    ("isabel.garcia", "Isabel", "Garcia", "operations member, Site Operations"),
    ("elena.petrova", "Elena", "Petrova", "lead, Workplace & Facilities"),
    ("sam.oconnor", "Sam", "O'Connor", "operations owner, Workplace & Facilities"),
    ("ines.costa", "Inês", "Costa", "operations member, Workplace & Facilities"),
    ("kenji.watanabe", "Kenji", "Watanabe", "lead, Finance Operations"),
    ("laura.fischer", "Laura", "Fischer", "operations owner, Finance Operations"),
    ("ben.carter", "Ben", "Carter", "operations member, Finance Operations"),
    ("mia.jensen", "Mia", "Jensen", "viewer"),
]


@dataclass(frozen=True)
class TeamSpec:
    name: str
    description: str
    lead: str
    owner: str  # the operations owner of this team's handovers
    doer: str  # the member who works operations-side items
    members: tuple[str, ...]
    services: tuple[str, ...]
    thresholds: dict[str, int] = field(default_factory=dict)


TEAMS = [
    TeamSpec(
        "IT Service Desk",
        "First and second line for business applications, identity and collaboration tools.",
        lead="grace.lindqvist",
        owner="nina.berg",
        doer="raj.patel",
        members=("nina.berg", "raj.patel", "chloe.martin"),
        services=("CRM platform", "Single sign-on", "Collaboration suite"),
    ),
    TeamSpec(
        "Site Operations",
        "Runs the fulfilment and returns sites, their automation and their staff rosters.",
        lead="marcus.adeyemi",
        owner="felix.wagner",
        doer="isabel.garcia",
        members=("felix.wagner", "isabel.garcia"),
        services=("Fulfilment site FC-14", "Returns centre RC-2"),
        # Sites ship every day: a submission waiting two days is already late.
        thresholds={"review_overdue_days": 2, "escalation_days": 2},
    ),
    TeamSpec(
        "Workplace & Facilities",
        "Offices, desks, meeting rooms, building services and the landlord relationship.",
        lead="elena.petrova",
        owner="sam.oconnor",
        doer="ines.costa",
        members=("sam.oconnor", "ines.costa"),
        services=("Berlin office (Friedrichstraße)", "Desk and room booking"),
    ),
    TeamSpec(
        "Finance Operations",
        "Purchase-to-pay, expenses and the month-end close.",
        lead="kenji.watanabe",
        owner="laura.fischer",
        doer="ben.carter",
        members=("laura.fischer", "ben.carter"),
        services=("Purchase-to-pay", "Expense management"),
    ),
]


@dataclass(frozen=True)
class KpiSpec:
    service: str
    name: str
    unit: str
    direction: str
    baseline: float
    target: float
    review_in_days: int  # negative: the review date has passed
    adoption: bool
    first: float  # the first reading
    last: float  # the latest reading
    since_days: int = 90  # readings from this many days ago until now, weekly


KPIS = [
    KpiSpec("CRM platform", "Weekly active CRM users", "%", "higher", 0, 85, -5, True, 22, 71, since_days=37),
    KpiSpec("CRM platform", "Priority 1 incidents per week", "count", "lower", 4, 1, 30, False, 5, 1),
    KpiSpec("Single sign-on", "Staff signing in with SSO", "%", "higher", 0, 95, -40, True, 88, 97),
    KpiSpec("Single sign-on", "Login success rate", "%", "higher", 97.5, 99.5, 60, False, 98.9, 99.6),
    KpiSpec("Collaboration suite", "First-contact resolution", "%", "higher", 62, 75, 45, False, 63, 69),
    KpiSpec("Fulfilment site FC-14", "Orders shipped per hour", "orders/h", "higher", 0, 1200, 40, False, 0, 310),
    KpiSpec("Fulfilment site FC-14", "Pick accuracy", "%", "higher", 99.0, 99.8, 40, False, 98.1, 99.2),
    KpiSpec(
        "Returns centre RC-2", "Returns processed per day", "returns/day", "higher", 1800, 2500, 30, False, 1750, 1950
    ),
    KpiSpec("Berlin office (Friedrichstraße)", "Desk booking adoption", "%", "higher", 0, 80, 20, True, 35, 64, 30),
    KpiSpec(
        "Berlin office (Friedrichstraße)", "Open facilities tickets", "tickets", "lower", 45, 15, 20, False, 52, 24
    ),
    KpiSpec("Purchase-to-pay", "Invoices paid on time", "%", "higher", 78, 95, 30, False, 79, 91),
    KpiSpec("Purchase-to-pay", "Purchase orders raised in the new tool", "%", "higher", 0, 90, 30, True, 40, 83, 20),
    KpiSpec("Expense management", "Expense claims submitted in the app", "%", "higher", 0, 80, 60, True, 0, 12, 30),
]

DEMO_CODES = (
    "CRM-2026",
    "SSO-2025",
    "FC14-LAUNCH",
    "RC2-SORTER",
    "BER-MOVE",
    "P2P-REDESIGN",
    "EXPENSES-APP",
    "DESK-BOOKING",
    "HR-PORTAL",
    "NORDIC-INTEGRATION",
    "WMS-UPGRADE",
)

# Every table a seeding step writes timestamps to; ``StoryClock.rewrite`` moves them.
STORY_MODELS: Sequence[type[models.Model]] = (
    OperationsTeam,
    Service,
    Kpi,
    OperationsEvent,
    Project,
    ProjectEvent,
    ChecklistTemplate,
    Handover,
    ChecklistItem,
    Evidence,
    Comment,
    Decision,
    Condition,
    Activity,
    Event,  # webhook events and deliveries, if a subscription exists when the demo is seeded
    WebhookDelivery,
)


class StoryClock:
    """Remembers when each seeding step really ran, and when in the story it should appear to have happened."""

    def __init__(self) -> None:
        self.now = timezone.now()
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []
        self._story: list[datetime] = []

    def ago(self, days: float) -> datetime:
        """``days`` before today, in working hours: whole days at 17:00, fractions earlier the same day.

        Larger ``days`` is always earlier, so a story told in decreasing ``days`` stays in order.
        """
        whole = int(days)
        day = timezone.localdate(self.now) - timedelta(days=whole)
        moment = timezone.make_aware(datetime.combine(day, time(17))) - timedelta(hours=8 * (days - whole))
        return min(moment, self.now - timedelta(minutes=5))

    def date_ago(self, days: int) -> date:
        return timezone.localdate(self.now) - timedelta(days=days)

    @contextmanager
    def at(self, days_ago: float) -> Iterator[None]:
        start = timezone.now()
        while self._ends and start <= self._ends[-1]:  # keep the intervals disjoint, even on a coarse clock
            start = timezone.now()
        yield
        end, story = timezone.now(), self.ago(days_ago)
        if self._story and self._story[-1] <= story <= self._story[-1] + (self._ends[-1] - self._starts[-1]):
            # Two steps told at the same moment happened one after the other: keep them in that order.
            story = self._story[-1] + (self._ends[-1] - self._starts[-1]) + timedelta(microseconds=1)
        self._starts.append(start)
        self._ends.append(end)
        self._story.append(story)

    @overload
    def story_time(self, real: datetime) -> datetime: ...
    @overload
    def story_time(self, real: None) -> None: ...
    def story_time(self, real: datetime | None) -> datetime | None:
        if real is None:
            return None
        index = bisect_right(self._starts, real) - 1
        if index < 0 or real > self._ends[index]:
            return real
        return self._story[index] + (real - self._starts[index])

    def rewrite(self) -> None:
        """Move every timestamp written during a step to its story time.

        Plain UPDATEs, not ``save()``: nothing in the domain changes, so no service is involved, and ``auto_now``
        fields would otherwise be reset to now. One statement run for every row (``executemany``) rather than
        ``bulk_update``, whose CASE expression over a few thousand rows takes longer than the whole seeding.
        """
        for model in STORY_MODELS:
            fields = [f for f in model._meta.concrete_fields if isinstance(f, models.DateTimeField)]
            rows = []
            for pk, *values in model._default_manager.values_list("pk", *(f.attname for f in fields)):
                story = [self.story_time(value) for value in values]
                if story != values:
                    rows.append(
                        [f.get_db_prep_save(value, connection) for f, value in zip(fields, story, strict=True)] + [pk]
                    )
            if rows:
                quote = connection.ops.quote_name
                assignments = ", ".join(f"{quote(column_of(f))} = %s" for f in fields)
                with connection.cursor() as cursor:
                    cursor.executemany(
                        f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
                        f"WHERE {quote(column_of(model._meta.pk))} = %s",
                        rows,
                    )
        # The checklist frozen into each decision carries the same timestamps, as text.
        decisions = list(Decision.objects.filter(handover__project__code__in=DEMO_CODES))
        for decision in decisions:
            for item in decision.snapshot.get("items", []):
                for key in ("done_at", "verified_at"):
                    item[key] = self._story_iso(item.get(key))
                for evidence in item.get("evidence", []):
                    evidence["added_at"] = self._story_iso(evidence.get("added_at"))
        Decision.objects.bulk_update(decisions, ["snapshot"])

    def _story_iso(self, value: str | None) -> str | None:
        return None if value is None else self.story_time(datetime.fromisoformat(value)).isoformat()


def column_of(model_field: models.Field) -> str:
    """The column of a concrete field (the stubs allow ``None``, which only non-concrete fields have)."""
    if model_field.column is None:
        raise CommandError(f"{model_field} has no column.")
    return model_field.column


def template_key(item: ChecklistItem) -> str:
    """The key of the template item a demo checklist item was copied from; every demo item has one."""
    if item.template_item is None:
        raise CommandError(f"Checklist item {item.pk} has no template item.")
    return item.template_item.key


@dataclass
class Plan:
    """One project's handover while it is being seeded."""

    handover: Handover
    manager: object
    owner: object
    doer: object
    members: list
    items: dict[str, ChecklistItem]

    @property
    def code(self) -> str:
        return self.handover.project.code

    def mandatory(self, *, side: str | None = None, exclude: Sequence[str] = ()) -> list[ChecklistItem]:
        return [
            item
            for key, item in self.items.items()
            if item.mandatory and key not in exclude and (side is None or item.side == side)
        ]


EVIDENCE_NOTES = (
    "Walked through with the operations owner; sign-off recorded in the minutes.",
    "Signed off in the weekly operations review.",
    "Checked against the acceptance criteria; screenshots in the linked folder.",
    "Agreed by both sides in the readiness meeting.",
)


class Demo:
    """Builds the demo organisation, one project story at a time."""

    def __init__(self, *, admin, password_hash: str) -> None:
        self.clock = StoryClock()
        self.admin = admin
        self.password_hash = password_hash
        self.users: dict[str, object] = {}
        self.teams: dict[str, OperationsTeam] = {}
        self.team_specs = {spec.name: spec for spec in TEAMS}
        self.services: dict[str, Service] = {}
        self.templates: dict[str, ChecklistTemplate] = {}
        self.overdue_conditions: list[tuple[Condition, date]] = []
        self.hypercare_ended: list[tuple[Handover, int]] = []
        self.rng = random.Random(2026)  # the same demo every time

    # ----------------------------------------------------------------------------------------- organisation

    def build(self) -> None:
        self.people()
        with self.clock.at(270):
            for template, _changed in checklists.install_default_templates():
                self.templates[template.kind] = template
        self.organisation()
        self.crm()
        self.sso()
        self.fc14()
        self.rc2()
        self.berlin()
        self.p2p()
        self.expenses()
        self.desk_booking()
        self.hr_portal()
        self.early_projects()
        self.clock.rewrite()
        self.after_rewrite()

    def people(self) -> None:
        joined = self.clock.ago(400)
        for username, first, last, _role in PEOPLE:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create(
                    username=username,
                    email=f"{username}@example.com",
                    password=self.password_hash,
                    first_name=first,
                    last_name=last,
                    date_joined=joined,
                )
            self.users[username] = user

    def u(self, username: str):
        return self.users[username]

    def organisation(self) -> None:
        for days, spec in zip((260, 259, 258, 257), TEAMS, strict=True):
            with self.clock.at(days):
                team = ops.team_create(
                    by=self.admin,
                    name=spec.name,
                    description=spec.description,
                    lead=self.u(spec.lead),
                    members=[self.u(m) for m in spec.members],
                    **spec.thresholds,
                )
            self.teams[spec.name] = team
            for offset, name in enumerate(spec.services):
                with self.clock.at(days - 0.5 - offset * 0.1):
                    self.services[name] = ops.service_create(team=team, by=self.u(spec.lead), name=name)
        for index, kpi_spec in enumerate(KPIS):
            service = self.services[kpi_spec.service]
            lead = self.u(self.team_specs[service.team.name].lead)
            with self.clock.at(250 - index * 0.2):
                kpi = ops.kpi_create(
                    service=service,
                    by=lead,
                    name=kpi_spec.name,
                    unit=kpi_spec.unit,
                    direction=kpi_spec.direction,
                    baseline=kpi_spec.baseline,
                    target=kpi_spec.target,
                    review_date=self.clock.date_ago(-kpi_spec.review_in_days),
                    is_adoption=kpi_spec.adoption,
                )
            self.readings(kpi, kpi_spec, by=self.u(self.team_specs[service.team.name].doer))

    def readings(self, kpi: Kpi, spec: KpiSpec, *, by) -> None:
        """Weekly readings trending from ``first`` to ``last``, with a little noise."""
        days = list(range(spec.since_days, 0, -7))
        spread = abs(spec.last - spec.first) or 1
        for index, day in enumerate(days):
            share = index / max(len(days) - 1, 1)
            value = spec.first + (spec.last - spec.first) * share
            if 0 < index < len(days) - 1:
                value += self.rng.uniform(-0.04, 0.04) * spread
            value = max(value, 0)
            ops.kpi_reading_add(
                kpi=kpi, by=by, value=Decimal(f"{value:.1f}"), measured_at=self.clock.ago(day), note="Weekly report"
            )

    # ---------------------------------------------------------------------------------------------- helpers

    def project(self, days: float, code: str, name: str, manager: str, **fields) -> Project:
        members = [self.u(m) for m in fields.pop("members", ())]
        team = fields.pop("team", None)
        with self.clock.at(days):
            return ps.project_create(
                by=self.u(manager),
                code=code,
                name=name,
                members=members,
                receiving_team=self.teams[team] if team else None,
                **fields,
            )

    def move(self, project: Project, days: float, to: str, reason: str = "") -> Project:
        with self.clock.at(days):
            return ps.project_transition(project=project, to=to, by=project.manager, reason=reason)

    def plan(
        self, project: Project, days: float, *, kind: str, service: str, target_in: int, deliverables: str
    ) -> Plan:
        if project.receiving_team is None:
            raise CommandError(f"Demo project {project.code} has no receiving team.")
        spec = self.team_specs[project.receiving_team.name]
        with self.clock.at(days):
            handover = hs.handover_create(
                project=project,
                template=self.templates[kind],
                operations_owner=self.u(spec.owner),
                target_date=self.clock.date_ago(-target_in),
                by=project.manager,
                service=self.services[service],
                deliverables=deliverables,
            )
        items = {template_key(item): item for item in handover.items.select_related("template_item")}
        return Plan(
            handover=handover,
            manager=project.manager,
            owner=self.u(spec.owner),
            doer=self.u(spec.doer),
            members=list(project.members.order_by("username")),
            items=items,
        )

    def assign(self, plan: Plan, days: float, *, due_in: int) -> None:
        """The manager hands a few adoption items to the members, in turn."""
        if not plan.members:
            return
        adoption = [item for item in plan.mandatory(side=Side.PROJECT) if item.risk == Risk.ADOPTION]
        for index, item in enumerate(adoption[:4]):
            assignee = plan.members[index % len(plan.members)]
            with self.clock.at(days - index * 0.01):
                hs.item_update(item=item, by=plan.manager, assignee=assignee, due_date=self.clock.date_ago(-due_in))
            item.assignee = assignee

    def spread(self, count: int, start: float, end: float) -> list[float]:
        """``count`` story days from ``start`` to ``end`` days ago, in order."""
        if count <= 1:
            return [end] * count
        return [start - (start - end) * index / (count - 1) for index in range(count)]

    def complete(self, plan: Plan, items: Sequence[ChecklistItem], start: float, end: float) -> None:
        for item, days in zip(items, self.spread(len(items), start, end), strict=True):
            evidence_url = evidence_text = ""
            if item.side == Side.OPERATIONS:
                by = plan.doer
                evidence_text = self.rng.choice(EVIDENCE_NOTES)
            else:
                by = item.assignee or plan.manager
                evidence_url = f"https://wiki.example.com/{plan.code.lower()}/{template_key(item)}"
            with self.clock.at(days):
                hs.item_complete(item=item, by=by, evidence_url=evidence_url, evidence_text=evidence_text)
            item.status = ItemStatus.DONE

    def verify(self, plan: Plan, items: Sequence[ChecklistItem], start: float, end: float) -> None:
        for item, days in zip(items, self.spread(len(items), start, end), strict=True):
            with self.clock.at(days):
                hs.item_verify(item=item, by=plan.owner)
            item.status = ItemStatus.VERIFIED

    def comment(self, plan: Plan, days: float, by, body: str, item: str | None = None) -> None:
        with self.clock.at(days):
            hs.comment_add(handover=plan.handover, by=by, body=body, item=plan.items[item] if item else None)

    def waive(self, plan: Plan, days: float, key: str, justification: str, *, by) -> None:
        with self.clock.at(days):
            hs.item_waive(item=plan.items[key], by=by, justification=justification)
        plan.items[key].status = ItemStatus.WAIVED

    def approve_waiver(self, plan: Plan, days: float, key: str) -> None:
        with self.clock.at(days):
            hs.item_approve_waiver(item=plan.items[key], by=plan.owner)

    def not_applicable(self, plan: Plan, days: float, key: str, reason: str) -> None:
        with self.clock.at(days):
            hs.item_mark_not_applicable(item=plan.items[key], by=plan.manager, reason=reason)
        plan.items[key].status = ItemStatus.NOT_APPLICABLE

    def open_items(self, plan: Plan) -> list[ChecklistItem]:
        return [item for item in plan.mandatory() if item.status == ItemStatus.OPEN]

    def done_items(self, plan: Plan) -> list[ChecklistItem]:
        return [item for item in plan.mandatory() if item.status == ItemStatus.DONE]

    def submit(self, plan: Plan, days: float) -> None:
        with self.clock.at(days):
            hs.handover_submit(handover=plan.handover, by=plan.manager)

    def accept(self, plan: Plan, days: float, note: str) -> None:
        with self.clock.at(days):
            hs.handover_accept(handover=plan.handover, by=plan.owner, note=note)

    def hypercare(self, plan: Plan, days: float, *, ends_in: int, criteria: str) -> None:
        with self.clock.at(days):
            hs.handover_start_hypercare(
                handover=plan.handover, by=plan.owner, ends_on=self.clock.date_ago(-ends_in), exit_criteria=criteria
            )

    def finish_checklist(self, plan: Plan, start: float, end: float) -> None:
        """Complete every open mandatory item between ``start`` and ``end`` days ago."""
        self.complete(plan, self.open_items(plan), start, end)

    # ----------------------------------------------------------------------------------------- the projects

    def crm(self) -> None:
        """Accepted after one return, now in hypercare; adoption is below target at its review date."""
        project = self.project(
            130,
            "CRM-2026",
            "Customer CRM roll-out",
            "priya.shah",
            team="IT Service Desk",
            members=("sofia.rossi", "daniel.kim"),
            sponsor="Karin Holm, Head of Sales",
            description="Replaces the three regional contact databases with one CRM for sales and service.",
            planned_start=self.clock.date_ago(128),
            planned_handover=self.clock.date_ago(42),
        )
        project = self.move(project, 122, Stage.PLANNING)
        plan = self.plan(
            project,
            120,
            kind=TemplateKind.SOFTWARE_ROLLOUT,
            service="CRM platform",
            target_in=-42,
            deliverables="CRM tenant with sales and service modules, data migrated from the regional databases, "
            "integrations with the ERP and the telephony platform.",
        )
        self.assign(plan, 119, due_in=-55)
        project = self.move(project, 110, Stage.EXECUTION)
        self.comment(plan, 105, plan.owner, "We will need the runbooks at least two weeks before go-live.")
        self.waive(
            plan,
            101,
            "certificates-and-credentials-inventoried",
            "The CRM is SaaS: the vendor manages its certificates; our API credentials are in the vault inventory.",
            by=plan.owner,
        )
        self.finish_checklist(plan, 100, 52)
        self.submit(plan, 50)
        self.verify(plan, self.done_items(plan), 49.8, 47.4)
        with self.clock.at(47):
            hs.handover_return(
                handover=plan.handover,
                by=plan.owner,
                reason="The runbooks skip the ERP sync failure; training covered sales but not the service agents.",
                items=[plan.items["runbooks-accepted"], plan.items["training-delivered"]],
            )
        for key in ("runbooks-accepted", "training-delivered"):
            plan.items[key].status = ItemStatus.OPEN
        self.comment(plan, 46.5, plan.manager, "Service agent sessions booked for Tuesday and Thursday.")
        self.finish_checklist(plan, 45, 44)
        self.submit(plan, 43)
        self.verify(plan, self.done_items(plan), 41, 40)
        self.accept(plan, 39, "Thanks all: runbooks are now usable, and service agents are trained.")
        self.hypercare(
            plan,
            38,
            ends_in=7,
            criteria="No priority 1 incident for two weeks; weekly active users at 85% of licensed users.",
        )
        self.move(project, 37.9, Stage.MONITORING)
        self.comment(plan, 6, plan.owner, "Weekly active users stuck around 70%: the Nordics team still uses email.")

    def sso(self) -> None:
        """The whole journey: accepted on time, hypercare completed, project closed."""
        project = self.project(
            200,
            "SSO-2025",
            "Single sign-on for staff applications",
            "tom.becker",
            team="IT Service Desk",
            members=("daniel.kim",),
            sponsor="Ruth Adler, CIO",
            planned_start=self.clock.date_ago(198),
            planned_handover=self.clock.date_ago(82),
        )
        project = self.move(project, 190, Stage.PLANNING)
        plan = self.plan(
            project,
            188,
            kind=TemplateKind.SOFTWARE_ROLLOUT,
            service="Single sign-on",
            target_in=-82,
            deliverables="SSO for 46 staff applications, MFA enrolment, the joiner-mover-leaver integration with HR.",
        )
        self.assign(plan, 187, due_in=-100)
        project = self.move(project, 180, Stage.EXECUTION)
        self.not_applicable(
            plan,
            172,
            "vendor-and-licence-contracts",
            "Built on the identity platform we already license; no new contract.",
        )
        self.finish_checklist(plan, 170, 95)
        self.submit(plan, 92)
        self.verify(plan, self.done_items(plan), 91.5, 88)
        self.accept(plan, 84, "Accepted: everything verified.")
        self.hypercare(plan, 83, ends_in=30, criteria="Login success above 99.5% for three weeks.")
        self.move(project, 83, Stage.MONITORING)
        with self.clock.at(50):
            hs.handover_complete(handover=plan.handover, by=plan.owner, note="Exit criteria met for three weeks.")
        self.hypercare_ended.append((plan.handover, 50))
        project = self.move(project, 48, Stage.CLOSURE)
        self.move(project, 45, Stage.CLOSED)

    def fc14(self) -> None:
        """Submitted five days ago; operations has not decided, and many done items wait for verification."""
        project = self.project(
            120,
            "FC14-LAUNCH",
            "Fulfilment centre FC-14 launch",
            "amara.okafor",
            team="Site Operations",
            members=("omar.haddad", "julia.novak"),
            sponsor="Viktor Lund, VP Logistics",
            planned_start=self.clock.date_ago(118),
            planned_handover=self.clock.date_ago(-10),
        )
        project = self.move(project, 110, Stage.PLANNING)
        plan = self.plan(
            project,
            108,
            kind=TemplateKind.SITE_LAUNCH,
            service="Fulfilment site FC-14",
            target_in=10,
            deliverables="Building, racking and the goods-to-person robots of FC-14; WMS configuration; 140 staff.",
        )
        self.assign(plan, 107, due_in=8)
        project = self.move(project, 100, Stage.EXECUTION)
        todo = self.open_items(plan)
        self.complete(plan, todo[:20], 80, 35)
        self.verify(plan, [item for item in todo[:20] if item.side == Side.OPERATIONS][:5], 33, 30)
        self.complete(plan, todo[20:], 28, 8)
        self.comment(plan, 7, plan.manager, "Everything is in; the site acceptance test report is linked.")
        self.submit(plan, 5)

    def rc2(self) -> None:
        """Returned ten days ago with two items sent back; nothing has happened since and the target has passed."""
        project = self.project(
            110,
            "RC2-SORTER",
            "Returns centre robotic sorter",
            "lucas.moreau",
            team="Site Operations",
            members=("omar.haddad",),
            sponsor="Viktor Lund, VP Logistics",
            planned_handover=self.clock.date_ago(2),
        )
        project = self.move(project, 100, Stage.PLANNING)
        plan = self.plan(
            project,
            98,
            kind=TemplateKind.SITE_LAUNCH,
            service="Returns centre RC-2",
            target_in=-2,
            deliverables="A robotic sorter for returned parcels with its control software and maintenance contract.",
        )
        self.assign(plan, 97, due_in=20)
        project = self.move(project, 90, Stage.EXECUTION)
        self.finish_checklist(plan, 70, 16)
        self.submit(plan, 14)
        self.verify(plan, self.done_items(plan)[:20], 13, 11)
        with self.clock.at(10):
            hs.handover_return(
                handover=plan.handover,
                by=plan.owner,
                reason="The ramp-up test stopped at 60% of peak and the night shift has not accepted the procedures.",
                items=[plan.items["ramp-up-tested-at-peak"], plan.items["operating-procedures-accepted"]],
            )

    def berlin(self) -> None:
        """Accepted with conditions; one condition is overdue, one met, one open."""
        project = self.project(
            150,
            "BER-MOVE",
            "Berlin office relocation",
            "tom.becker",
            team="Workplace & Facilities",
            members=("hannah.weber",),
            sponsor="Claudia Brandt, COO",
            planned_handover=self.clock.date_ago(14),
        )
        project = self.move(project, 140, Stage.PLANNING)
        plan = self.plan(
            project,
            138,
            kind=TemplateKind.OFFICE_RELOCATION,
            service="Berlin office (Friedrichstraße)",
            target_in=-14,
            deliverables="Four floors at Friedrichstraße fitted out for 320 staff; the old Mitte office handed back.",
        )
        self.assign(plan, 137, due_in=20)
        project = self.move(project, 120, Stage.EXECUTION)
        self.waive(
            plan,
            101,
            "evacuation-drill-with-wardens",
            "The landlord runs a building-wide drill on the 14th of next month; wardens are trained and named.",
            by=plan.owner,
        )
        self.finish_checklist(plan, 100, 22)
        project = self.move(project, 20, Stage.MONITORING)
        self.submit(plan, 16)
        self.verify(plan, self.done_items(plan), 15.8, 13)
        with self.clock.at(12):
            hs.handover_accept_with_conditions(
                handover=plan.handover,
                by=plan.owner,
                note="Accepted; three snags stay with us as conditions.",
                conditions=[
                    hs.ConditionInput(
                        text="Replace the faulty access-control reader on the fourth-floor fire door.",
                        owner=self.u("ines.costa"),
                        due_date=self.clock.date_ago(-30),
                    ),
                    hs.ConditionInput(
                        text="Confirm the landlord's snagging list is closed.",
                        owner=self.u("sam.oconnor"),
                        due_date=self.clock.date_ago(-30),
                    ),
                    hs.ConditionInput(
                        text="Run the first quarterly desk-occupancy review with the business.",
                        owner=self.u("hannah.weber"),
                        due_date=self.clock.date_ago(-40),
                    ),
                ],
            )
        reader, snagging, _review = plan.handover.conditions.order_by("id")
        # The reader was due ten days after the acceptance, which in the story is two days ago; the service rightly
        # refuses a due date already past, so the date is moved with the rest of the story (``after_rewrite``).
        self.overdue_conditions.append((reader, self.clock.date_ago(2)))
        self.move(project, 5, Stage.CLOSURE)
        with self.clock.at(4):
            hs.condition_mark_met(condition=snagging, by=self.u("sam.oconnor"), note="Landlord confirmed by email.")

    def p2p(self) -> None:
        """Accepted first time, with a waiver the manager asked for and the owner approved."""
        project = self.project(
            140,
            "P2P-REDESIGN",
            "Purchase-to-pay redesign",
            "amara.okafor",
            team="Finance Operations",
            members=("julia.novak",),
            sponsor="Henrik Dahl, CFO",
            planned_handover=self.clock.date_ago(5),
        )
        project = self.move(project, 130, Stage.PLANNING)
        plan = self.plan(
            project,
            128,
            kind=TemplateKind.PROCESS_REDESIGN,
            service="Purchase-to-pay",
            target_in=-5,
            deliverables="One purchase-to-pay process for all entities, the new purchasing tool and its approval "
            "matrix, supplier onboarding.",
        )
        self.assign(plan, 127, due_in=20)
        project = self.move(project, 115, Stage.EXECUTION)
        self.waive(
            plan,
            95,
            "peak-volume-tested",
            "The quarter-end volume cannot be simulated; month-end ran at 140% of normal volume without backlog.",
            by=plan.manager,
        )
        self.approve_waiver(plan, 93, "peak-volume-tested")
        self.not_applicable(
            plan,
            92,
            "fallback-to-old-process",
            "The vendor switches the old tool off on go-live; a fallback is impossible and the risk is accepted.",
        )
        self.finish_checklist(plan, 90, 15)
        self.submit(plan, 12)
        self.verify(plan, self.done_items(plan), 11.8, 8)
        self.accept(plan, 6, "Accepted first time. Well prepared.")
        self.move(project, 5, Stage.MONITORING)

    def expenses(self) -> None:
        """Preparing, half done, past its target date and idle for nine days, a waiver waiting for approval."""
        project = self.project(
            90,
            "EXPENSES-APP",
            "Mobile expense claims",
            "lucas.moreau",
            team="Finance Operations",
            members=("daniel.kim", "sofia.rossi"),
            sponsor="Henrik Dahl, CFO",
            planned_handover=self.clock.date_ago(3),
        )
        project = self.move(project, 80, Stage.PLANNING)
        plan = self.plan(
            project,
            78,
            kind=TemplateKind.SOFTWARE_ROLLOUT,
            service="Expense management",
            target_in=-3,
            deliverables="The mobile app for expense claims with receipt capture, and its link to the payroll run.",
        )
        self.assign(plan, 77, due_in=10)
        project = self.move(project, 70, Stage.EXECUTION)
        self.not_applicable(
            plan, 45, "vendor-and-licence-contracts", "Built in-house on the existing mobile platform; no vendor."
        )
        todo = [item for item in self.open_items(plan) if template_key(item) != "load-tested"]
        first_half = todo[: len(todo) // 2]
        if plan.items["security-review"] not in first_half:  # operations sends this one back below
            first_half.append(plan.items["security-review"])
        self.complete(plan, first_half, 40, 18)
        self.verify(plan, self.done_items(plan)[:6], 17, 14)
        self.waive(
            plan,
            13,
            "load-tested",
            "Expense claims peak at 300 a day; the payroll platform's load test covers the integration.",
            by=plan.manager,
        )
        with self.clock.at(9):
            hs.item_send_back(
                item=plan.items["security-review"],
                by=plan.owner,
                reason="The penetration test covered the web app only; the mobile client is missing.",
            )
        self.comment(plan, 9, plan.owner, "Can we get the mobile pen-test booked?", item="security-review")

    def desk_booking(self) -> None:
        """A handover planned three days ago, being worked on: not stalled."""
        project = self.project(
            30,
            "DESK-BOOKING",
            "Hot-desk booking roll-out",
            "priya.shah",
            team="Workplace & Facilities",
            members=("hannah.weber",),
            sponsor="Claudia Brandt, COO",
            planned_handover=self.clock.date_ago(-45),
        )
        project = self.move(project, 20, Stage.PLANNING)
        plan = self.plan(
            project,
            3,
            kind=TemplateKind.SOFTWARE_ROLLOUT,
            service="Desk and room booking",
            target_in=45,
            deliverables="Desk booking app for all offices, the door-sign integration and the occupancy report.",
        )
        self.complete(plan, self.open_items(plan)[:3], 2.5, 1.5)
        self.comment(plan, 1.2, plan.manager, "Kick-off with facilities on Monday; invitations sent.")

    def hr_portal(self) -> None:
        """Cancelled: the handover was withdrawn, then the project."""
        project = self.project(
            160,
            "HR-PORTAL",
            "HR self-service portal",
            "tom.becker",
            team="IT Service Desk",
            members=("sofia.rossi",),
            sponsor="Ruth Adler, CIO",
            planned_handover=self.clock.date_ago(30),
        )
        project = self.move(project, 150, Stage.PLANNING)
        plan = self.plan(
            project,
            148,
            kind=TemplateKind.SOFTWARE_ROLLOUT,
            service="Collaboration suite",
            target_in=-30,
            deliverables="Self-service portal for leave, payslips and personal data.",
        )
        project = self.move(project, 140, Stage.EXECUTION)
        self.complete(plan, self.open_items(plan)[:6], 130, 100)
        reason = "Replaced by the group-wide HR platform chosen after the merger; the budget was withdrawn."
        with self.clock.at(60):
            hs.handover_cancel(handover=plan.handover, by=plan.manager, reason=reason)
        self.move(project, 59, Stage.CANCELLED, reason=reason)

    def early_projects(self) -> None:
        """A confidential project in planning, and a new one still looking for its receiving team."""
        project = self.project(
            25,
            "NORDIC-INTEGRATION",
            "Nordic acquisition integration",
            "priya.shah",
            team="Finance Operations",
            members=("omar.haddad",),
            sponsor="Henrik Dahl, CFO",
            confidential=True,
            description="Integrating the acquired company's finance and IT. Confidential until the announcement.",
        )
        self.move(project, 18, Stage.PLANNING)
        self.project(
            4,
            "WMS-UPGRADE",
            "Warehouse management system upgrade",
            "amara.okafor",
            sponsor="Viktor Lund, VP Logistics",
            description="Upgrade of the WMS to the vendor's supported release; receiving team to be agreed.",
        )

    # ------------------------------------------------------------------------------------ after the rewrite

    def after_rewrite(self) -> None:
        """Dates (not timestamps) that the services set from today's date, moved to the story's dates."""
        KpiReading.objects.filter(kpi__service__in=self.services.values()).update(created_at=models.F("measured_at"))
        for handover in Handover.objects.filter(project__code__in=DEMO_CODES, accepted_at__isnull=False):
            Project.objects.filter(pk=handover.project_id).update(
                actual_handover=timezone.localdate(handover.accepted_at)
            )
        for handover, days in self.hypercare_ended:
            Handover.objects.filter(pk=handover.pk).update(hypercare_ends_on=self.clock.date_ago(days))
        for condition, due in self.overdue_conditions:
            Condition.objects.filter(pk=condition.pk).update(due_date=due)


class Command(BaseCommand):
    help = "Create a demo organisation (teams, projects, handovers in every state) through the services."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--password",
            # Demo-only: the one place this command reads the environment, for the demo accounts' password.
            default=os.environ.get("DEMO_ADMIN_PASSWORD", DEFAULT_PASSWORD),
            help="Password of the demo accounts (default: $DEMO_ADMIN_PASSWORD or %(default)r).",
        )

    def handle(self, *args, **options) -> None:
        password = options["password"]
        if Project.objects.filter(code__in=DEMO_CODES).exists():
            self.stdout.write("Demo data already present; nothing changed.")
            self.login_hint(password)
            return
        try:
            with transaction.atomic():
                # Hashed once for every demo account: a deliberately slow hash two dozen times would be most
                # of the run.
                password_hash = make_password(password)
                admin, admin_created = self.admin_user(password_hash)
                Demo(admin=admin, password_hash=password_hash).build()
        except DomainError as error:
            raise CommandError(f"Nothing seeded: a service refused: {error} ({error.rule})") from error
        self.summary()
        self.stdout.write(self.style.SUCCESS("Demo data created."))
        self.stdout.write("Sign in at /admin/ as:")
        if admin_created:
            self.stdout.write(f"  admin / {password}")
        else:
            self.stdout.write("  admin (the existing account; its password was not changed)")
        self.stdout.write(f"Every other demo account has the password {password!r}:")
        for username, _first, _last, role in PEOPLE:
            self.stdout.write(f"  {username:<16} {role}")

    def login_hint(self, password: str) -> None:
        """Say how to sign in again on a later run; the password is shown only if it still opens the account."""
        admin = User.objects.filter(username="admin").first()
        if admin is None:
            return
        if admin.check_password(password):
            self.stdout.write(f"Sign in at /admin/ as admin / {password} (demo accounts share that password).")
        else:
            self.stdout.write("Sign in at /admin/ as admin (its password was changed since the demo was seeded).")

    def admin_user(self, password_hash: str):
        admin = User.objects.filter(username="admin").first()
        if admin is not None:
            return admin, False
        admin = User.objects.create(
            username="admin", email="admin@example.com", password=password_hash, is_staff=True, is_superuser=True
        )
        return admin, True

    def summary(self) -> None:
        stages = dict(Project.objects.values_list("stage").annotate(n=Count("id")).order_by())
        statuses = dict(Handover.objects.values_list("status").annotate(n=Count("id")).order_by())
        self.stdout.write("Projects: " + ", ".join(f"{s} {stages.get(s, 0)}" for s in Stage.values))
        self.stdout.write("Handovers: " + ", ".join(f"{s} {statuses.get(s, 0)}" for s in HandoverStatus.values))
