"""Services for stalled handovers: the detector and what an operations owner does with its flags.

Detection is set-based: each rule is one indexed query that returns the handovers for which it is true now
(thresholds per team folded into the query), compared with the open flags of that rule (one query). New ones are
opened, cleared ones resolved, with bulk writes; the work follows the number of candidates, not of handovers.

Everything it writes is idempotent under concurrency: the database allows one open flag per handover and rule
(partial unique constraint), one notification per recipient, channel, flag and kind, and one event per dedupe
key; the bulk inserts ignore conflicts. Two passes at once, or a pass retried, therefore end with the same rows.
"""

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from config.errors import IllegalTransition, InvalidInput, NotPermitted
from config.validation import require_text
from handover.choices import (
    OPEN_STATUSES,
    ActivityVerb,
    Channel,
    ConditionStatus,
    DeliveryStatus,
    DetectionSource,
    EventType,
    HandoverStatus,
    ItemStatus,
    NotificationKind,
    StallRule,
)
from handover.models import Activity, ChecklistItem, Condition, DetectionRun, Handover, Notification, StallFlag
from handover.outbox.queue import enqueue
from handover.selectors import is_operations_owner
from handover.webhooks.services import emit_many, handover_payload, handover_web_url
from operations.choices import KpiDirection
from operations.models import KpiReading, OperationsTeam
from projects.models import Project

MAX_SNOOZE = timedelta(days=90)

# Who hears about each rule (docs/domain.md "Stalled handovers"): the operations owner always; some rules also the
# manager or the condition owners. Escalations go to the receiving team's lead.
RULE_RECIPIENTS: dict[str, tuple[str, ...]] = {
    StallRule.IDLE: ("owner", "manager"),
    StallRule.REVIEW_OVERDUE: ("owner",),
    StallRule.VERIFICATION_WAITING: ("owner",),
    StallRule.PAST_TARGET: ("owner", "manager"),
    StallRule.CONDITIONS_OVERDUE: ("owner", "condition_owners"),
    StallRule.ADOPTION_BELOW_TARGET: ("owner", "manager"),
}

# --------------------------------------------------------------------------------------------- the rules


@dataclass
class Thresholds:
    """Each team's threshold per rule, loaded once per pass and folded into the rule's query.

    Teams on the default threshold share one condition (``team not in the overriding teams``); each distinct
    override adds one more, so the query stays small however many teams there are.
    """

    teams: list[OperationsTeam]

    def older_than(self, rule: StallRule, field_name: str, now: datetime, team_path: str = "receiving_team") -> Q:
        """``field_name`` lies at least the team's threshold in the past."""
        return self._cut(
            lambda t: t.stall_threshold(rule),
            settings.HANDOVER_STALL_THRESHOLDS[rule],
            lambda days: Q(**{f"{field_name}__lte": now - timedelta(days=days)}),
            team_path,
        )

    def date_before(self, rule: StallRule, field_name: str, today: date, team_path: str = "receiving_team") -> Q:
        """The date in ``field_name`` is more than the team's threshold in days behind ``today``."""
        return self._cut(
            lambda t: t.stall_threshold(rule),
            settings.HANDOVER_STALL_THRESHOLDS[rule],
            lambda days: Q(**{f"{field_name}__lt": today - timedelta(days=days)}),
            team_path,
        )

    def escalation_due(self, field_name: str, now: datetime, team_path: str) -> Q:
        return self._cut(
            lambda t: t.escalation_delay_days,
            settings.HANDOVER_ESCALATION_DAYS,
            lambda days: Q(**{f"{field_name}__lte": now - timedelta(days=days)}),
            team_path,
        )

    def _cut(self, days_of, default_days: int, cutoff: Callable[[int], Q], team_path: str) -> Q:
        overrides: dict[int, list[int]] = defaultdict(list)
        for team in self.teams:
            if days_of(team) != default_days:
                overrides[days_of(team)].append(team.pk)
        team_field = f"{team_path}_id__in"
        condition = cutoff(default_days) & ~Q(**{team_field: [pk for ids in overrides.values() for pk in ids]})
        for days, team_ids in overrides.items():
            condition |= cutoff(days) & Q(**{team_field: team_ids})
        return condition


Found = dict[int, dict]  # handover id → what made the rule true (stored on the flag when it opens)


def _idle(t: Thresholds, now: datetime, today: date) -> Found:
    rows = Handover.objects.filter(
        t.older_than(StallRule.IDLE, "last_activity_at", now),
        status__in=(HandoverStatus.PREPARING, HandoverStatus.RETURNED),
    ).values_list("pk", "last_activity_at")
    return {pk: {"last_activity_at": at.isoformat()} for pk, at in rows}


def _review_overdue(t: Thresholds, now: datetime, today: date) -> Found:
    rows = Handover.objects.filter(
        t.older_than(StallRule.REVIEW_OVERDUE, "submitted_at", now), status=HandoverStatus.SUBMITTED
    ).values_list("pk", "submitted_at")
    # Filtered on submitted_at above, so it is set.
    return {pk: {"submitted_at": at.isoformat()} for pk, at in rows if at is not None}


def _verification_waiting(t: Thresholds, now: datetime, today: date) -> Found:
    rows = ChecklistItem.objects.filter(
        t.older_than(StallRule.VERIFICATION_WAITING, "done_at", now, team_path="handover__receiving_team"),
        status=ItemStatus.DONE,
        handover__status__in=OPEN_STATUSES,
    ).values_list("handover_id", "pk")
    found: Found = {}
    for handover_id, item_id in rows:
        found.setdefault(handover_id, {"items": []})["items"].append(item_id)
    return found


def _past_target(t: Thresholds, now: datetime, today: date) -> Found:
    # Not accepted and not cancelled: exactly the statuses in which the checklist is still open.
    rows = Handover.objects.filter(
        t.date_before(StallRule.PAST_TARGET, "target_date", today), status__in=OPEN_STATUSES
    ).values_list("pk", "target_date")
    return {pk: {"target_date": target.isoformat()} for pk, target in rows}


def _conditions_overdue(t: Thresholds, now: datetime, today: date) -> Found:
    rows = (
        Condition.objects.filter(
            t.date_before(StallRule.CONDITIONS_OVERDUE, "due_date", today, team_path="handover__receiving_team"),
            status=ConditionStatus.OPEN,
        )
        .exclude(handover__status=HandoverStatus.CANCELLED)
        .values_list("handover_id", "pk", "owner_id")
    )
    found: Found = {}
    for handover_id, condition_id, owner_id in rows:
        entry = found.setdefault(handover_id, {"conditions": [], "condition_owners": []})
        entry["conditions"].append(condition_id)
        if owner_id not in entry["condition_owners"]:
            entry["condition_owners"].append(owner_id)
    return found


def _adoption_below_target(t: Thresholds, now: datetime, today: date) -> Found:
    """In hypercare, an adoption KPI below target at its review date (plus the team's threshold).

    The KPI is judged by its latest reading taken during this hypercare: at or after the handover entered
    hypercare and not later than now. A reading from before hypercare (the project's own baseline, an earlier
    run) says nothing about adoption of what was handed over, and a KPI with no reading in the window counts as
    below target: at its review date nobody can show it is met. A later reading at or beyond the target (in the
    KPI's direction) makes the rule false, so the flag resolves.
    """
    # From the handover's side: its team (whose threshold applies) is single-valued there, and each row is one
    # (handover, adoption KPI of its service) pair.
    window = KpiReading.objects.filter(
        kpi=OuterRef("service__kpis"),
        measured_at__gte=OuterRef("hypercare_started_at"),
        measured_at__lte=now,
    ).order_by("-measured_at", "-id")
    kpis = (
        Handover.objects.filter(
            t.date_before(
                StallRule.ADOPTION_BELOW_TARGET,
                "service__kpis__review_date",
                today + timedelta(days=1),  # on the review date itself, not the day after
            ),
            service__kpis__is_adoption=True,
            status=HandoverStatus.HYPERCARE,
        )
        .annotate(latest=Subquery(window.values("value")[:1]))
        .order_by()
        .values_list("service__kpis__pk", "pk", "latest", "service__kpis__target", "service__kpis__direction")
    )
    found: Found = {}
    for kpi_id, handover_id, value, target, direction in kpis:
        met = value is not None and (value >= target if direction == KpiDirection.HIGHER else value <= target)
        if not met:
            entry = found.setdefault(handover_id, {"kpis": [], "latest": {}})
            entry["kpis"].append(kpi_id)
            # Decimals come back as 9 or 9.0000 depending on the database: stored plainly, the same everywhere.
            entry["latest"][str(kpi_id)] = None if value is None else format(value.normalize(), "f")
    return found


RULES: dict[StallRule, Callable[[Thresholds, datetime, date], Found]] = {
    StallRule.IDLE: _idle,
    StallRule.REVIEW_OVERDUE: _review_overdue,
    StallRule.VERIFICATION_WAITING: _verification_waiting,
    StallRule.PAST_TARGET: _past_target,
    StallRule.CONDITIONS_OVERDUE: _conditions_overdue,
    StallRule.ADOPTION_BELOW_TARGET: _adoption_below_target,
}

# ------------------------------------------------------------------------------------------- detection


@dataclass
class DetectionResult:
    """What one pass did."""

    run: DetectionRun
    opened: list[StallFlag] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)


class _QueryCounter:
    """Counts the queries of a pass (stored on its DetectionRun), cheaply and in production too."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def detect_stalls(*, now: datetime | None = None, source: DetectionSource = DetectionSource.COMMAND) -> DetectionResult:
    """One detection pass over every rule; safe to run concurrently and repeatedly.

    ``source`` says what ran it (beat's periodic task, or the command and everything else): /healthz counts only
    beat's passes as proof that the scheduler is alive.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    counter = _QueryCounter()
    with connection.execute_wrapper(counter):
        thresholds = Thresholds(list(OperationsTeam.objects.all()))
        result = DetectionResult(run=DetectionRun.objects.create(started_at=now, source=source))
        for rule, find in RULES.items():
            with _step(f"rule:{rule}"):
                opened, resolved = _sync_rule(rule, find(thresholds, now, today), now)
            result.opened += opened
            result.resolved += resolved
        with _step("escalate"):
            result.escalated = _escalate(thresholds, now)
        with _step("remind"):
            result.reminded = _remind(now)
    DetectionRun.objects.filter(pk=result.run.pk).update(
        queries=counter.count,
        finished_at=timezone.now(),
        opened=len(result.opened),
        resolved=len(result.resolved),
        escalated=len(result.escalated),
        reminded=len(result.reminded),
    )
    return result


@contextmanager
def _step(name: str) -> Iterator[None]:
    """One step of a pass, in its own transaction, taken by one pass at a time.

    Passes running at once (beat and the command, two workers) still write each fact once, thanks to the
    constraints; taking each step in turn also makes every pass read what the other one committed, so its run
    record and its output report only the flags it opened, resolved, escalated or reminded itself. On PostgreSQL a
    transaction-scoped advisory lock per step does it; SQLite's transactions take the write lock when they begin
    (``transaction_mode`` IMMEDIATE), which serialises the steps already.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s::int, %s::int)", [_LOCK_SPACE, zlib.crc32(name.encode()) >> 1]
                )
        yield


_LOCK_SPACE = 0x48_4F_56  # "HOV": the advisory lock namespace of the stall detector


def _sync_rule(rule: StallRule, found: Found, now: datetime) -> tuple[list[StallFlag], list[int]]:
    open_flags = dict(StallFlag.objects.filter(rule=rule, resolved_at__isnull=True).values_list("handover_id", "pk"))
    new_ids = found.keys() - open_flags.keys()
    gone = [flag_id for handover_id, flag_id in open_flags.items() if handover_id not in found]

    opened: list[StallFlag] = []
    if new_ids:
        StallFlag.objects.bulk_create(
            [StallFlag(handover_id=h, rule=rule, opened_at=now, detail=found[h]) for h in new_ids],
            ignore_conflicts=True,  # another pass opened it first: one episode all the same
        )
        opened = list(
            StallFlag.objects.filter(rule=rule, handover_id__in=new_ids, resolved_at__isnull=True).select_related(
                "handover__project", "handover__receiving_team"
            )
        )
        _notify(opened, NotificationKind.OPENED, now)
        _emit_flags(EventType.STALL_OPENED, opened, now)
    if rule == StallRule.CONDITIONS_OVERDUE:
        _notify_new_condition_owners(open_flags, found, now)
    resolved: list[int] = []
    if gone:
        resolving = list(
            StallFlag.objects.filter(pk__in=gone, resolved_at__isnull=True).select_related("handover__project")
        )
        StallFlag.objects.filter(pk__in=gone, resolved_at__isnull=True).update(resolved_at=now)
        resolved = [flag.pk for flag in resolving]
        # What was still held (a snooze, a broker outage) has nothing true to say any more.
        Notification.objects.filter(flag__in=resolved, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.CANCELLED, last_error="The stall flag resolved before this was sent."
        )
        _emit_flags(EventType.STALL_RESOLVED, resolving, now)
    return opened, resolved


def _notify_new_condition_owners(open_flags: dict[int, int], found: Found, now: datetime) -> None:
    """A condition of another owner falling overdue during an open episode: tell that owner too, once.

    The episode stays one flag; its detail gathers the owners, and the notification constraint keeps everyone
    already told from hearing it again. A snoozed flag is left as it is: its detail does not grow, so the first
    pass after the snooze ends finds the new owners and tells them then (with the owner's reminder), and nothing
    reaches anyone, in the inbox or by email, before the date.
    """
    continuing = {flag_id: found[handover_id] for handover_id, flag_id in open_flags.items() if handover_id in found}
    if not continuing:
        return
    flags = list(
        StallFlag.objects.filter(
            Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now),
            pk__in=list(continuing),
            resolved_at__isnull=True,
        ).select_related("handover__project", "handover__receiving_team")
    )
    grown = []
    for flag in flags:
        known = set(flag.detail.get("condition_owners", []))
        now_overdue = continuing[flag.pk]
        if set(now_overdue["condition_owners"]) - known:
            flag.detail = {
                "conditions": sorted(set(flag.detail.get("conditions", [])) | set(now_overdue["conditions"])),
                "condition_owners": sorted(known | set(now_overdue["condition_owners"])),
            }
            grown.append(flag)
    if grown:
        StallFlag.objects.bulk_update(grown, ["detail"])
        _notify(grown, NotificationKind.OPENED, now)


def _escalate(thresholds: Thresholds, now: datetime) -> list[int]:
    """Unacknowledged, unsnoozed flags older than the team's escalation delay go to the team lead, once.

    Only when the team has an active lead: without one nobody would hear it, so the flag stays unescalated and
    the first pass after a lead is named escalates it.
    """
    due = StallFlag.objects.filter(
        thresholds.escalation_due("opened_at", now, team_path="handover__receiving_team"),
        Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now),
        resolved_at__isnull=True,
        acknowledged_at__isnull=True,
        escalated_at__isnull=True,
        handover__receiving_team__lead__is_active=True,
    )
    # Locked as read: an acknowledge or snooze committing meanwhile (it locks the flag too) takes the flag out of
    # this step instead of being escalated over.
    flags = list(due.select_related("handover__project", "handover__receiving_team").select_for_update(of=("self",)))
    if not flags:
        return []
    StallFlag.objects.filter(pk__in=[f.pk for f in flags], escalated_at__isnull=True).update(escalated_at=now)
    _notify(flags, NotificationKind.ESCALATED, now)
    _emit_flags(EventType.STALL_ESCALATED, flags, now)
    return [f.pk for f in flags]


def _remind(now: datetime) -> list[int]:
    """When a snooze ends on a flag still open and unacknowledged, remind the operations owner once."""
    flags = list(
        StallFlag.objects.filter(
            resolved_at__isnull=True,
            acknowledged_at__isnull=True,
            snoozed_until__lte=now,
            reminded_at__isnull=True,
        )
        .select_related("handover__project", "handover__receiving_team")
        .select_for_update(of=("self",))  # as in _escalate: an acknowledge meanwhile is not reminded over
    )
    if not flags:
        return []
    StallFlag.objects.filter(pk__in=[f.pk for f in flags], reminded_at__isnull=True).update(reminded_at=now)
    _notify(flags, NotificationKind.REMINDER, now)
    return [f.pk for f in flags]


# ------------------------------------------------------------------------------------------ notifying


@dataclass(frozen=True)
class _Audience:
    """Who may hear about the flags of one notifying step, read in two queries whatever the number of flags."""

    on_team: frozenset[tuple[int, int]]  # (team, user): leads and members of the flags' receiving teams
    in_project: frozenset[tuple[int, int]]  # (project, user): members of the flags' confidential projects

    @classmethod
    def of(cls, flags: list[StallFlag]) -> "_Audience":
        teams = {flag.handover.receiving_team for flag in flags}
        on_team = set(
            OperationsTeam.members.through.objects.filter(operationsteam__in=teams).values_list(
                "operationsteam_id", "user_id"
            )
        ) | {(team.pk, team.lead_id) for team in teams if team.lead_id}
        confidential = {flag.handover.project_id for flag in flags if flag.handover.project.confidential}
        in_project = (
            set(
                Project.members.through.objects.filter(project_id__in=confidential).values_list("project_id", "user_id")
            )
            if confidential
            else set()
        )
        return cls(on_team=frozenset(on_team), in_project=frozenset(in_project))

    def owner(self, handover: Handover) -> set[int]:
        """The operations owner while on the receiving team; once they have left it, the team's lead."""
        if (handover.receiving_team_id, handover.operations_owner_id) in self.on_team:
            return {handover.operations_owner_id}
        return _lead_of(handover)

    def may_see(self, handover: Handover, user_id: int, *, is_staff: bool) -> bool:
        """As ``Project.objects.visible_to``: a confidential project is told only to those who take part in it."""
        project = handover.project
        return (
            not project.confidential
            or is_staff
            or user_id == project.manager_id
            or (project.pk, user_id) in self.in_project
            or (handover.receiving_team_id, user_id) in self.on_team
        )


def _lead_of(handover: Handover) -> set[int]:
    """The receiving team's lead, when it has one: nobody to escalate to otherwise."""
    lead_id = handover.receiving_team.lead_id
    return {lead_id} if lead_id is not None else set()


def _recipients(flag: StallFlag, kind: NotificationKind, audience: _Audience) -> set[int]:
    handover = flag.handover
    if kind == NotificationKind.ESCALATED:
        return _lead_of(handover)
    if kind == NotificationKind.REMINDER:
        return audience.owner(handover)
    people: set[int] = set()
    for who in RULE_RECIPIENTS[flag.rule]:
        if who == "owner":
            people |= audience.owner(handover)
        elif who == "manager" and handover.project.manager_id:
            people.add(handover.project.manager_id)
        elif who == "condition_owners":
            people.update(flag.detail.get("condition_owners", []))
    return people


def _message(flag: StallFlag, kind: NotificationKind) -> tuple[str, str]:
    handover = flag.handover
    project = handover.project
    what = {
        StallRule.IDLE: "has had no activity for a while",
        StallRule.REVIEW_OVERDUE: "was submitted and still waits for a decision",
        StallRule.VERIFICATION_WAITING: "has done items waiting for verification",
        StallRule.PAST_TARGET: f"is past its target date ({handover.target_date:%d %b %Y}) and not accepted",
        StallRule.CONDITIONS_OVERDUE: "has a condition of its acceptance past its due date",
        StallRule.ADOPTION_BELOW_TARGET: "is in hypercare with an adoption measure below target",
    }[StallRule(flag.rule)]
    prefix = {
        NotificationKind.OPENED: "Stalled",
        NotificationKind.ESCALATED: "Escalated",
        NotificationKind.REMINDER: "Reminder",
    }[kind]
    title = f"{prefix}: {project.code} {project.name} ({flag.get_rule_display().lower()})"
    body = (
        f"The handover of {project.code} {project.name} to {handover.receiving_team} {what}.\n\n"
        f"Rule: {flag.get_rule_display()} (open since {flag.opened_at:%d %b %Y %H:%M}).\n"
        f"Handover: {handover_web_url(handover)}\n"
    )
    if kind == NotificationKind.ESCALATED:
        body += "\nYou receive this as the team's lead: the flag was not acknowledged within the escalation delay.\n"
    return title, body


def _notify(flags: list[StallFlag], kind: NotificationKind, now: datetime) -> None:
    """One in-app and one email notification per recipient and flag; the unique constraint keeps it once."""
    from django.contrib.auth import get_user_model

    audience = _Audience.of(flags)
    wanted = {flag.pk: _recipients(flag, kind, audience) for flag in flags}
    user_ids = set().union(*wanted.values()) if wanted else set()
    users = {
        pk: (email, is_staff)
        for pk, email, is_staff in get_user_model()
        .objects.filter(pk__in=user_ids, is_active=True)
        .values_list("pk", "email", "is_staff")
    }
    emails = {pk: email for pk, (email, _) in users.items()}
    rows = []
    for flag in flags:
        title, body = _message(flag, kind)
        for user_id in wanted[flag.pk]:
            if user_id not in users or not audience.may_see(flag.handover, user_id, is_staff=users[user_id][1]):
                continue
            common = {"recipient_id": user_id, "flag": flag, "kind": kind, "body": body, "created_at": now}
            # The in-app row is its own delivery: it is in the inbox the moment it exists. (No caller notifies
            # about a flag while it is snoozed, so it is never shown early.)
            rows.append(
                Notification(
                    channel=Channel.IN_APP,
                    status=DeliveryStatus.SENT,
                    sent_at=now,
                    next_attempt_at=now,
                    subject=title,
                    **common,
                )
            )
            if emails[user_id]:
                rows.append(
                    Notification(channel=Channel.EMAIL, next_attempt_at=now, subject=f"[Handover] {title}", **common)
                )
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    pending = Notification.objects.filter(
        flag__in=[f.pk for f in flags], kind=kind, channel=Channel.EMAIL, status=DeliveryStatus.PENDING
    ).values_list("pk", flat=True)
    enqueue(Notification, list(pending))


def _emit_flags(event_type: EventType, flags: list[StallFlag], now: datetime) -> None:
    emit_many(
        event_type,
        [
            (
                {
                    **handover_payload(flag.handover),
                    "flag": {"id": flag.pk, "rule": flag.rule, "opened_at": flag.opened_at.isoformat()},
                },
                flag.handover_id,
                f"{event_type}:{flag.pk}",
                flag.handover.project.confidential,
            )
            for flag in flags
        ],
        now=now,
    )


# ------------------------------------------------------------------------------- acknowledge and snooze


def _lock_flag(flag: StallFlag, by) -> StallFlag:
    flag = (
        StallFlag.objects.select_for_update(of=("self",))
        .select_related("handover__project", "handover__receiving_team")
        .get(pk=flag.pk)
    )
    if not is_operations_owner(flag.handover, by):
        raise NotPermitted(
            "Only the operations owner or the receiving team's lead may act on a stall flag.", rule="owner_only"
        )
    if flag.resolved_at is not None:
        raise IllegalTransition("The stall has resolved itself; nothing to do.", rule="flag_resolved")
    return flag


def _audit(flag: StallFlag, by, verb: ActivityVerb, now: datetime, message: str, data: dict) -> None:
    # Recorded in the handover's activity log, but deliberately without moving last_activity_at: acknowledging a
    # stall is not progress on the handover, and must not make the idle rule resolve.
    Activity.objects.create(
        handover=flag.handover,
        verb=verb,
        actor=by,
        message=message,
        created_at=now,
        data={"flag": flag.pk, "rule": flag.rule, **data},
    )


@transaction.atomic
def stall_acknowledge(*, flag: StallFlag, by, note: str) -> StallFlag:
    """The operations owner has seen the flag and says what happens next; it will not escalate."""
    flag = _lock_flag(flag, by)
    if flag.acknowledged_at is not None:
        raise IllegalTransition("The flag is already acknowledged.", rule="flag_acknowledged")
    note = require_text(note, field="note", rule="note_required", what="A note saying what happens next")
    now = timezone.now()
    flag.acknowledged_by, flag.acknowledged_at, flag.acknowledge_note = by, now, note
    flag.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledge_note"])
    _audit(flag, by, ActivityVerb.STALL_ACKNOWLEDGED, now, note, {})
    return flag


@transaction.atomic
def stall_snooze(*, flag: StallFlag, by, until: datetime, reason: str) -> StallFlag:
    """Hold the flag's notifications and escalation until ``until``; it stays visible meanwhile."""
    flag = _lock_flag(flag, by)
    now = timezone.now()
    if not isinstance(until, datetime) or until <= now:
        raise InvalidInput("Snooze until a moment in the future.", rule="snooze_in_past", field="until")
    if until > now + MAX_SNOOZE:
        raise InvalidInput(f"Snooze for at most {MAX_SNOOZE.days} days.", rule="snooze_too_long", field="until")
    reason = require_text(reason, field="reason", rule="reason_required", what="A reason for snoozing")
    flag.snoozed_until, flag.snooze_reason, flag.snoozed_by = until, reason, by
    flag.save(update_fields=["snoozed_until", "snooze_reason", "snoozed_by"])
    # Held messages go out when the (possibly moved) snooze ends, not at an earlier snooze's date.
    Notification.objects.filter(flag=flag, status=DeliveryStatus.PENDING).update(next_attempt_at=until)
    _audit(flag, by, ActivityVerb.STALL_SNOOZED, now, reason, {"until": until.isoformat()})
    return flag
