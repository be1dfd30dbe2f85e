"""Stall-detection benchmark: seconds and queries per detection pass at 10k and 100k handovers, 1% stalled.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/handover_bench .venv/bin/python -m benchmarks.stall_detection
    make bench          # the same, against the local PostgreSQL

It creates a throw-away test database (``test_<name>``), fills it with bulk inserts (each handover with five
checklist items; 1% of handovers made stalled, spread over the six rules), then times:

* a first pass (which opens the flags and writes their notifications),
* a steady-state pass (nothing new: what the 5-minute beat job costs on most runs),
* the same selection written as one raw SQL query per rule (the floor any ORM code is compared against).

Each timing is the median of several runs. The database is dropped at the end.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (median reported)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    if connection.vendor != "postgresql":
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://...")
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        print(
            f"{'handovers':>10} {'stalled':>8} {'first pass s':>13} {'steady pass s':>14} {'queries':>8} "
            f"{'raw SQL s':>10}"
        )
        for size in args.sizes:
            _reset()
            stalled = _populate(size)
            first, steady, queries, raw = _measure(args.repeat)
            print(f"{size:>10} {stalled:>8} {first:>13.3f} {steady:>14.3f} {queries:>8} {raw:>10.4f}", flush=True)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE handover_notification, handover_stallflag, handover_webhookdelivery, handover_event, "
            "handover_detectionrun, handover_condition, handover_decision, handover_activity, handover_evidence, "
            "handover_checklistitem, handover_handover, projects_projectevent, projects_project_members, "
            "projects_project, operations_kpireading, operations_kpi, operations_service, "
            "operations_operationsteam_members, operations_operationsteam, handover_templateitem, "
            "handover_checklisttemplate, auth_user CASCADE"
        )


def _populate(size: int) -> int:
    """``size`` handovers over 20 teams; 1% stalled, spread over the rules; returns how many are stalled."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from handover.choices import ConditionStatus, DecisionKind, HandoverStatus, ItemStatus, Risk
    from handover.models import ChecklistItem, Condition, Decision, Handover
    from operations.models import Kpi, OperationsTeam, Service
    from projects.choices import Stage
    from projects.models import Project

    now = timezone.now()
    today = timezone.localdate()
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"user{i}", email=f"user{i}@example.com") for i in range(60)])
    teams = OperationsTeam.objects.bulk_create([OperationsTeam(name=f"Team {i}", lead=users[i]) for i in range(20)])
    services = Service.objects.bulk_create([Service(team=t, name=f"Service of {t.name}") for t in teams])
    Kpi.objects.bulk_create(
        [Kpi(service=s, name="Weekly active users", target=80, is_adoption=True, review_date=today) for s in services]
    )
    stalled_every = 100  # 1%
    rules = ["idle", "review", "verification", "target", "condition", "adoption"]
    batch = 5_000
    stalled = 0
    for start in range(0, size, batch):
        count = min(batch, size - start)
        projects = Project.objects.bulk_create(
            [
                Project(
                    code=f"P{start + i:07d}",
                    name=f"Project {start + i}",
                    manager=users[20 + (start + i) % 40],
                    receiving_team=teams[(start + i) % 20],
                    stage=Stage.EXECUTION,
                    has_handover_plan=True,
                )
                for i in range(count)
            ],
            batch_size=batch,
        )
        handovers = []
        for i, project in enumerate(projects):
            n = start + i
            team = teams[n % 20]
            kind = rules[(n // stalled_every) % len(rules)] if n % stalled_every == 0 else None
            status = HandoverStatus.PREPARING
            last_activity = now - timedelta(hours=n % 48)
            submitted_at = None
            target = today + timedelta(days=30 + n % 60)
            if kind == "idle":
                last_activity = now - timedelta(days=10)
            elif kind == "review":
                status, submitted_at = HandoverStatus.SUBMITTED, now - timedelta(days=4)
            elif kind == "target":
                target = today - timedelta(days=2)
            elif kind in ("condition", "adoption"):
                status = HandoverStatus.ACCEPTED_WITH_CONDITIONS if kind == "condition" else HandoverStatus.HYPERCARE
            elif n % 7 == 0:
                status, submitted_at = HandoverStatus.SUBMITTED, now - timedelta(hours=5)
            stalled += kind is not None
            handovers.append(
                Handover(
                    project=project,
                    receiving_team=team,
                    service=services[n % 20] if kind == "adoption" else None,
                    operations_owner=team.lead,
                    target_date=target,
                    status=status,
                    status_changed_at=now,
                    submitted_at=submitted_at,
                    last_activity_at=last_activity,
                    created_at=now,
                )
            )
        handovers = Handover.objects.bulk_create(handovers, batch_size=batch)
        items = []
        for h in handovers:
            n = int(h.project.code[1:])
            waiting = n % stalled_every == 0 and rules[(n // stalled_every) % len(rules)] == "verification"
            for k, risk in enumerate([Risk.INEFFICIENCY, Risk.FAILURE, Risk.ADOPTION, Risk.FAILURE, Risk.ADOPTION]):
                done = waiting and k == 0
                items.append(
                    ChecklistItem(
                        handover=h,
                        title=f"Item {k}",
                        risk=risk,
                        position=k,
                        status=ItemStatus.DONE if done or k < 2 else ItemStatus.OPEN,
                        done_at=now - timedelta(days=6 if done else 1) if done or k < 2 else None,
                    )
                )
        ChecklistItem.objects.bulk_create(items, batch_size=batch)
        conditional = [h for h in handovers if h.status == HandoverStatus.ACCEPTED_WITH_CONDITIONS]
        decisions = Decision.objects.bulk_create(
            [
                Decision(
                    handover=h,
                    kind=DecisionKind.ACCEPTED_WITH_CONDITIONS,
                    decided_by=h.operations_owner,
                    decided_at=now,
                    snapshot={},
                )
                for h in conditional
            ]
        )
        Condition.objects.bulk_create(
            [
                Condition(
                    handover=d.handover,
                    decision=d,
                    text="Tune alerts",
                    owner=d.decided_by,
                    due_date=today - timedelta(days=1),
                    status=ConditionStatus.OPEN,
                )
                for d in decisions
            ]
        )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return stalled


RAW_SQL = """
SELECT id FROM handover_handover
 WHERE status IN ('preparing', 'returned') AND last_activity_at <= %(now)s - interval '7 days'
UNION SELECT id FROM handover_handover
 WHERE status = 'submitted' AND submitted_at <= %(now)s - interval '3 days'
UNION SELECT handover_id FROM handover_checklistitem i JOIN handover_handover h ON h.id = i.handover_id
 WHERE i.status = 'done' AND i.done_at <= %(now)s - interval '5 days'
   AND h.status IN ('preparing', 'submitted', 'returned')
UNION SELECT id FROM handover_handover
 WHERE status IN ('preparing', 'submitted', 'returned') AND target_date < %(today)s
UNION SELECT c.handover_id FROM handover_condition c JOIN handover_handover h ON h.id = c.handover_id
 WHERE c.status = 'open' AND c.due_date < %(today)s AND h.status <> 'cancelled'
UNION SELECT h.id FROM handover_handover h JOIN operations_kpi k ON k.service_id = h.service_id
 WHERE h.status = 'hypercare' AND k.is_adoption AND k.review_date <= %(today)s
   AND COALESCE((SELECT value FROM operations_kpireading r WHERE r.kpi_id = k.id
                 ORDER BY measured_at DESC LIMIT 1) < k.target, true)
"""


def _measure(repeat: int) -> tuple[float, float, int, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from handover.models import Notification, StallFlag
    from handover.stalls import detect_stalls

    firsts, steadies, raws = [], [], []
    queries = 0
    for _ in range(repeat):
        StallFlag.objects.all().delete()
        Notification.objects.all().delete()
        started = time.perf_counter()
        detect_stalls()
        firsts.append(time.perf_counter() - started)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            detect_stalls()
            steadies.append(time.perf_counter() - started)
        queries = len(captured.captured_queries)
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(RAW_SQL, {"now": timezone.now(), "today": timezone.localdate()})
            cursor.fetchall()
            raws.append(time.perf_counter() - started)
    return statistics.median(firsts), statistics.median(steadies), queries, statistics.median(raws)


if __name__ == "__main__":
    main()
