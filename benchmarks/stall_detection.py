"""Stall-detection benchmark: seconds and queries per detection pass at 10k and 100k handovers, 1% stalled.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/handover_bench .venv/bin/python -m benchmarks.stall_detection
    make bench                                   # the same, against the local PostgreSQL
    ... -m benchmarks.stall_detection --sizes 10000 --repeat 3

It creates a throw-away test database (``test_<name>``), fills it with bulk inserts over 20 operations teams, a
quarter of which override the stall thresholds (each handover with five checklist items; 1% of handovers made
stalled, spread over the six rules), then times:

* a first pass (which opens the flags, writes their notifications and publishes their send tasks),
* a steady-state pass (nothing new: what the 5-minute beat job costs on most runs),
* the same selection written as one raw SQL query, twice: with the team thresholds as ``COALESCE(team's
  override, default)`` (how one would write it by hand), and with each distinct threshold as its own range (the
  shape of the detector's own queries, which the indexes serve); the benchmark checks that both select exactly the
  handovers the detector flagged.

Queries are the statements a pass sends, without BEGIN / COMMIT / SAVEPOINT / RELEASE. Tasks are published to
kombu's in-process memory transport, never to the development queue under var/ nor to a real Redis. Each timing is
the median of several runs. The database is dropped at the end.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

import django

TEAMS = 20
# Teams 0-4 use tighter thresholds than the defaults, teams 5-9 looser ones (still crossed by the stalled data,
# and never by the healthy data); the rest use the settings' defaults.
TIGHT = {
    "idle_days": 5,
    "review_overdue_days": 2,
    "verification_waiting_days": 4,
    "past_target_days": 0,
    "conditions_overdue_days": 0,
    "adoption_below_target_days": 0,
    "escalation_days": 2,
}
LOOSE = {
    "idle_days": 9,
    "review_overdue_days": 4,
    "verification_waiting_days": 6,
    "past_target_days": 3,
    "conditions_overdue_days": 3,
    "adoption_below_target_days": 3,
    "escalation_days": 5,
}
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (median reported)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    from config.celery import app

    if connection.vendor != "postgresql":
        sys.exit("The benchmark runs on PostgreSQL: set DATABASE_URL=postgres://...")
    # Publishing is part of a first pass's cost, but must go nowhere: an in-process broker, emptied between runs.
    app.conf.broker_url, app.conf.broker_transport_options = "memory://", {}
    app._pool, app.amqp._producer_pool = None, None
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        print(
            f"{'handovers':>10} {'stalled':>8} {'first pass s':>13} {'queries':>8} {'steady pass s':>14} "
            f"{'queries':>8} {'raw SQL s':>10} {'raw ranges s':>13}"
        )
        for size in args.sizes:
            _reset()
            stalled = _populate(size)
            first, first_queries, steady, steady_queries, raw, ranged = _measure(args.repeat)
            print(
                f"{size:>10} {stalled:>8} {first:>13.3f} {first_queries:>8} {steady:>14.3f} {steady_queries:>8} "
                f"{raw:>10.4f} {ranged:>13.4f}",
                flush=True,
            )
    finally:
        connection.close()
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
    from operations.choices import KpiDirection
    from operations.models import Kpi, KpiReading, OperationsTeam, Service
    from projects.choices import Stage
    from projects.models import Project

    now = timezone.now()
    today = timezone.localdate()
    hypercare_since = now - timedelta(days=20)
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"user{i}", email=f"user{i}@example.com") for i in range(60)])
    teams = OperationsTeam.objects.bulk_create(
        [
            OperationsTeam(name=f"Team {i}", lead=users[i], **(TIGHT if i < 5 else LOOSE if i < 10 else {}))
            for i in range(TEAMS)
        ]
    )
    services = Service.objects.bulk_create([Service(team=t, name=f"Service of {t.name}") for t in teams])
    # Adoption KPIs reviewed five days ago; every other one "lower is better". Each has a reading on target from
    # before hypercare (which must not count) and one below target during it.
    kpis = Kpi.objects.bulk_create(
        [
            Kpi(
                service=s,
                name="Weekly active users" if i % 2 == 0 else "Calls per user",
                direction=KpiDirection.HIGHER if i % 2 == 0 else KpiDirection.LOWER,
                target=80 if i % 2 == 0 else 5,
                is_adoption=True,
                review_date=today - timedelta(days=5),
            )
            for i, s in enumerate(services)
        ]
    )
    KpiReading.objects.bulk_create(
        [
            KpiReading(kpi=k, value=value, measured_at=at)
            for k in kpis
            for value, at in (
                (k.target, hypercare_since - timedelta(days=1)),
                (k.target - 20 if k.direction == KpiDirection.HIGHER else k.target + 3, now - timedelta(days=2)),
            )
        ]
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
                    receiving_team=teams[(start + i) % TEAMS],
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
            team = teams[n % TEAMS]
            kind = rules[(n // stalled_every) % len(rules)] if n % stalled_every == 0 else None
            status = HandoverStatus.PREPARING
            last_activity = now - timedelta(hours=n % 48)
            submitted_at = hypercare_started_at = None
            target = today + timedelta(days=30 + n % 60)
            if kind == "idle":
                last_activity = now - timedelta(days=10)
            elif kind == "review":
                status, submitted_at = HandoverStatus.SUBMITTED, now - timedelta(days=5)
            elif kind == "target":
                target = today - timedelta(days=5)
            elif kind == "condition":
                status = HandoverStatus.ACCEPTED_WITH_CONDITIONS
            elif kind == "adoption":
                status, hypercare_started_at = HandoverStatus.HYPERCARE, hypercare_since
            elif n % 7 == 0:
                status, submitted_at = HandoverStatus.SUBMITTED, now - timedelta(hours=5)
            stalled += kind is not None
            handovers.append(
                Handover(
                    project=project,
                    receiving_team=team,
                    service=services[n % TEAMS] if kind == "adoption" else None,
                    operations_owner=team.lead,
                    target_date=target,
                    status=status,
                    status_changed_at=now,
                    submitted_at=submitted_at,
                    hypercare_started_at=hypercare_started_at,
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
                        done_at=now - timedelta(days=7 if done else 1) if done or k < 2 else None,
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
                    due_date=today - timedelta(days=5),
                    status=ConditionStatus.OPEN,
                )
                for d in decisions
            ]
        )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return stalled


# The six rules as one hand-written query, per-team thresholds included (COALESCE of the team's override and the
# default), adoption judged on the latest reading during hypercare: what the detector selects.
RAW_SQL = """
SELECT h.id FROM handover_handover h JOIN operations_operationsteam t ON t.id = h.receiving_team_id
 WHERE h.status IN ('preparing', 'returned')
   AND h.last_activity_at <= %(now)s - make_interval(days => COALESCE(t.idle_days, %(idle)s))
UNION SELECT h.id FROM handover_handover h JOIN operations_operationsteam t ON t.id = h.receiving_team_id
 WHERE h.status = 'submitted'
   AND h.submitted_at <= %(now)s - make_interval(days => COALESCE(t.review_overdue_days, %(review_overdue)s))
UNION SELECT i.handover_id FROM handover_checklistitem i JOIN handover_handover h ON h.id = i.handover_id
  JOIN operations_operationsteam t ON t.id = h.receiving_team_id
 WHERE i.status = 'done' AND h.status IN ('preparing', 'submitted', 'returned')
   AND i.done_at <= %(now)s - make_interval(days => COALESCE(t.verification_waiting_days, %(verification_waiting)s))
UNION SELECT h.id FROM handover_handover h JOIN operations_operationsteam t ON t.id = h.receiving_team_id
 WHERE h.status IN ('preparing', 'submitted', 'returned')
   AND h.target_date < %(today)s::date - COALESCE(t.past_target_days, %(past_target)s)
UNION SELECT c.handover_id FROM handover_condition c JOIN handover_handover h ON h.id = c.handover_id
  JOIN operations_operationsteam t ON t.id = h.receiving_team_id
 WHERE c.status = 'open' AND h.status <> 'cancelled'
   AND c.due_date < %(today)s::date - COALESCE(t.conditions_overdue_days, %(conditions_overdue)s)
UNION SELECT h.id FROM handover_handover h JOIN operations_operationsteam t ON t.id = h.receiving_team_id
  JOIN operations_kpi k ON k.service_id = h.service_id
 WHERE h.status = 'hypercare' AND k.is_adoption
   AND k.review_date <= %(today)s::date - COALESCE(t.adoption_below_target_days, %(adoption_below_target)s)
   AND NOT COALESCE((SELECT CASE WHEN k.direction = 'higher' THEN r.value >= k.target ELSE r.value <= k.target END
                       FROM operations_kpireading r
                      WHERE r.kpi_id = k.id AND r.measured_at >= h.hypercare_started_at AND r.measured_at <= %(now)s
                      ORDER BY r.measured_at DESC, r.id DESC LIMIT 1), false)
"""


def _ranges_sql() -> str:
    """The same selection with each per-team threshold as its own range (``team IN (...) AND col <= cutoff``), the
    form the detector's queries take so that the indexes on each rule's clock serve them; built from the teams."""
    from django.conf import settings

    from operations.models import OperationsTeam

    teams = list(OperationsTeam.objects.all())

    def cut(rule: str, team_col: str, condition: str) -> str:
        default = settings.HANDOVER_STALL_THRESHOLDS[rule]
        groups: dict[int, list[int]] = {}
        for team in teams:
            days = getattr(team, f"{rule}_days")
            if days is not None and days != default:
                groups.setdefault(days, []).append(team.pk)
        overriding = [pk for ids in groups.values() for pk in ids] or [0]
        parts = [f"({condition.format(days=default)} AND {team_col} NOT IN ({', '.join(map(str, overriding))}))"]
        for days, ids in groups.items():
            parts.append(f"({condition.format(days=days)} AND {team_col} IN ({', '.join(map(str, ids))}))")
        return "(" + " OR ".join(parts) + ")"

    ago = "%(now)s - interval '{days} days'"
    return f"""
SELECT h.id FROM handover_handover h WHERE h.status IN ('preparing', 'returned')
   AND {cut("idle", "h.receiving_team_id", "h.last_activity_at <= " + ago)}
UNION SELECT h.id FROM handover_handover h WHERE h.status = 'submitted'
   AND {cut("review_overdue", "h.receiving_team_id", "h.submitted_at <= " + ago)}
UNION SELECT i.handover_id FROM handover_checklistitem i JOIN handover_handover h ON h.id = i.handover_id
 WHERE i.status = 'done' AND h.status IN ('preparing', 'submitted', 'returned')
   AND {cut("verification_waiting", "h.receiving_team_id", "i.done_at <= " + ago)}
UNION SELECT h.id FROM handover_handover h WHERE h.status IN ('preparing', 'submitted', 'returned')
   AND {cut("past_target", "h.receiving_team_id", "h.target_date < %(today)s::date - {days}")}
UNION SELECT c.handover_id FROM handover_condition c JOIN handover_handover h ON h.id = c.handover_id
 WHERE c.status = 'open' AND h.status <> 'cancelled'
   AND {cut("conditions_overdue", "h.receiving_team_id", "c.due_date < %(today)s::date - {days}")}
UNION SELECT h.id FROM handover_handover h JOIN operations_kpi k ON k.service_id = h.service_id
 WHERE h.status = 'hypercare' AND k.is_adoption
   AND {cut("adoption_below_target", "h.receiving_team_id", "k.review_date <= %(today)s::date - {days}")}
   AND NOT COALESCE((SELECT CASE WHEN k.direction = 'higher' THEN r.value >= k.target ELSE r.value <= k.target END
                       FROM operations_kpireading r
                      WHERE r.kpi_id = k.id AND r.measured_at >= h.hypercare_started_at AND r.measured_at <= %(now)s
                      ORDER BY r.measured_at DESC, r.id DESC LIMIT 1), false)
"""


def _statements(captured) -> int:
    return sum(not q["sql"].lstrip().upper().startswith(CONTROL) for q in captured.captured_queries)


def _measure(repeat: int) -> tuple[float, int, float, int, float, float]:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from config.celery import app
    from handover.models import Notification, StallFlag
    from handover.outbox import queue
    from handover.stalls.services import detect_stalls

    firsts: list[float] = []
    steadies: list[float] = []
    raws: list[float] = []
    raws_ranged: list[float] = []
    first_queries = steady_queries = 0
    ranges = _ranges_sql()
    for _ in range(repeat):
        StallFlag.objects.all().delete()
        Notification.objects.all().delete()
        with app.connection_for_write() as broker:
            broker.default_channel.queue_purge(app.conf.task_default_queue)
        queue.publish_breaker.reset()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            detect_stalls()
            firsts.append(time.perf_counter() - started)
        first_queries = _statements(captured)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            detect_stalls()
            steadies.append(time.perf_counter() - started)
        steady_queries = _statements(captured)
        flagged = set(StallFlag.objects.filter(resolved_at__isnull=True).values_list("handover_id", flat=True))
        params = {"now": timezone.now(), "today": timezone.localdate(), **settings.HANDOVER_STALL_THRESHOLDS}
        for sql, times in ((RAW_SQL, raws), (ranges, raws_ranged)):
            with connection.cursor() as cursor:
                started = time.perf_counter()
                cursor.execute(sql, params)
                selected = {row[0] for row in cursor.fetchall()}
                times.append(time.perf_counter() - started)
            if selected != flagged:
                sys.exit(f"the raw SQL and the detector disagree: {len(selected ^ flagged)} handovers differ")
    return (
        statistics.median(firsts),
        first_queries,
        statistics.median(steadies),
        steady_queries,
        statistics.median(raws),
        statistics.median(raws_ranged),
    )


if __name__ == "__main__":
    main()
