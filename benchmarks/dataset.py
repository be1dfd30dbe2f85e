"""Benchmark dataset: an organisation of N projects and N handovers on the database in DATABASE_URL (PostgreSQL).

    createdb -h 127.0.0.1 -U postgres handover_bench100k
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/handover_bench100k .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/handover_bench100k \\
        .venv/bin/python -m benchmarks.dataset --handovers 100000 [--password bench] [--seed 1]

What it builds, as the services would have left it (docs/domain.md):

* 20 operations teams of different sizes (the first is the largest: most members, most handovers), each with a
  lead, members, three services and their KPIs with weekly readings;
* project managers (about one per 40 projects), project members, viewers (signed-in users with no role) and an
  administrator; everyone has the password given by ``--password`` (one hash, computed once);
* N projects over every stage, in the proportions of an organisation with a few years of history (most closed),
  5% confidential, with their history (created, members added, every stage move, handover planned, withdrawn and
  accepted) and N handovers over every state: a project in initiation, some in planning and some cancelled ones
  have none, as many others have a cancelled handover before their live one;
* each handover's checklist copied from one of the default templates (``handover.checklists``), its items in states
  that fit the handover's (submitted: every mandatory item done, waived or not applicable; accepted and after:
  every mandatory item verified, waived with approval or not applicable), with who did, verified, waived or asked
  for what and when, evidence for every completed item, comments, and the activity log of every move; decisions
  with the checklist frozen as it stood; returns with the items they sent back; conditions, met or open;
* the readiness counters, ``last_activity_at`` and the version of every handover, project and item as the services
  count them; the open stall flags of the idle, review-overdue and past-target rules where those rules hold.

It writes with COPY in batches, in one transaction, then runs ANALYZE and prints one JSON line naming a project
manager, the lead of the largest operations team, an operations owner and a viewer. It refuses a database that
already holds projects: build on a freshly migrated one.
"""

import argparse
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import django

TEAMS = 20
BATCH = 2_000  # handovers per COPY round

TEAM_NAMES = [
    "IT Service Desk",
    "Site Operations",
    "Workplace & Facilities",
    "Finance Operations",
    "Customer Support",
    "Data Platform",
    "Network & Telephony",
    "HR Operations",
    "Logistics Control",
    "Security Operations",
    "Payroll Services",
    "Field Service",
    "Procurement Operations",
    "Identity & Access",
    "ERP Support",
    "Contact Centre",
    "Fleet Management",
    "Records & Archives",
    "Learning Services",
    "Print & Mail",
]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gita", "Hugo", "Ines", "Jon", "Kai", "Lena", "Mo", "Nia"]
LAST = ["Adams", "Berg", "Costa", "Diaz", "Eze", "Fox", "Gupta", "Hale", "Ito", "Jensen", "Kaya", "Lund", "Moreau"]
WHAT = ["CRM", "Billing", "Warehouse", "Office", "Payroll", "Portal", "Data lake", "Call routing", "Badge access"]
HOW = ["roll-out", "migration", "launch", "relocation", "redesign", "upgrade", "consolidation"]

# (stage, weight, handover statuses with weights); None: no handover.
STAGES: list[tuple[str, int, list[tuple[str | None, int]]]] = [
    ("initiation", 3, [(None, 1)]),
    ("planning", 5, [(None, 1), ("preparing", 1)]),
    ("execution", 14, [("preparing", 70), ("submitted", 15), ("returned", 8)]),
    ("monitoring", 9, [("preparing", 25), ("submitted", 20), ("returned", 10), ("accepted", 25), ("acc_cond", 20)]),
    ("closure", 6, [("accepted", 20), ("acc_cond", 15), ("hypercare", 55), ("completed", 10)]),
    ("closed", 57, [("completed", 85), ("hypercare", 10), ("accepted", 3), ("acc_cond", 2)]),
    ("cancelled", 6, [(None, 2), ("cancelled", 3)]),
]
REQUIRED: list[tuple[str, str | None]] = [
    ("initiation", None),
    ("planning", "preparing"),
    ("execution", "preparing"),
    ("execution", "submitted"),
    ("execution", "returned"),
    ("monitoring", "accepted"),
    ("monitoring", "accepted_with_conditions"),
    ("closure", "hypercare"),
    ("closed", "completed"),
    ("cancelled", "cancelled"),
]
STAGE_ORDER = ["initiation", "planning", "execution", "monitoring", "closure", "closed"]
ACCEPTED = {"accepted", "accepted_with_conditions", "hypercare", "completed"}
OPEN = {"preparing", "submitted", "returned"}
RISKS = ("inefficiency", "failure", "adoption")
COUNTS = ("mandatory", "not_applicable", "done", "verified", "waived_pending")
NOT_APPLICABLE = "Does not apply to this project."
RETURN_REASON = "Evidence for the items sent back does not show what the item asks for."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handovers", type=int, required=True, help="projects and handovers to build")
    parser.add_argument("--password", default="bench", help="everyone's password (default: bench)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args()
    if args.handovers < 20:
        sys.exit("--handovers: give at least 20 (one per team)")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        sys.exit("The benchmark dataset is built with PostgreSQL's COPY: set DATABASE_URL=postgres://...")
    started = time.perf_counter()
    with transaction.atomic():
        summary = build(args.handovers, password=args.password, seed=args.seed, progress=True)
    from handover.readiness import drift

    summary["readiness_drift"] = len(drift())
    _log(f"stored readiness differs from the items on {summary['readiness_drift']} handovers")
    with connection.cursor() as cursor:
        _log("ANALYZE")
        cursor.execute("ANALYZE")
        cursor.execute("SELECT pg_database_size(current_database())")
        (size,) = cursor.fetchone()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["database_mb"] = round(size / 2**20)
    print(json.dumps(summary), flush=True)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------- people


@dataclass
class Org:
    """Who is who, as ids."""

    admin: int
    managers: list[int]
    members: list[int]
    viewers: list[int]
    team_ids: list[int]
    leads: list[int]
    team_members: list[list[int]]  # per team, without the lead
    services: list[list[int]]  # per team
    usernames: dict[int, str]
    templates: list[tuple[int, int, str, list[tuple]]]  # (id, version, "name vN", items)
    team_weights: list[int] = field(default_factory=list)


def _people(n: int, password: str, rng: random.Random) -> Org:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from handover.checklists import install_default_templates
    from operations.choices import KpiDirection
    from operations.models import Kpi, KpiReading, OperationsTeam, Service

    User = get_user_model()
    hashed = make_password(password)  # once: every user gets the same hash
    now = timezone.now()
    specs: list[tuple[str, str]] = [("bench.admin", "admin")]
    specs += [(f"bench.manager.{i:04d}", "manager") for i in range(max(3, n // 40))]
    specs += [(f"bench.member.{i:05d}", "member") for i in range(max(5, n // 20))]
    specs += [(f"bench.viewer.{i:02d}", "viewer") for i in range(max(3, min(20, n // 100)))]
    # Team 0 is the largest: 40 members besides the lead from 10,000 handovers on, down to 2 for the last team.
    team_sizes = [max(3, min(40 - 2 * i, n // 250)) for i in range(TEAMS)]
    for t in range(TEAMS):
        specs.append((f"bench.lead.{t:02d}", f"lead{t}"))
        specs += [(f"bench.ops.{t:02d}.{i:02d}", f"ops{t}") for i in range(team_sizes[t])]
    users = User.objects.bulk_create(
        [
            User(
                username=name,
                email=f"{name}@example.com",
                first_name=rng.choice(FIRST),
                last_name=rng.choice(LAST),
                password=hashed,
                is_staff=role == "admin",
                is_superuser=role == "admin",
                date_joined=now - timedelta(days=2000),
            )
            for name, role in specs
        ],
        batch_size=5_000,
    )
    by_role: dict[str, list[int]] = defaultdict(list)
    for (_, role), user in zip(specs, users, strict=True):
        by_role[role].append(user.pk)
    usernames = {u.pk: u.username for u in users}

    teams = OperationsTeam.objects.bulk_create(
        [
            OperationsTeam(name=name, description=f"Runs what projects hand to {name}.", lead_id=by_role[f"lead{t}"][0])
            for t, name in enumerate(TEAM_NAMES)
        ]
    )
    Through = OperationsTeam.members.through
    Through.objects.bulk_create(
        [Through(operationsteam_id=team.pk, user_id=u) for t, team in enumerate(teams) for u in by_role[f"ops{t}"]]
    )
    services = Service.objects.bulk_create(
        [Service(team=team, name=f"{team.name} service {k + 1}") for team in teams for k in range(3)]
    )
    kpis = Kpi.objects.bulk_create(
        [
            Kpi(
                service=s,
                name=name,
                unit=unit,
                direction=direction,
                baseline=baseline,
                target=target,
                is_adoption=adoption,
                review_date=(now + timedelta(days=rng.randint(-60, 60))).date(),
            )
            for s in services
            for name, unit, direction, baseline, target, adoption in (
                ("Weekly active users", "%", KpiDirection.HIGHER, 20, 80, True),
                ("Tickets per week", "tickets", KpiDirection.LOWER, 120, 60, False),
            )
        ]
    )
    KpiReading.objects.bulk_create(
        [
            KpiReading(
                kpi=k,
                value=round(float(k.target) * (1 + rng.uniform(-0.4, 0.2)), 2),
                measured_at=now - timedelta(weeks=w, hours=rng.randint(0, 48)),
                recorded_by_id=rng.choice(by_role[f"ops{t}"]),
            )
            for t in range(TEAMS)
            for k in kpis[t * 6 : t * 6 + 6]
            for w in range(12)
        ],
        batch_size=5_000,
    )
    templates = []
    for template, _ in install_default_templates():
        items = [
            (i.pk, i.title, i.guidance, i.risk, i.mandatory, i.side, i.position)
            for i in template.items.order_by("position", "id")
        ]
        templates.append((template.pk, template.version, str(template), items))
    return Org(
        admin=by_role["admin"][0],
        managers=by_role["manager"],
        members=by_role["member"],
        viewers=by_role["viewer"],
        team_ids=[t.pk for t in teams],
        leads=[by_role[f"lead{t}"][0] for t in range(TEAMS)],
        team_members=[by_role[f"ops{t}"] for t in range(TEAMS)],
        services=[[s.pk for s in services[t * 3 : t * 3 + 3]] for t in range(TEAMS)],
        usernames=usernames,
        templates=templates,
        team_weights=[TEAMS - t for t in range(TEAMS)],
    )


# -------------------------------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """One project: its stage, its handovers' statuses (a cancelled one first when it was re-planned)."""

    n: int
    stage: str
    statuses: list[str]


def _plans(n: int, rng: random.Random) -> list[Plan]:
    plans = []
    stages = [s for s, _, _ in STAGES]
    weights = [w for _, w, _ in STAGES]
    options = {s: ([st for st, _ in opts], [w for _, w in opts]) for s, _, opts in STAGES}
    for i in range(n):
        stage = rng.choices(stages, weights)[0]
        status = rng.choices(*options[stage])[0]
        status = {"acc_cond": "accepted_with_conditions"}.get(status or "", status)
        plans.append(Plan(i, stage, [status] if status else []))
    # As many projects re-planned (a cancelled handover, then the live one) as have none: N handovers in all.
    without = [p for p in plans if not p.statuses]
    live = [p for p in plans if p.statuses and p.statuses[0] != "cancelled"]
    for p in rng.sample(live, min(len(without), len(live))):
        p.statuses.insert(0, "cancelled")

    # Every handover state and stage present, even in a small organisation: a missing pair replaces a common one.
    def pair(p: Plan) -> tuple[str, str | None]:
        return p.stage, p.statuses[-1] if p.statuses else None

    counts = Counter(pair(p) for p in plans)
    changed: set[int] = set()
    for stage, status in REQUIRED:
        if counts[stage, status]:
            continue
        victim = next(p for p in reversed(plans) if p.n not in changed and counts[pair(p)] > 1)
        counts[pair(victim)] -= 1
        victim.stage, victim.statuses = stage, [status] if status else []
        counts[stage, status] += 1
        changed.add(victim.n)
    # N handovers in all: add or drop cancelled predecessors.
    total = sum(len(p.statuses) for p in plans)
    for p in plans:
        if total < n and len(p.statuses) == 1 and p.statuses[0] != "cancelled":
            p.statuses.insert(0, "cancelled")
            total += 1
        elif total > n and len(p.statuses) == 2:
            p.statuses.pop(0)
            total -= 1
    return plans


# ------------------------------------------------------------------------------------------------ the writer


class Rows:
    """Rows waiting for their COPY, per table."""

    COLUMNS = {
        "projects_project": (
            "id code name description sponsor manager_id receiving_team_id planned_start planned_handover "
            "actual_handover confidential stage stage_changed_at has_handover_plan version created_by_id created_at "
            "updated_at"
        ),
        "projects_project_members": "project_id user_id",
        "projects_projectevent": "project_id kind from_stage to_stage reason changes actor_id created_at",
        "handover_handover": (
            "id project_id template_id template_version receiving_team_id service_id operations_owner_id deliverables "
            "target_date status status_changed_at submitted_at decided_at accepted_at return_count "
            "hypercare_started_at hypercare_ends_on hypercare_exit_criteria completed_at cancel_reason "
            "last_activity_at version created_by_id created_at updated_at"
        ),
        "handover_checklistitem": (
            "id handover_id template_item_id title guidance risk mandatory side position assignee_id due_date status "
            "status_changed_at done_by_id done_at verified_by_id verified_at sent_back_reason waiver_justification "
            "waiver_requested_by_id waiver_approved_by_id waiver_approved_at not_applicable_reason version"
        ),
        "handover_evidence": "item_id url text added_by_id added_at",
        "handover_comment": "handover_id item_id author_id body created_at",
        "handover_decision": "id handover_id kind decided_by_id decided_at reason snapshot",
        "handover_condition": "handover_id decision_id text owner_id due_date status met_by_id met_at met_note",
        "handover_activity": "handover_id item_id verb actor_id from_state to_state message data created_at",
    }

    def __init__(self, counters: bool) -> None:
        self.columns = {table: columns.split() for table, columns in self.COLUMNS.items()}
        if counters:
            self.columns["handover_handover"] += [f"{risk}_{name}" for risk in RISKS for name in COUNTS]
        self.columns_have_counters = counters
        self.rows: dict[str, list[tuple]] = defaultdict(list)
        self.written: Counter[str] = Counter()

    def add(self, table: str, row: tuple) -> None:
        self.rows[table].append(row)

    def flush(self, cursor) -> None:
        for table, columns in self.columns.items():
            rows = self.rows.pop(table, None)
            if not rows:
                continue
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            self.written[table] += len(rows)


def _j(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ------------------------------------------------------------------------------------------------ the build


class Builder:
    def __init__(self, org: Org, rng: random.Random, now: datetime, rows: Rows, ids: dict[str, int]) -> None:
        self.org, self.rng, self.now, self.rows, self.ids = org, rng, now, rows, ids
        self.live_managed: Counter[int] = Counter()
        self.live_owned: Counter[int] = Counter()
        self.team_handovers: Counter[int] = Counter()

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def at(self, start: datetime, end: datetime, k: int) -> list[datetime]:
        """``k`` ordered moments from ``start`` to ``end``, ``start`` first."""
        span = max((end - start).total_seconds(), 1.0)
        offsets = sorted(self.rng.random() * span for _ in range(k - 1))
        return [start] + [start + timedelta(seconds=o) for o in offsets]

    # ------------------------------------------------------------------------------------------- a project

    def project(self, plan: Plan) -> None:
        rng, org, now = self.rng, self.org, self.now
        pid = self.next_id("projects_project")
        team_index = rng.choices(range(TEAMS), org.team_weights)[0]
        team = org.team_ids[team_index]
        manager = rng.choice(org.managers)
        members = rng.sample(org.members, rng.randint(0, 3))
        confidential = rng.random() < 0.05
        what = f"{rng.choice(WHAT)} {rng.choice(HOW)}"
        code = f"PRJ-{plan.n + 1:06d}"
        no_team = plan.stage == "initiation" and rng.random() < 0.3

        # The handovers' spans, latest last: (start, end) per handover.
        spans: list[tuple[datetime, datetime]] = []
        end = self._end(plan.statuses[-1], plan.stage) if plan.statuses else now - timedelta(days=rng.uniform(0, 400))
        for status in reversed(plan.statuses):
            length = timedelta(days=self._length(status))
            start = end - length
            spans.insert(0, (start, end))
            end = start - timedelta(days=rng.uniform(1, 20))
        created = (spans[0][0] if spans else end) - timedelta(days=rng.uniform(3, 40))
        events: list[tuple] = []  # (kind, from, to, reason, changes, actor, at)
        events.append(("created", "", "", "", {}, manager, created))
        for m in members:
            events.append(("member_added", "", "", "", {"user": org.usernames[m]}, manager, created))
        outcomes = []
        for status, (start, end) in zip(plan.statuses, spans, strict=True):
            outcomes.append(
                self.handover(pid, plan, status, start, end, team_index, manager, members, confidential, events)
            )
        # Stage moves: to planning before the first handover is planned, the rest while the live one runs.
        if plan.stage != "cancelled":
            target = STAGE_ORDER.index(plan.stage)
        else:  # leaving planning needs a handover plan: a project cancelled without one never got past planning
            target = rng.randint(1, 3) if outcomes else rng.randint(0, 1)
        moves = STAGE_ORDER[1 : target + 1]
        last = outcomes[-1] if outcomes else None
        first_start = spans[0][0] if spans else end
        stage_times: list[datetime] = []
        if moves:
            stage_times.append(created + (first_start - created) / 2)
        if len(moves) > 1 and last is not None:
            live_start, live_end = last["start"], last["end"]
            later = self.at(live_start + timedelta(hours=1), max(live_end, live_start + timedelta(hours=2)), len(moves))
            stage_times += later[1:]
            if plan.stage == "closed":  # entering closed needs the handover accepted
                stage_times[-1] = min(now, max(stage_times[-1], last["accepted_at"] + timedelta(hours=2)))
        previous = "initiation"
        for to, at in zip(moves, stage_times, strict=True):
            events.append(("stage_changed", previous, to, "", {}, manager, at))
            previous = to
        if plan.stage == "cancelled":
            at = min(now, (last["end"] if last else stage_times[-1] if stage_times else created) + timedelta(days=2))
            events.append(("stage_changed", previous, "cancelled", "Budget withdrawn.", {}, manager, at))
        stage_moves = [e for e in events if e[0] == "stage_changed"]
        stage_changed_at = max((e[6] for e in stage_moves), default=None)
        version = 1 + len(stage_moves) + (1 if members else 0)
        live = last if last and last["status"] != "cancelled" else None
        accepted_at = live["accepted_at"] if live else None
        for kind, from_stage, to_stage, reason, changes, actor, at in events:
            self.rows.add("projects_projectevent", (pid, kind, from_stage, to_stage, reason, _j(changes), actor, at))
        planned_handover = (live["target_date"] if live else (created + timedelta(days=180)).date()) or None
        self.rows.add(
            "projects_project",
            (
                pid,
                code,
                f"{what} {plan.n + 1}",
                f"The {what.lower()} for the {TEAM_NAMES[team_index]} team.",
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                manager,
                None if no_team else team,
                created.date(),
                planned_handover,
                accepted_at.date() if accepted_at else None,
                confidential,
                plan.stage,
                stage_changed_at,
                live is not None,
                version,
                manager,
                created,
                max(e[6] for e in events),
            ),
        )
        for m in members:
            self.rows.add("projects_project_members", (pid, m))
        if plan.stage not in ("closed", "cancelled"):
            self.live_managed[manager] += 1

    def _end(self, status: str, stage: str) -> datetime:
        """When a handover in ``status`` last moved."""
        rng, now = self.rng, self.now
        if status in OPEN:
            days = min(rng.expovariate(1 / 3), 60)  # one in ten preparing is idle past a week
        elif status in ("accepted", "accepted_with_conditions"):
            days = rng.uniform(0, 20)
        elif status == "hypercare":
            days = rng.uniform(0, 25)
        elif status == "completed":
            days = rng.uniform(5, 1800)
        else:
            days = rng.uniform(0, 1500)
        return now - timedelta(days=days)

    def _length(self, status: str) -> float:
        return {
            "preparing": self.rng.uniform(1, 150),
            "cancelled": self.rng.uniform(2, 60),
        }.get(status, self.rng.uniform(30, 160))

    # ------------------------------------------------------------------------------------------ a handover

    def handover(
        self,
        pid: int,
        plan: Plan,
        status: str,
        start: datetime,
        end: datetime,
        team_index: int,
        manager: int,
        members: list[int],
        confidential: bool,
        project_events: list[tuple],
    ) -> dict:
        rng, org = self.rng, self.org
        hid = self.next_id("handover_handover")
        team_members = org.team_members[team_index]
        lead = org.leads[team_index]
        owner = lead if rng.random() < 0.1 else rng.choice(team_members)
        others = [m for m in team_members if m != owner] or [lead]
        template_id, template_version, template_name, template_items = rng.choice(org.templates)
        service = rng.choice(org.services[team_index]) if rng.random() < 0.6 else None
        returned_before = status == "returned" or (status == "preparing" and rng.random() < 0.15)
        submitted = status in ACCEPTED or status in ("submitted", "returned") or returned_before
        accepted = status in ACCEPTED
        progress = {"preparing": rng.random(), "cancelled": rng.random() * 0.6}.get(status, 1.0)
        # A handover returned once was submitted first: its mandatory items were all done, waived or not applicable.
        drawn_as = "submitted" if returned_before else status

        # Each item's final state; ``before_return`` is its state when a return sent it back.
        items = []
        for tid, title, guidance, risk, mandatory, side, position in template_items:
            state = self._item_state(drawn_as, mandatory, progress)
            items.append(
                {
                    "id": self.next_id("handover_checklistitem"),
                    "tid": tid,
                    "title": title,
                    "guidance": guidance,
                    "risk": risk,
                    "mandatory": mandatory,
                    "side": side,
                    "position": position,
                    "state": state,
                    "assignee": (
                        rng.choice(members)
                        if side == "project" and members and rng.random() < 0.4
                        else rng.choice(others)
                        if side == "operations" and rng.random() < 0.3
                        else None
                    ),
                    "due": (start + timedelta(days=rng.uniform(10, 90))).date() if rng.random() < 0.4 else None,
                }
            )
        sent_back = []
        if returned_before:
            candidates = [i for i in items if i["state"] in ("done", "verified") and i["side"] == "project"]
            sent_back = rng.sample(candidates, min(len(candidates), rng.randint(1, 3)))
            for item in sent_back:  # done or verified when the return sent it back; open since
                item["before"], item["state"], item["sent_back"] = item["state"], "open", True
        target_date = (start + timedelta(days=rng.uniform(30, 150))).date()
        if status in OPEN and rng.random() < 0.1:
            target_date = (self.now - timedelta(days=rng.uniform(1, 30))).date()  # past target
        elif status in OPEN:
            target_date = max(target_date, (self.now + timedelta(days=rng.uniform(1, 20))).date())
        comments = rng.randint(0, 4)

        # The moves, in order; each is (kind, payload) and gets one moment.
        moves: list[tuple[str, Any]] = [("created", None)]
        work: list[tuple[str, Any]] = [("item", i) for i in items if i["state"] != "open" or i.get("sent_back")]
        rng.shuffle(work)
        # Items still waiting for verification were done lately (most teams verify within days).
        work.sort(key=lambda w: w[1]["state"] == "done")
        for item in [i for _, i in work if (i.get("before") or i["state"]) == "verified"]:
            done_at = next(k for k, (_, i) in enumerate(work) if i is item)
            work.insert(rng.randint(done_at + 1, len(work)), ("verify", item))
        moves += work
        for _ in range(comments):
            moves.insert(rng.randint(1, len(moves)), ("comment", rng.choice([None, *items[:5]])))
        if returned_before:
            moves += [("submit", None), ("return", None)]
            if status == "preparing":
                moves += [("resume", None)]
        elif submitted:
            moves.append(("submit", None))
        if accepted:
            moves.append(("accept", None))
        conditions: list[dict[str, Any]] = []
        if status == "accepted_with_conditions" or (status in ("hypercare", "completed") and rng.random() < 0.3):
            conditions = [{"met": False} for _ in range(rng.randint(1, 3))]
        if status in ("hypercare", "completed"):
            moves.append(("hypercare", None))
        for c in conditions:
            if status == "completed" or rng.random() < 0.5:
                c["met"] = True
                moves.append(("condition_met", c))
        if status == "completed":
            moves.append(("complete", None))
        if status == "cancelled":
            moves.append(("cancel", None))
        # Items still waiting for verification were done in the last days before the latest move.
        waiting = [k for k, (kind, i) in enumerate(moves) if kind == "item" and i["state"] == "done"]
        recent = min(end - start, timedelta(days=2)) if status in OPEN and waiting else timedelta(0)
        tail = len(moves) - waiting[0] if recent else 0
        times = self.at(start, end - recent, len(moves) - tail)
        times += sorted(end - recent + timedelta(seconds=rng.random() * recent.total_seconds()) for _ in range(tail))

        activity: list[tuple] = []
        handover: dict[str, Any] = {
            "status_changed_at": start,
            "submitted_at": None,
            "decided_at": None,
            "accepted_at": None,
            "hypercare_started_at": None,
            "hypercare_ends_on": None,
            "completed_at": None,
        }
        state = "preparing"

        def record(at, verb, actor, item=None, from_state="", to_state="", message="", data=None):
            activity.append((hid, item, verb, actor, from_state, to_state, message, _j(data or {}), at))

        def move(at, to, actor, message=""):
            nonlocal state
            record(at, "status_changed", actor, from_state=state, to_state=to, message=message)
            state = to
            handover["status_changed_at"] = at

        for (kind, payload), at in zip(moves, times, strict=True):
            if kind == "created":
                record(at, "created", manager, to_state="preparing", data={"template": template_name})
                project_events.append(("handover_planned", "", "", "", {"handover": hid}, manager, at))
            elif kind == "item":
                self._work_item(payload, at, record, manager, owner, others)
            elif kind == "verify":
                verifier = owner if owner != payload["done_by"] else lead
                payload["verified_by"], payload["verified_at"], payload["changed_at"] = verifier, at, at
                payload["version"] += 1
                record(at, "item_status_changed", verifier, item=payload["id"], from_state="done", to_state="verified")
            elif kind == "comment":
                author = rng.choice([manager, owner])
                body = rng.choice(
                    [
                        "Checked with the team, looks good.",
                        "Can we move the date by a week?",
                        "Evidence attached; please review.",
                        "Who covers the weekend on-call?",
                        "Training slots are booked.",
                    ]
                )
                item_id = payload["id"] if payload else None
                self.rows.add("handover_comment", (hid, item_id, author, body, at))
                record(at, "commented", author, item=item_id, message=body)
            elif kind == "submit":
                handover["submitted_at"] = at
                move(at, "submitted", manager)
            elif kind == "return":
                reason = RETURN_REASON
                snapshot = self._snapshot(items, target_date, sent_back=sent_back, reason=reason)
                self.rows.add(
                    "handover_decision",
                    (self.next_id("handover_decision"), hid, "returned", owner, at, reason, _j(snapshot)),
                )
                for item in sent_back:
                    item["version"] += 1
                    item["changed_at"] = at
                    record(
                        at,
                        "item_status_changed",
                        owner,
                        item=item["id"],
                        from_state=item["before"],
                        to_state="open",
                        message=reason,
                    )
                handover["decided_at"] = at
                move(at, "returned", owner, reason)
            elif kind == "resume":
                move(at, "preparing", manager, "Resumed after return.")
            elif kind == "accept":
                decision_kind = "accepted_with_conditions" if conditions else "accepted"
                note = "Accepted; thanks for the thorough runbooks." if rng.random() < 0.5 else ""
                decision_id = self.next_id("handover_decision")
                snapshot = self._snapshot(items, target_date)
                self.rows.add("handover_decision", (decision_id, hid, decision_kind, owner, at, note, _j(snapshot)))
                for c in conditions:
                    c["decision"] = decision_id
                    c["owner"] = rng.choice([owner, manager])
                    c["due"] = (at + timedelta(days=rng.uniform(7, 60))).date()
                handover["decided_at"] = handover["accepted_at"] = at
                move(at, decision_kind, owner, note)
                project_events.append(
                    ("handover_accepted", "", "", "", {"actual_handover": at.date().isoformat()}, owner, at)
                )
            elif kind == "hypercare":
                handover["hypercare_started_at"] = at
                handover["hypercare_ends_on"] = (at + timedelta(days=rng.uniform(21, 60))).date()
                move(at, "hypercare", owner)
            elif kind == "condition_met":
                payload["met_at"], payload["met_by"] = at, payload["owner"]
                record(at, "condition_met", payload["owner"], from_state="open", to_state="met", message="Done.")
            elif kind == "complete":
                handover["completed_at"] = at
                move(at, "completed", owner)
            elif kind == "cancel":
                move(at, "cancelled", manager, "Re-planned with a different scope.")
                project_events.append(("handover_plan_withdrawn", "", "", "", {"handover": hid}, manager, at))
        assert state == status, (state, status)

        for c in conditions:
            self.rows.add(
                "handover_condition",
                (
                    hid,
                    c["decision"],
                    "Alert thresholds tuned after two weeks of live traffic.",
                    c["owner"],
                    c["due"],
                    "met" if c["met"] else "open",
                    c.get("met_by"),
                    c.get("met_at"),
                    "Done." if c["met"] else "",
                ),
            )
        for row in activity:
            self.rows.add("handover_activity", row)
        self._write_items(hid, items)
        counts = self._counts(items)
        last_activity = max(a[-1] for a in activity)
        self.rows.add(
            "handover_handover",
            (
                hid,
                pid,
                template_id,
                template_version,
                org.team_ids[team_index],
                service,
                owner,
                f"{TEAM_NAMES[team_index]} takes over the running service, its runbooks and its support contracts.",
                target_date,
                status,
                handover["status_changed_at"],
                handover["submitted_at"],
                handover["decided_at"],
                handover["accepted_at"],
                1 if returned_before else 0,
                handover["hypercare_started_at"],
                handover["hypercare_ends_on"],
                "Two weeks without a priority-1 incident; adoption at target." if handover["hypercare_ends_on"] else "",
                handover["completed_at"],
                "Re-planned with a different scope." if status == "cancelled" else "",
                last_activity,
                1 + len(activity),
                manager,
                start,
                last_activity,
                *([counts[risk][name] for risk in RISKS for name in COUNTS] if self.rows.columns_have_counters else []),
            ),
        )
        self.team_handovers[team_index] += 1
        if status not in ("completed", "cancelled"):
            self.live_owned[owner] += 1
        return {
            "status": status,
            "start": start,
            "end": last_activity,
            "accepted_at": handover["accepted_at"],
            "target_date": target_date,
        }

    def _item_state(self, status: str, mandatory: bool, progress: float) -> str:
        r = self.rng.random()
        if status in ACCEPTED:
            if mandatory:
                return "verified" if r < 0.88 else "waived_approved" if r < 0.93 else "not_applicable"
            return "verified" if r < 0.6 else "done" if r < 0.7 else "open" if r < 0.85 else "not_applicable"
        if status in ("submitted", "returned"):
            if mandatory or r < 0.7:
                r = self.rng.random()
                return (
                    "verified"
                    if r < 0.6
                    else "done"
                    if r < 0.85
                    else "waived_pending"
                    if r < 0.88
                    else "waived_approved"
                    if r < 0.91
                    else "not_applicable"
                )
            return "open"
        if r >= progress:
            return "open"
        r = self.rng.random()
        return (
            "done"
            if r < 0.2
            else "verified"
            if r < 0.88
            else "waived_pending"
            if r < 0.91
            else "waived_approved"
            if r < 0.94
            else "not_applicable"
        )

    def _work_item(self, item: dict, at: datetime, record, manager: int, owner: int, others: list[int]) -> None:
        """The first move of a worked item (complete with evidence, waive, not applicable); verifying is its own."""
        rng = self.rng
        state = item.get("before") or item["state"]
        item["version"] = 2
        item["changed_at"] = at
        if state in ("done", "verified"):
            doer = item["assignee"] or (manager if item["side"] == "project" else rng.choice(others))
            url = f"https://wiki.example.com/handover/{item['id']}"
            item["done_by"], item["done_at"] = doer, at
            item["evidence"] = [(url, "", doer, at)]
            self.rows.add("handover_evidence", (item["id"], url, "", doer, at))
            record(at, "evidence_added", doer, item=item["id"], data={"url": url, "text": ""})
            record(at, "item_status_changed", doer, item=item["id"], from_state="open", to_state="done")
        elif state in ("waived_pending", "waived_approved"):
            approved = state == "waived_approved"
            by = owner if approved else manager
            justification = "Covered by the existing service's runbook."
            item["waiver"] = (justification, by, owner if approved else None)
            record(
                at,
                "item_status_changed",
                by,
                item=item["id"],
                from_state="open",
                to_state="waived",
                message=justification,
            )
        else:
            record(
                at,
                "item_status_changed",
                manager,
                item=item["id"],
                from_state="open",
                to_state="not_applicable",
                message=NOT_APPLICABLE,
            )

    def _write_items(self, hid: int, items: list[dict]) -> None:
        for item in items:
            state = item["state"]
            sent_back = item.get("sent_back", False)
            done = state in ("done", "verified") and not sent_back
            waived = state in ("waived_pending", "waived_approved")
            waiver = item.get("waiver") or ("", None, None)
            self.rows.add(
                "handover_checklistitem",
                (
                    item["id"],
                    hid,
                    item["tid"],
                    item["title"],
                    item["guidance"],
                    item["risk"],
                    item["mandatory"],
                    item["side"],
                    item["position"],
                    item["assignee"],
                    item["due"],
                    "waived" if waived else state,
                    item.get("changed_at") if state != "open" or sent_back else None,
                    item["done_by"] if done else None,
                    item["done_at"] if done else None,
                    item.get("verified_by") if done and state == "verified" else None,
                    item.get("verified_at") if done and state == "verified" else None,
                    RETURN_REASON if sent_back else "",
                    waiver[0] if waived else "",
                    waiver[1] if waived else None,
                    waiver[2] if waived else None,
                    item["changed_at"] if waived and waiver[2] else None,
                    NOT_APPLICABLE if state == "not_applicable" else "",
                    item.get("version", 1),
                ),
            )

    def _counts(self, items: list[dict]) -> dict[str, dict[str, int]]:
        counts = {risk: dict.fromkeys(COUNTS, 0) for risk in RISKS}
        for item in items:
            if not item["mandatory"]:
                continue
            state = "open" if item.get("sent_back") else item["state"]
            c = counts[item["risk"]]
            c["mandatory"] += 1
            c["not_applicable"] += state == "not_applicable"
            c["done"] += state in ("done", "verified", "waived_pending", "waived_approved")
            c["verified"] += state in ("verified", "waived_approved")
            c["waived_pending"] += state == "waived_pending"
        return counts

    def _snapshot(self, items: list[dict], target_date: date, **extra) -> dict:
        """``handover.selectors.checklist_snapshot`` at the decision: for a return, the items it sends back are still
        done or verified."""
        from handover.readiness import Readiness, RiskReadiness

        rows = []
        counts = {risk: dict.fromkeys(COUNTS, 0) for risk in RISKS}
        usernames = self.org.usernames
        for item in items:
            state = item.get("before") or item["state"]
            shown = "waived" if state.startswith("waived") else state
            done = state in ("done", "verified")
            waiver = item.get("waiver") or ("", None, None)
            if item["mandatory"]:
                c = counts[item["risk"]]
                c["mandatory"] += 1
                c["not_applicable"] += state == "not_applicable"
                c["done"] += state in ("done", "verified", "waived_pending", "waived_approved")
                c["verified"] += state in ("verified", "waived_approved")
                c["waived_pending"] += state == "waived_pending"
            rows.append(
                {
                    "id": item["id"],
                    "title": item["title"],
                    "risk": item["risk"],
                    "side": item["side"],
                    "mandatory": item["mandatory"],
                    "status": shown,
                    "assignee": usernames.get(item["assignee"]) if item["assignee"] else None,
                    "done_by": usernames[item["done_by"]] if done else None,
                    "done_at": _iso(item["done_at"]) if done else None,
                    "verified_by": usernames[item["verified_by"]] if state == "verified" else None,
                    "verified_at": _iso(item["verified_at"]) if state == "verified" else None,
                    "waiver_justification": waiver[0] if shown == "waived" else "",
                    "waiver_approved_by": usernames[waiver[2]] if shown == "waived" and waiver[2] else None,
                    "not_applicable_reason": NOT_APPLICABLE if state == "not_applicable" else "",
                    "evidence": [
                        {"url": url, "text": text, "added_at": _iso(added_at)}
                        for url, text, _, added_at in item.get("evidence", [])
                    ],
                }
            )
        readiness = Readiness(
            by_risk={risk: RiskReadiness(**c) for risk, c in counts.items()},
            overall=RiskReadiness(**{name: sum(c[name] for c in counts.values()) for name in COUNTS}),
        )
        snapshot: dict[str, Any] = {
            "status": "submitted",
            "target_date": target_date.isoformat(),
            "readiness": readiness.as_dict(),
            "items": rows,
        }
        snapshot.update(extra)
        if "sent_back" in snapshot:
            reason = snapshot.pop("reason")
            snapshot["sent_back"] = [{"id": i["id"], "title": i["title"], "reason": reason} for i in extra["sent_back"]]
        return snapshot


# -------------------------------------------------------------------------------------------- the whole build


def build(
    handovers: int, *, password: str = "bench", seed: int = 1, progress: bool = False, detect: bool = True
) -> dict:
    """Build the organisation in the current database (PostgreSQL, no projects yet); return who to sign in as.

    Each batch of projects is written in its own transaction (a savepoint inside an outer one). ``detect``: run
    one stall-detection pass at the end, which opens the flags of the stalls the data holds."""
    from django.db import connection, transaction
    from django.utils import timezone

    from projects.models import Project

    if connection.vendor != "postgresql":
        raise ValueError("The benchmark dataset is built with PostgreSQL's COPY.")
    if Project.objects.exists():
        raise ValueError("The database already holds projects: build on a freshly migrated database.")
    rng = random.Random(seed)
    now = timezone.now()
    log = _log if progress else (lambda message: None)
    with transaction.atomic():
        org = _people(handovers, password, rng)
    log(f"{len(org.usernames)} people, {TEAMS} teams, {len(org.templates)} templates")
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, "handover_handover")}
        ids = {}
        for table in ("projects_project", "handover_handover", "handover_checklistitem", "handover_decision"):
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            ids[table] = cursor.fetchone()[0]
    rows = Rows(counters="failure_mandatory" in columns)
    if not rows.columns_have_counters:
        log("handover_handover has no readiness counters (migration 0007 not applied): they are left out")
    builder = Builder(org, rng, now, rows, ids)
    plans = _plans(handovers, rng)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        (superuser,) = cursor.fetchone()
    for start in range(0, len(plans), BATCH):
        for plan in plans[start : start + BATCH]:
            builder.project(plan)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            if superuser:
                # Foreign keys are checked once, set-based, after the load (_check_foreign_keys) instead of by a
                # trigger per row at each commit, which costs more than the load itself.
                cursor.execute("SET LOCAL session_replication_role = replica")
            rows.flush(cursor.cursor)
        if start // BATCH % 5 == 4 or start + BATCH >= len(plans):
            log(f"{min(start + BATCH, len(plans))} projects, {rows.written['handover_checklistitem']} items")
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ids:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
    log(f"rows: {dict(rows.written)}")
    if superuser:
        _check_foreign_keys(rows.columns)
        log("foreign keys checked")
    if detect:
        log(f"stall detection opened {_detect_stalls()} flags")
    team = max(range(TEAMS), key=lambda t: (len(org.team_members[t]), builder.team_handovers[t]))
    manager = max(org.managers, key=lambda u: (builder.live_managed[u], -u))
    owner = max(set(builder.live_owned) - set(org.leads), key=lambda u: (builder.live_owned[u], -u))
    return {
        "manager": org.usernames[manager],
        "operations_lead": org.usernames[org.leads[team]],
        "operations_owner": org.usernames[owner],
        "viewer": org.usernames[org.viewers[0]],
        "password": password,
        "team": org.team_ids[team],
        "handovers": handovers,
    }


def _check_foreign_keys(tables: dict[str, list[str]]) -> None:
    """Every foreign key of the tables written points at a row (what the triggers would have checked)."""
    from django.apps import apps
    from django.db import connection

    by_table = {m._meta.db_table: m for m in apps.get_models(include_auto_created=True)}
    checks = []
    for table, columns in tables.items():
        model = by_table[table]
        for f in model._meta.concrete_fields:
            if f.is_relation and f.column in columns:
                related: Any = f.related_model
                parent = related._meta
                checks.append(
                    f"SELECT '{table}.{f.column}', count(*) FROM {table} c WHERE c.{f.column} IS NOT NULL AND NOT "
                    f"EXISTS (SELECT 1 FROM {parent.db_table} p WHERE p.{parent.pk.column} = c.{f.column})"
                )
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(checks))
        broken = {name: n for name, n in cursor.fetchall() if n}
    if broken:
        raise AssertionError(f"rows pointing at nothing: {broken}")


def _detect_stalls() -> int:
    """One real detection pass, so that the open flags (and their notifications) are the detector's own. Its send
    tasks go to kombu's in-process memory broker, never to a real queue."""
    from config.celery import app
    from handover.models import StallFlag
    from handover.stalls.services import detect_stalls

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url, app.conf.broker_transport_options = "memory://", {}
    app._pool, app.amqp._producer_pool = None, None
    try:
        detect_stalls()
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        app._pool, app.amqp._producer_pool = None, None
    return StallFlag.objects.filter(resolved_at__isnull=True).count()


if __name__ == "__main__":
    main()
