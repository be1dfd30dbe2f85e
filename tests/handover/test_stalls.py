"""Stalled handovers: the detector, its notifications and escalation, acknowledge and snooze, and the events other
tools receive (docs/domain.md "Stalled handovers" and "Events for other tools").

Service level, without a Celery worker: ``stalls.detect_stalls()`` and the send functions of ``handover.outbox`` are
called directly (their after-commit enqueueing never fires inside a test transaction), and the locmem email backend
collects what is sent. The clock is frozen at ``T0`` before any fixture writes a row and is moved only by the test;
handovers are built through the services, so every timestamp a rule reads is a real one.

Each rule has a ``Case``: a handover for which the rule becomes true at a known moment, and the service calls that
make it false and true again. The receiving team (Service desk) uses the settings' thresholds unless a test overrides
one; a second team (Facilities) overrides all of them, so a threshold leaking from one team to another shows.
"""

import base64
import datetime as dt
import re
import secrets
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config.errors import IllegalTransition, InvalidInput, NotPermitted
from handover import services as hs
from handover.choices import (
    ActivityVerb,
    Channel,
    DeliveryStatus,
    EventType,
    ItemStatus,
    NotificationKind,
    Risk,
    Side,
    StallRule,
)
from handover.models import (
    Activity,
    ChecklistItem,
    ChecklistTemplate,
    DetectionRun,
    Event,
    Handover,
    Notification,
    StallFlag,
    TemplateItem,
    WebhookDelivery,
    WebhookSubscription,
)
from handover.notifications import services as notification_services
from handover.outbox import queue
from handover.outbox import sweep as outbox_sweep
from handover.stalls import services as stalls
from handover.stalls import tasks as stall_tasks
from handover.webhooks import services as webhooks
from operations import services as ops
from operations.choices import KpiDirection
from operations.models import OperationsTeam
from projects import services as ps
from projects.choices import Stage
from tests.factories import ProjectFactory, TeamFactory, TemplateFactory
from tests.network import RawServer

from .conftest import EVIDENCE_URL

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2031, 3, 3, 9, 0, tzinfo=dt.UTC)  # a Monday morning, weeks away from any DST change
TICK = dt.timedelta(microseconds=1)  # "a moment": the smallest step the database stores
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

RULES = list(StallRule)
RULE_IDS = [rule.value for rule in RULES]
DOMAIN_THRESHOLDS = {
    StallRule.IDLE: 7,
    StallRule.REVIEW_OVERDUE: 3,
    StallRule.VERIFICATION_WAITING: 5,
    StallRule.PAST_TARGET: 0,
    StallRule.CONDITIONS_OVERDUE: 0,
    StallRule.ADOPTION_BELOW_TARGET: 0,
}
OPENED, ESCALATED, REMINDER = NotificationKind.OPENED, NotificationKind.ESCALATED, NotificationKind.REMINDER

# Pinned query counts of one detection pass (see the query-count test): a change here is a deliberate one.
# On PostgreSQL each of a pass's eight steps also takes its advisory lock (one statement each).
STEP_LOCKS = 8 if connection.vendor == "postgresql" else 0
OPENING_PASS_QUERIES = 44 + STEP_LOCKS  # notifying reads who is on the receiving teams (one query)
ESCALATING_PASS_QUERIES = 43 + STEP_LOCKS


# ------------------------------------------------------------------------------------------------ helpers


def default_days(rule: StallRule) -> int:
    return django_settings.HANDOVER_STALL_THRESHOLDS[rule]


def midnight(day: dt.date) -> dt.datetime:
    """The first moment of ``day`` where the users are: the date rules count local days."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def detect() -> stalls.DetectionResult:
    return stalls.detect_stalls()


def flags(handover: Handover, rule: StallRule) -> list[StallFlag]:
    """Every episode of ``rule`` on ``handover``, oldest first."""
    return list(StallFlag.objects.filter(handover=handover, rule=rule).order_by("pk"))


def open_flags(handover: Handover, rule: StallRule) -> list[StallFlag]:
    return [flag for flag in flags(handover, rule) if flag.is_open]


def notified(flag: StallFlag, kind: NotificationKind = OPENED) -> list[tuple[str, str]]:
    """(recipient, channel) of every notification of ``kind`` about ``flag``, duplicates included."""
    rows = Notification.objects.filter(flag=flag, kind=kind).values_list("recipient__username", "channel")
    return sorted(rows)


def each_channel(*usernames: str) -> list[tuple[str, str]]:
    """One in-app and one email notification for each of ``usernames``."""
    return sorted((username, channel) for username in usernames for channel in Channel.values)


def emails(flag: StallFlag, kind: NotificationKind = OPENED) -> list[Notification]:
    return list(Notification.objects.filter(flag=flag, kind=kind, channel=Channel.EMAIL).order_by("pk"))


def send(notifications: list[Notification]) -> list[bool]:
    return [notification_services.send_notification(notification.pk) for notification in notifications]


def address(username: str) -> str:
    return f"{username}@example.com"  # UserFactory's


def subscribe(owner, *, url: str = "https://hooks.example.com/handover", events=(), is_active: bool = True):
    """A webhook subscription made directly, with a secret in the Standard Webhooks format."""
    return WebhookSubscription.objects.create(
        owner=owner,
        url=url,
        events=list(events),
        is_active=is_active,
        secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    )


def event_types(**filters) -> Counter:
    return Counter(Event.objects.filter(**filters).values_list("type", flat=True))


@contextmanager
def nothing_written(flag: StallFlag) -> Iterator[None]:
    """The flag, its handover and the activity log are exactly as before the block."""

    def state() -> tuple:
        return (
            StallFlag.objects.filter(pk=flag.pk).values().get(),
            Handover.objects.filter(pk=flag.handover_id).values().get(),
            list(Activity.objects.order_by("pk").values()),
        )

    before = state()
    yield
    assert state() == before


def sql_of(captured: CaptureQueriesContext) -> str:
    return "\n".join(query["sql"] for query in captured.captured_queries)


# ------------------------------------------------------------------------------------------------- world


@dataclass
class World:
    """The Service desk receiving CRM-like projects from one manager, with a tiny checklist per handover."""

    people: SimpleNamespace
    team: OperationsTeam
    template: ChecklistTemplate

    def handover(self, *, target: dt.date | None = None, service=None) -> Handover:
        """A new project's preparing handover, planned by its manager now."""
        manager = self.people.manager
        project = ProjectFactory(manager=manager, receiving_team=self.team, members=[self.people.member])
        project = ps.project_transition(project=project, to=Stage.PLANNING, by=manager)
        return hs.handover_create(
            project=project,
            template=self.template,
            operations_owner=self.people.owner,
            target_date=target or timezone.localdate() + 30 * DAY,
            service=service,
            by=manager,
        )

    def item(self, handover: Handover, side: Side = Side.PROJECT) -> ChecklistItem:
        """The mandatory item of ``side`` (the tiny template has one per side)."""
        return handover.items.get(side=side, mandatory=True)

    def complete(self, item: ChecklistItem) -> ChecklistItem:
        """Done by its responsible side, so that the operations owner may verify it."""
        by = self.people.manager if item.side == Side.PROJECT else self.people.ops_member
        return hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL)

    def verify(self, item: ChecklistItem) -> ChecklistItem:
        return hs.item_verify(item=item, by=self.people.owner)

    def submit(self, handover: Handover) -> Handover:
        """Complete and verify every mandatory item, then submit."""
        for item in handover.items.filter(mandatory=True, status=ItemStatus.OPEN):
            self.complete(item)
        for item in handover.items.filter(mandatory=True, status=ItemStatus.DONE):
            self.verify(item)
        return hs.handover_submit(handover=handover, by=self.people.manager)

    def accept(self, handover: Handover) -> Handover:
        return hs.handover_accept(handover=handover, by=self.people.owner, note="Ready to run.")


@pytest.fixture(autouse=True)
def clock():
    """Frozen at T0 before any fixture writes a row; tests move it with ``move_to`` / ``shift``."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def tiny_template(db) -> ChecklistTemplate:
    """One mandatory item per side and one optional item: the fewest service calls to reach any state."""
    template = TemplateFactory(name="Tiny roll-out", with_items=False)
    for position, (key, title, risk, side, mandatory) in enumerate(
        [
            ("restore", "Backup restore tested", Risk.FAILURE, Side.PROJECT, True),
            ("runbooks", "Runbooks accepted by the service desk", Risk.INEFFICIENCY, Side.OPERATIONS, True),
            ("faq", "FAQ for agents published", Risk.ADOPTION, Side.PROJECT, False),
        ],
        start=1,
    ):
        TemplateItem.objects.create(
            template=template, key=key, title=title, risk=risk, side=side, mandatory=mandatory, position=position
        )
    return template


@pytest.fixture
def other_team(db) -> OperationsTeam:
    """A team that overrides every threshold; none of it may apply to the Service desk's handovers."""
    return TeamFactory(
        name="Facilities",
        idle_days=2,
        review_overdue_days=1,
        verification_waiting_days=2,
        past_target_days=3,
        conditions_overdue_days=3,
        adoption_below_target_days=3,
        escalation_days=1,
    )


@pytest.fixture
def world(people, team, tiny_template, other_team) -> World:
    return World(people=people, team=team, template=tiny_template)


# -------------------------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One rule made true for one handover at a known moment, and how to make it false and true again."""

    rule: StallRule
    handover: Handover
    fires_at: Callable[[int], dt.datetime]  # threshold in days → the moment the rule becomes true
    recipients: tuple[str, ...]  # who docs/domain.md "Stalled handovers" says is notified when it opens
    clear: Callable[[], object]  # a service call that makes the rule false
    recur: Callable[[int], dt.datetime]  # service calls that make it true again → the moment it is
    recur_recipients: tuple[str, ...]


def idle_case(w: World) -> Case:
    """Preparing, nobody touches it."""
    handover = w.handover()
    since = timezone.now()

    def clear() -> None:
        hs.comment_add(handover=handover, by=w.people.manager, body="Runbook review moved to Friday.")

    def recur(days: int) -> dt.datetime:
        return Handover.objects.get(pk=handover.pk).last_activity_at + days * DAY

    return Case(
        StallRule.IDLE,
        handover,
        fires_at=lambda days: since + days * DAY,
        recipients=("owner", "manager"),
        clear=clear,
        recur=recur,
        recur_recipients=("owner", "manager"),
    )


def review_overdue_case(w: World) -> Case:
    """Submitted, no decision; the decision that clears it is a return, and the resubmission starts it again."""
    handover = w.submit(w.handover())
    since = timezone.now()
    restore = w.item(handover)

    def clear() -> None:
        hs.handover_return(
            handover=handover, by=w.people.owner, reason="The restore test evidence is missing.", items=[restore]
        )

    def recur(days: int) -> dt.datetime:
        w.complete(restore)
        hs.handover_submit(handover=handover, by=w.people.manager)
        return timezone.now() + days * DAY

    return Case(
        StallRule.REVIEW_OVERDUE,
        handover,
        fires_at=lambda days: since + days * DAY,
        recipients=("owner",),
        clear=clear,
        recur=recur,
        recur_recipients=("owner",),
    )


def verification_waiting_case(w: World) -> Case:
    """Preparing, the project-side item done and not verified."""
    handover = w.handover()
    waiting = w.complete(w.item(handover))
    since = timezone.now()

    def recur(days: int) -> dt.datetime:
        w.complete(w.item(handover, Side.OPERATIONS))
        return timezone.now() + days * DAY

    return Case(
        StallRule.VERIFICATION_WAITING,
        handover,
        fires_at=lambda days: since + days * DAY,
        recipients=("owner",),
        clear=lambda: w.verify(waiting),
        recur=recur,
        recur_recipients=("owner",),
    )


def past_target_case(w: World) -> Case:
    """Preparing, the target date ten days ahead; the manager may move it (acceptance has its own test)."""
    target = timezone.localdate() + 10 * DAY
    handover = w.handover(target=target)
    moved_to: list[dt.date] = []

    def clear() -> None:
        moved_to.append(timezone.localdate() + 10 * DAY)
        hs.handover_update(handover=handover, by=w.people.manager, target_date=moved_to[0])

    return Case(
        StallRule.PAST_TARGET,
        handover,
        fires_at=lambda days: midnight(target + (days + 1) * DAY),  # the day after the target (plus threshold)
        recipients=("owner", "manager"),
        clear=clear,
        recur=lambda days: midnight(moved_to[0] + (days + 1) * DAY),
        recur_recipients=("owner", "manager"),
    )


def conditions_overdue_case(w: World) -> Case:
    """Accepted with two conditions: the operations member's due in 14 days, the project member's in 20."""
    handover = w.submit(w.handover())
    first_due, second_due = timezone.localdate() + 14 * DAY, timezone.localdate() + 20 * DAY
    hs.handover_accept_with_conditions(
        handover=handover,
        by=w.people.owner,
        conditions=[
            hs.ConditionInput(
                text="Run a restore drill with the night shift.", owner=w.people.ops_member, due_date=first_due
            ),
            hs.ConditionInput(text="Publish the FAQ for agents.", owner=w.people.member, due_date=second_due),
        ],
    )
    first = handover.conditions.get(due_date=first_due)

    def clear() -> None:
        hs.condition_mark_met(condition=first, by=w.people.ops_member, note="Drill held with the night shift.")

    return Case(
        StallRule.CONDITIONS_OVERDUE,
        handover,
        fires_at=lambda days: midnight(first_due + (days + 1) * DAY),  # the day after the due date
        recipients=("owner", "opsmember"),
        clear=clear,
        recur=lambda days: midnight(second_due + (days + 1) * DAY),
        recur_recipients=("owner", "member"),
    )


def adoption_below_target_case(w: World) -> Case:
    """In hypercare on the CRM platform; its adoption KPI (80 % target) reads 35 % and is reviewed in ten days."""
    lead, owner = w.people.lead, w.people.owner
    service = ops.service_create(team=w.team, by=lead, name="CRM platform")
    review = timezone.localdate() + 10 * DAY
    kpi = ops.kpi_create(
        service=service,
        by=lead,
        name="Agents logged in daily",
        unit="%",
        baseline=20,
        target=80,
        review_date=review,
        is_adoption=True,
    )
    handover = w.accept(w.submit(w.handover(service=service)))
    hs.handover_start_hypercare(
        handover=handover,
        by=owner,
        ends_on=timezone.localdate() + 60 * DAY,
        exit_criteria="80% of agents logged in daily.",
    )
    ops.kpi_reading_add(kpi=kpi, by=owner, value=35)

    def recur(days: int) -> dt.datetime:
        ops.kpi_reading_add(kpi=kpi, by=owner, value=70)
        return max(timezone.now(), midnight(review + days * DAY))

    return Case(
        StallRule.ADOPTION_BELOW_TARGET,
        handover,
        fires_at=lambda days: midnight(review + days * DAY),  # on the review date (plus threshold)
        recipients=("owner", "manager"),
        clear=lambda: ops.kpi_reading_add(kpi=kpi, by=owner, value=80),  # exactly at target
        recur=recur,
        recur_recipients=("owner", "manager"),
    )


CASES: dict[StallRule, Callable[[World], Case]] = {
    StallRule.IDLE: idle_case,
    StallRule.REVIEW_OVERDUE: review_overdue_case,
    StallRule.VERIFICATION_WAITING: verification_waiting_case,
    StallRule.PAST_TARGET: past_target_case,
    StallRule.CONDITIONS_OVERDUE: conditions_overdue_case,
    StallRule.ADOPTION_BELOW_TARGET: adoption_below_target_case,
}


@pytest.fixture
def make_case(world) -> Callable[[StallRule], Case]:
    return lambda rule: CASES[rule](world)


def open_idle_flag(world: World, clock) -> tuple[Case, StallFlag]:
    """An idle flag opened an hour after the threshold, its notifications written and their emails pending."""
    case = idle_case(world)
    clock.move_to(case.fires_at(default_days(StallRule.IDLE)) + HOUR)
    detect()
    [flag] = open_flags(case.handover, StallRule.IDLE)
    return case, flag


# ------------------------------------------------------------------------------------------ the thresholds


def test_default_thresholds_are_the_domain_defaults():
    assert {rule.value: days for rule, days in DOMAIN_THRESHOLDS.items()} == django_settings.HANDOVER_STALL_THRESHOLDS
    assert django_settings.HANDOVER_ESCALATION_DAYS == 3


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_no_flag_a_moment_before_the_threshold(rule, make_case, clock):
    case = make_case(rule)
    clock.move_to(case.fires_at(default_days(rule)) - TICK)

    detect()

    assert flags(case.handover, rule) == []


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_flag_opens_a_moment_after_the_threshold(rule, make_case, clock):
    case = make_case(rule)
    clock.move_to(case.fires_at(default_days(rule)) + TICK)

    result = detect()

    [flag] = flags(case.handover, rule)
    assert flag.is_open
    assert flag.opened_at == timezone.now()
    assert flag.detail  # what made the rule true
    assert flag.pk in {opened.pk for opened in result.opened}


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_team_override_moves_the_threshold(rule, world, make_case, clock):
    """GIVEN the receiving team gives the rule two more days than the default WHEN the default threshold passes THEN
    nothing opens; the flag opens when the team's own threshold is crossed, and not a moment before."""
    own = default_days(rule) + 2
    ops.team_update(team=world.team, by=world.people.lead, **{f"{rule.value}_days": own})
    case = make_case(rule)

    clock.move_to(case.fires_at(default_days(rule)) + TICK)
    detect()
    assert flags(case.handover, rule) == []

    clock.move_to(case.fires_at(own) - TICK)
    detect()
    assert flags(case.handover, rule) == []

    clock.move_to(case.fires_at(own) + TICK)
    detect()
    assert len(open_flags(case.handover, rule)) == 1


def test_settings_default_applies_to_teams_without_an_override(world, clock, settings):
    """GIVEN the idle default set to 10 days in settings, the Service desk without an override (Facilities has one)
    WHEN 7 and then 10 days pass without activity THEN the flag opens at 10 days, not before."""
    settings.HANDOVER_STALL_THRESHOLDS = {**settings.HANDOVER_STALL_THRESHOLDS, "idle": 10}
    case = idle_case(world)

    clock.move_to(case.fires_at(7) + TICK)
    detect()
    assert flags(case.handover, StallRule.IDLE) == []

    clock.move_to(case.fires_at(10) - TICK)
    detect()
    assert flags(case.handover, StallRule.IDLE) == []

    clock.move_to(case.fires_at(10) + TICK)
    detect()
    assert len(open_flags(case.handover, StallRule.IDLE)) == 1


def test_idle_watches_returned_handovers_but_not_submitted_ones(world, clock):
    """GIVEN a submitted handover left alone for eight days THEN it is overdue for review, not idle (the ball is with
    operations); WHEN it is returned and left alone THEN it goes idle seven days after the return."""
    handover = world.submit(world.handover())
    clock.shift(8 * DAY)
    detect()
    assert flags(handover, StallRule.IDLE) == []
    assert len(open_flags(handover, StallRule.REVIEW_OVERDUE)) == 1

    hs.handover_return(handover=handover, by=world.people.owner, reason="Restore evidence missing.")
    returned_at = timezone.now()

    clock.move_to(returned_at + 7 * DAY - TICK)
    detect()
    assert flags(handover, StallRule.IDLE) == []

    clock.move_to(returned_at + 7 * DAY + TICK)
    detect()
    assert len(open_flags(handover, StallRule.IDLE)) == 1


# --------------------------------------------------------------------------------- one episode, once each


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_two_passes_open_one_flag_and_notify_each_recipient_once_per_channel(rule, make_case, clock, mailoutbox):
    """GIVEN a handover past the rule's threshold WHEN detection runs twice and each email is sent twice THEN there is
    one open flag, one in-app and one email notification per recipient docs/domain.md names, and one email each."""
    case = make_case(rule)
    clock.move_to(case.fires_at(default_days(rule)) + TICK)

    first, second = detect(), detect()

    [flag] = flags(case.handover, rule)
    assert flag.is_open
    assert flag.pk in {f.pk for f in first.opened}
    assert flag.pk not in {f.pk for f in second.opened}
    assert notified(flag) == each_channel(*case.recipients)

    pending = emails(flag)
    assert {n.status for n in pending} == {DeliveryStatus.PENDING}
    assert [
        (notification_services.send_notification(n.pk), notification_services.send_notification(n.pk)) for n in pending
    ] == [(True, False)] * len(case.recipients)
    assert sorted(message.to[0] for message in mailoutbox) == sorted(address(u) for u in case.recipients)
    code = case.handover.project.code
    assert all(message.subject.startswith(f"[Handover] Stalled: {code}") for message in mailoutbox)
    assert {n.status for n in emails(flag)} == {DeliveryStatus.SENT}


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_flag_resolves_when_the_cause_clears_and_a_recurrence_is_a_new_episode(rule, make_case, clock):
    """GIVEN an open flag WHEN the cause clears through a service THEN the next pass resolves it (and it stays so);
    WHEN the rule later becomes true again THEN a new flag opens and its recipients are notified afresh."""
    case = make_case(rule)
    days = default_days(rule)
    clock.move_to(case.fires_at(days) + TICK)
    detect()
    [episode] = flags(case.handover, rule)
    first_notifications = notified(episode)

    clock.shift(HOUR)
    case.clear()
    result = detect()
    detect()

    episode.refresh_from_db()
    assert episode.resolved_at == timezone.now()
    assert episode.pk in result.resolved
    assert open_flags(case.handover, rule) == []

    clock.shift(DAY)
    moment = case.recur(days)
    clock.move_to(max(moment, timezone.now()) + TICK)
    detect()
    detect()

    old, new = flags(case.handover, rule)
    assert old.pk == episode.pk
    assert not old.is_open
    assert new.is_open
    assert new.opened_at == timezone.now()
    assert notified(new) == each_channel(*case.recur_recipients)
    assert notified(old) == first_notifications


def test_owner_of_a_condition_falling_overdue_during_an_open_episode_is_notified(world, clock):
    """GIVEN a conditions-overdue flag opened for the operations member's condition WHEN the project member's condition
    also falls overdue while the first is still open (same episode) THEN the project member, now a condition owner of
    the stall, is notified once per channel like the others."""
    case = conditions_overdue_case(world)
    clock.move_to(case.fires_at(0) + TICK)
    detect()
    [flag] = open_flags(case.handover, StallRule.CONDITIONS_OVERDUE)

    clock.move_to(case.recur(0) + TICK)  # the second condition is overdue too; the first is still open
    detect()
    detect()

    assert open_flags(case.handover, StallRule.CONDITIONS_OVERDUE) == [flag]
    assert notified(flag) == each_channel("owner", "opsmember", "member")


def test_acceptance_resolves_past_target_and_review_overdue(world, clock):
    """GIVEN a submitted handover past its target date, so also overdue for review WHEN the owner accepts it THEN the
    next pass resolves both flags."""
    target = timezone.localdate() + 5 * DAY
    handover = world.submit(world.handover(target=target))
    clock.move_to(midnight(target + DAY) + TICK)
    detect()
    [past_target] = open_flags(handover, StallRule.PAST_TARGET)
    [review] = open_flags(handover, StallRule.REVIEW_OVERDUE)

    clock.shift(HOUR)
    world.accept(handover)
    result = detect()

    assert sorted(result.resolved) == sorted([past_target.pk, review.pk])
    assert StallFlag.objects.filter(handover=handover, resolved_at__isnull=True).count() == 0


# ----------------------------------------------------------------------------------------- adoption window


def hypercare_with_kpi(w: World, *, name: str, direction: str, target: int, before=()) -> tuple[Handover, object]:
    """A handover of a new service taken into hypercare now, whose one adoption KPI is reviewed in ten days;
    ``before`` are readings posted before hypercare started (an hour apart, ending a day before)."""
    lead, owner = w.people.lead, w.people.owner
    service = ops.service_create(team=w.team, by=lead, name=f"{name} service")
    kpi = ops.kpi_create(
        service=service,
        by=lead,
        name=name,
        target=target,
        direction=direction,
        review_date=timezone.localdate() + 10 * DAY,
        is_adoption=True,
    )
    handover = w.accept(w.submit(w.handover(service=service)))
    for i, value in enumerate(before):
        ops.kpi_reading_add(kpi=kpi, by=owner, value=value, measured_at=timezone.now() - DAY - i * HOUR)
    clock_at = timezone.now()
    hs.handover_start_hypercare(
        handover=handover, by=owner, ends_on=timezone.localdate() + 60 * DAY, exit_criteria="Adoption at target."
    )
    assert Handover.objects.get(pk=handover.pk).hypercare_started_at == clock_at
    return handover, kpi


def test_adoption_kpi_where_lower_is_better_is_below_target_when_its_reading_is_higher(world, clock):
    """GIVEN a "lower is better" adoption KPI (calls per agent, target 5) reading 9 during hypercare WHEN its review
    date comes THEN the flag opens; a reading of 5 (at target) resolves it; a later 6 opens a new episode; 4 resolves
    that one."""
    handover, kpi = hypercare_with_kpi(world, name="Calls per agent", direction=KpiDirection.LOWER, target=5)
    owner = world.people.owner
    clock.shift(HOUR)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=9)

    clock.move_to(midnight(kpi.review_date) - TICK)
    detect()
    assert flags(handover, StallRule.ADOPTION_BELOW_TARGET) == []

    clock.move_to(midnight(kpi.review_date) + TICK)
    detect()
    [first] = open_flags(handover, StallRule.ADOPTION_BELOW_TARGET)
    assert first.detail == {"kpis": [kpi.pk], "latest": {str(kpi.pk): "9"}}

    clock.shift(HOUR)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=5)
    assert detect().resolved == [first.pk]

    clock.shift(DAY)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=6)
    detect()
    [_, second] = flags(handover, StallRule.ADOPTION_BELOW_TARGET)
    assert second.is_open

    clock.shift(HOUR)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=4)
    detect()
    assert open_flags(handover, StallRule.ADOPTION_BELOW_TARGET) == []


def test_adoption_reading_from_before_hypercare_does_not_count(world, clock):
    """GIVEN an adoption KPI (target 80) whose only readings, 95 and 90, were taken before hypercare started WHEN its
    review date comes with no reading during hypercare THEN it counts as below target and the flag opens; WHEN a
    reading of 85 is posted during hypercare THEN the flag resolves."""
    handover, kpi = hypercare_with_kpi(
        world, name="Weekly active users", direction=KpiDirection.HIGHER, target=80, before=(95, 90)
    )

    clock.move_to(midnight(kpi.review_date) + TICK)
    detect()
    [flag] = open_flags(handover, StallRule.ADOPTION_BELOW_TARGET)
    assert flag.detail == {"kpis": [kpi.pk], "latest": {str(kpi.pk): None}}

    clock.shift(HOUR)
    ops.kpi_reading_add(kpi=kpi, by=world.people.owner, value=85)
    assert detect().resolved == [flag.pk]


def test_adoption_reading_dated_later_than_now_does_not_count_yet(world, clock):
    """GIVEN an adoption KPI (target 80) reading 35 during hypercare and a reading of 90 dated three minutes ahead (a
    tool's clock running fast) WHEN the review date comes THEN the 35 is the latest reading: the flag opens; once
    the 90's moment has come, it resolves."""
    handover, kpi = hypercare_with_kpi(world, name="Logins per day", direction=KpiDirection.HIGHER, target=80)
    owner = world.people.owner
    clock.move_to(midnight(kpi.review_date) - HOUR)
    ops.kpi_reading_add(kpi=kpi, by=owner, value=35)
    ahead = midnight(kpi.review_date) + 3 * dt.timedelta(minutes=1)
    clock.move_to(midnight(kpi.review_date))
    ops.kpi_reading_add(kpi=kpi, by=owner, value=90, measured_at=ahead)

    detect()
    [flag] = open_flags(handover, StallRule.ADOPTION_BELOW_TARGET)

    clock.move_to(ahead)
    assert detect().resolved == [flag.pk]


# ----------------------------------------------------------------------------------------------- escalation


def open_flag(case: Case, clock) -> StallFlag:
    """The case's flag, opened an hour after the rule's default threshold; its emails are still pending."""
    clock.move_to(case.fires_at(default_days(case.rule)) + HOUR)
    detect()
    [flag] = open_flags(case.handover, case.rule)
    return flag


def mail_about(mailoutbox, flag: StallFlag) -> list[tuple[str, str]]:
    """(recipient, subject prefix) of each message sent about ``flag``'s rule, in sending order."""
    label = f"({flag.get_rule_display().lower()})"
    return [(m.to[0], m.subject.split(":")[0]) for m in mailoutbox if m.subject.endswith(label)]


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_unacknowledged_flag_escalates_to_the_team_lead_once(rule, make_case, clock, mailoutbox):
    """GIVEN an open flag of the rule nobody acknowledges WHEN the escalation delay (3 days) passes THEN the team's
    lead gets one in-app and one email notification: not a moment before, and not again on later passes."""
    case = make_case(rule)
    flag = open_flag(case, clock)
    opened = flag.opened_at

    clock.move_to(opened + 3 * DAY - TICK)
    detect()
    assert notified(flag, ESCALATED) == []

    clock.move_to(opened + 3 * DAY + TICK)
    first = detect()
    detect()
    clock.shift(2 * DAY)
    detect()

    assert flag.pk in first.escalated
    assert notified(flag, ESCALATED) == each_channel("lead")
    flag.refresh_from_db()
    assert flag.escalated_at == opened + 3 * DAY + TICK
    assert notified(flag) == each_channel(*case.recipients)  # the opening notifications are untouched
    assert send(emails(flag, ESCALATED) * 2) == [True, False]
    assert mail_about(mailoutbox, flag) == [(address("lead"), "[Handover] Escalated")]
    [in_app] = Notification.objects.filter(flag=flag, kind=ESCALATED, channel=Channel.IN_APP)
    assert in_app.subject.startswith("Escalated:")  # the bracketed prefix is for email subjects only


def test_team_without_a_lead_escalates_once_a_lead_is_named(world, clock, admin_user):
    """GIVEN a team without a lead and an unacknowledged flag past the escalation delay WHEN passes run THEN nothing
    is marked escalated and no stall.escalated event is emitted (nobody would hear it); WHEN a lead is named THEN
    the next pass escalates to them, once."""
    subscribe(admin_user, events=["stall.escalated"])
    ops.team_update(team=world.team, by=world.people.admin, lead=None)
    _, flag = open_idle_flag(world, clock)
    clock.move_to(flag.opened_at + 4 * DAY)

    assert detect().escalated == []
    flag.refresh_from_db()
    assert flag.escalated_at is None
    assert Notification.objects.filter(flag=flag, kind=ESCALATED).count() == 0
    assert event_types(type="stall.escalated") == {}

    clock.shift(HOUR)
    ops.team_update(team=world.team, by=world.people.admin, lead=world.people.lead)
    assert detect().escalated == [flag.pk]
    detect()
    assert notified(flag, ESCALATED) == each_channel("lead")
    assert event_types(type="stall.escalated") == {"stall.escalated": 1}


def test_team_escalation_override_changes_the_delay(world, clock):
    """GIVEN the Service desk escalates after 1 day WHEN a flag stays unacknowledged THEN the lead hears after 1 day."""
    ops.team_update(team=world.team, by=world.people.lead, escalation_days=1)
    _, flag = open_idle_flag(world, clock)

    clock.move_to(flag.opened_at + DAY - TICK)
    detect()
    assert notified(flag, ESCALATED) == []

    clock.move_to(flag.opened_at + DAY + TICK)
    detect()
    assert notified(flag, ESCALATED) == each_channel("lead")


def test_acknowledged_flag_never_escalates(world, clock):
    """GIVEN the owner acknowledges a flag within the delay WHEN days pass and it is still true THEN it stays open and
    the lead is never notified."""
    _, flag = open_idle_flag(world, clock)
    clock.shift(DAY)
    stalls.stall_acknowledge(flag=flag, by=world.people.owner, note="Chasing the manager; review on Friday.")

    for days in (3, 4, 10, 30):
        clock.move_to(flag.opened_at + days * DAY + TICK)
        detect()

    flag.refresh_from_db()
    assert flag.is_open
    assert flag.escalated_at is None
    assert notified(flag, ESCALATED) == []


# ------------------------------------------------------------------------------------ acknowledge and snooze


def test_only_the_operations_owner_or_the_team_lead_may_acknowledge(world, clock):
    _, flag = open_idle_flag(world, clock)
    for role in ("manager", "member", "ops_member", "viewer"):
        with nothing_written(flag), pytest.raises(NotPermitted) as refused:
            stalls.stall_acknowledge(flag=flag, by=getattr(world.people, role), note="Seen it.")
        assert refused.value.rule == "owner_only", role

    stalls.stall_acknowledge(flag=flag, by=world.people.lead, note="I'll talk to the owner.")

    flag.refresh_from_db()
    assert (flag.acknowledged_by, flag.acknowledged_at) == (world.people.lead, timezone.now())


def test_acknowledging_needs_a_note(world, clock):
    _, flag = open_idle_flag(world, clock)
    for note in ("", "   ", None):
        with nothing_written(flag), pytest.raises(InvalidInput) as refused:
            stalls.stall_acknowledge(flag=flag, by=world.people.owner, note=note)
        assert (refused.value.rule, refused.value.field) == ("note_required", "note")


def test_acknowledging_is_logged_but_is_not_activity(world, clock):
    """GIVEN an idle flag WHEN the owner acknowledges it THEN an activity row records who, when and the note, but the
    handover's last activity does not move, so the flag stays open; a second acknowledgement is refused."""
    case, flag = open_idle_flag(world, clock)
    before = Handover.objects.values_list("last_activity_at", "version").get(pk=case.handover.pk)
    clock.shift(HOUR)

    stalls.stall_acknowledge(flag=flag, by=world.people.owner, note="  Chasing the manager; review on Friday. ")

    flag.refresh_from_db()
    assert (flag.acknowledged_by, flag.acknowledged_at, flag.acknowledge_note) == (
        world.people.owner,
        timezone.now(),
        "Chasing the manager; review on Friday.",
    )
    [row] = Activity.objects.filter(handover=case.handover, verb=ActivityVerb.STALL_ACKNOWLEDGED)
    assert (row.actor, row.message, row.created_at, row.data["flag"]) == (
        world.people.owner,
        "Chasing the manager; review on Friday.",
        timezone.now(),
        flag.pk,
    )
    assert Handover.objects.values_list("last_activity_at", "version").get(pk=case.handover.pk) == before
    detect()
    assert open_flags(case.handover, StallRule.IDLE) == [flag]

    with nothing_written(flag), pytest.raises(IllegalTransition) as refused:
        stalls.stall_acknowledge(flag=flag, by=world.people.owner, note="Again.")
    assert refused.value.rule == "flag_acknowledged"


def test_only_the_operations_owner_or_the_team_lead_may_snooze(world, clock):
    _, flag = open_idle_flag(world, clock)
    until = timezone.now() + 2 * DAY
    for role in ("manager", "member", "ops_member", "viewer"):
        with nothing_written(flag), pytest.raises(NotPermitted) as refused:
            stalls.stall_snooze(flag=flag, by=getattr(world.people, role), until=until, reason="Vendor is late.")
        assert refused.value.rule == "owner_only", role

    stalls.stall_snooze(flag=flag, by=world.people.lead, until=until, reason="Vendor is late.")

    flag.refresh_from_db()
    assert (flag.snoozed_by, flag.snoozed_until, flag.snooze_reason) == (world.people.lead, until, "Vendor is late.")


def test_snooze_needs_a_future_date_within_90_days_and_a_reason(world, clock):
    """GIVEN an open flag WHEN the owner snoozes it into the past, beyond 90 days or without a reason THEN it is refused
    and nothing is written; exactly 90 days with a reason is accepted and logged without counting as activity."""
    case, flag = open_idle_flag(world, clock)
    now = timezone.now()
    for until, reason, rule in [
        (now - HOUR, "Back next week.", "snooze_in_past"),
        (now, "Back next week.", "snooze_in_past"),
        (now + 90 * DAY + TICK, "Back next quarter.", "snooze_too_long"),
        (now + DAY, "", "reason_required"),
        (now + DAY, "   ", "reason_required"),
    ]:
        with nothing_written(flag), pytest.raises(InvalidInput) as refused:
            stalls.stall_snooze(flag=flag, by=world.people.owner, until=until, reason=reason)
        assert refused.value.rule == rule, (until, reason)

    last_activity = Handover.objects.get(pk=case.handover.pk).last_activity_at
    stalls.stall_snooze(flag=flag, by=world.people.owner, until=now + 90 * DAY, reason="Waiting for the vendor.")

    flag.refresh_from_db()
    assert flag.snoozed_until == now + 90 * DAY
    [row] = Activity.objects.filter(handover=case.handover, verb=ActivityVerb.STALL_SNOOZED)
    assert (row.actor, row.message, row.data["flag"]) == (world.people.owner, "Waiting for the vendor.", flag.pk)
    assert Handover.objects.get(pk=case.handover.pk).last_activity_at == last_activity


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_snoozed_flag_sends_nothing_until_its_date_then_reminds_once(rule, make_case, world, clock, mailoutbox):
    """GIVEN an open flag of the rule whose emails are still pending WHEN the owner snoozes it for five days THEN the
    emails are held until the date (send defers them, the sweep leaves them), nothing escalates although the delay
    passes, and from the date the held emails go out and the owner gets one reminder, however often detection
    runs."""
    case = make_case(rule)
    flag = open_flag(case, clock)
    held = emails(flag)
    assert len(held) == len(case.recipients)
    clock.shift(HOUR)
    until = timezone.now() + 5 * DAY
    stalls.stall_snooze(flag=flag, by=world.people.owner, until=until, reason="Waiting for the vendor's contract.")

    assert send(held) == [False] * len(held)
    assert mail_about(mailoutbox, flag) == []
    assert set(Notification.objects.filter(pk__in=[n.pk for n in held]).values_list("status", "next_attempt_at")) == {
        (DeliveryStatus.PENDING, until)
    }
    assert not Notification.objects.filter(pk__in=[n.pk for n in held]).filter(pk__in=swept_ids()).exists()

    clock.move_to(flag.opened_at + 4 * DAY)  # past the 3-day escalation delay, still snoozed
    detect()
    detect()
    flag.refresh_from_db()
    assert (flag.is_open, flag.escalated_at) == (True, None)
    assert notified(flag, ESCALATED) == []
    assert notified(flag, REMINDER) == []

    clock.move_to(until - TICK)
    assert send(held) == [False] * len(held)
    assert not Notification.objects.filter(pk__in=[n.pk for n in held]).filter(pk__in=swept_ids()).exists()
    assert mail_about(mailoutbox, flag) == []

    clock.move_to(until)
    assert {n.pk for n in held} <= swept_ids()  # the held emails are due again
    first = detect()
    detect()
    clock.shift(DAY)
    detect()

    assert first.reminded == [flag.pk]
    assert notified(flag, REMINDER) == each_channel("owner")
    assert send(held) == [True] * len(held)
    assert send(emails(flag, REMINDER) * 2) == [True, False]
    assert sorted(mail_about(mailoutbox, flag)) == sorted(
        [(address(u), "[Handover] Stalled") for u in case.recipients] + [(address("owner"), "[Handover] Reminder")]
    )


def swept_ids() -> set[int]:
    """The notifications a sweep finds due now (it publishes nothing inside a test transaction)."""
    before = set(Notification.objects.values_list("pk", "next_attempt_at"))
    count = outbox_sweep.sweep()["notifications"]
    assert set(Notification.objects.values_list("pk", "next_attempt_at")) == before
    due = Notification.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
    assert due.count() == count
    return set(due.values_list("pk", flat=True))


def test_condition_owner_joining_during_a_snooze_hears_nothing_until_it_ends(world, clock, mailoutbox):
    """GIVEN a conditions-overdue flag snoozed by the owner WHEN the project member's condition falls overdue during the
    snooze THEN the member gets nothing yet, neither in the inbox nor by email; WHEN the snooze ends THEN the member
    is told once per channel and the owner reminded once."""
    case = conditions_overdue_case(world)
    flag = open_flag(case, clock)
    until = case.recur(0) + 3 * DAY
    stalls.stall_snooze(flag=flag, by=world.people.owner, until=until, reason="Drill booked for next week.")

    clock.move_to(case.recur(0) + TICK)  # the member's condition is overdue; the flag is still snoozed
    detect()
    detect()
    assert notified(flag) == each_channel("owner", "opsmember")
    assert not Notification.objects.filter(recipient=world.people.member).exists()

    clock.move_to(until)
    detect()
    detect()
    assert notified(flag) == each_channel("owner", "opsmember", "member")
    assert notified(flag, REMINDER) == each_channel("owner")
    [member_in_app] = Notification.objects.filter(recipient=world.people.member, channel=Channel.IN_APP)
    assert (member_in_app.status, member_in_app.sent_at) == (DeliveryStatus.SENT, until)


def test_held_notifications_of_a_flag_that_resolved_are_cancelled_not_sent(world, clock, mailoutbox):
    """GIVEN an idle flag whose emails are held by a snooze WHEN the cause clears and the flag resolves before the
    snooze ends THEN the held emails are cancelled: sending them, then or after the date, sends nothing, and the
    sweep no longer finds them."""
    case, flag = open_idle_flag(world, clock)
    held = emails(flag)
    stalls.stall_snooze(flag=flag, by=world.people.owner, until=timezone.now() + 5 * DAY, reason="Vendor is late.")
    clock.shift(DAY)
    case.clear()
    assert flag.pk in detect().resolved

    assert set(Notification.objects.filter(pk__in=[n.pk for n in held]).values_list("status", flat=True)) == {
        DeliveryStatus.CANCELLED
    }
    clock.shift(5 * DAY)
    assert send(held) == [False, False]
    assert outbox_sweep.sweep()["notifications"] == 0
    assert mailoutbox == []
    detect()
    assert notified(flag, REMINDER) == []


def test_a_pending_notification_of_a_resolved_flag_is_cancelled_when_its_task_runs(world, clock, mailoutbox):
    """GIVEN an email still pending (the broker was down) WHEN its flag resolved meanwhile and the send task runs
    THEN the row is cancelled and nothing is sent, even if it was never swept (the check is in the send)."""
    _, flag = open_idle_flag(world, clock)
    [first, *_] = emails(flag)
    StallFlag.objects.filter(pk=flag.pk).update(resolved_at=timezone.now())  # resolved by a pass elsewhere

    assert notification_services.send_notification(first.pk) is False
    first.refresh_from_db()
    assert (first.status, first.attempts) == (DeliveryStatus.CANCELLED, 0)
    assert mailoutbox == []


def test_snooze_moved_earlier_releases_the_held_emails_at_the_new_date(world, clock, mailoutbox):
    """GIVEN a flag snoozed for five days whose emails were held until then WHEN the owner moves the snooze to two days
    THEN from the new date the flag is no longer snoozed: the sweep finds the held emails due and they are sent."""
    _, flag = open_idle_flag(world, clock)
    held = emails(flag)
    clock.shift(HOUR)
    owner = world.people.owner
    stalls.stall_snooze(flag=flag, by=owner, until=timezone.now() + 5 * DAY, reason="Contract due on Friday.")
    assert send(held) == [False, False]
    sooner = timezone.now() + 2 * DAY
    stalls.stall_snooze(flag=flag, by=owner, until=sooner, reason="Vendor answered; contract due on Tuesday.")

    clock.move_to(sooner)

    assert outbox_sweep.sweep()["notifications"] == 2
    assert send(held) == [True, True]
    assert sorted(message.to[0] for message in mailoutbox) == [address("manager"), address("owner")]


def test_resolved_flag_can_be_neither_acknowledged_nor_snoozed(world, clock):
    case, flag = open_idle_flag(world, clock)
    clock.shift(HOUR)
    case.clear()
    detect()

    with nothing_written(flag), pytest.raises(IllegalTransition) as refused:
        stalls.stall_acknowledge(flag=flag, by=world.people.owner, note="Seen it.")
    assert refused.value.rule == "flag_resolved"
    with nothing_written(flag), pytest.raises(IllegalTransition) as refused:
        stalls.stall_snooze(flag=flag, by=world.people.owner, until=timezone.now() + DAY, reason="Later.")
    assert refused.value.rule == "flag_resolved"


# ------------------------------------------------------------------------------------------------- webhooks


def test_stall_events_are_recorded_once_each_however_often_detection_runs(world, clock, admin_user):
    """GIVEN a subscription to every event WHEN a flag opens, escalates and resolves, with two passes each time THEN
    there is one stall.opened, one stall.escalated and one stall.resolved event, each with one delivery."""
    subscription = subscribe(admin_user)
    case, flag = open_idle_flag(world, clock)
    detect()
    assert event_types(type__startswith="stall.") == {"stall.opened": 1}

    clock.shift(3 * DAY)
    detect()
    detect()
    assert event_types(type__startswith="stall.") == {"stall.opened": 1, "stall.escalated": 1}

    clock.shift(HOUR)
    case.clear()
    detect()
    detect()
    assert event_types(type__startswith="stall.") == {"stall.opened": 1, "stall.escalated": 1, "stall.resolved": 1}

    for event in Event.objects.filter(type__startswith="stall."):
        assert list(event.deliveries.values_list("subscription", "status")) == [
            (subscription.pk, DeliveryStatus.PENDING)
        ]
        assert event.handover_id == case.handover.pk
        assert event.payload["type"] == event.type
        assert event.payload["data"]["flag"] == {"id": flag.pk, "rule": "idle", "opened_at": flag.opened_at.isoformat()}
        assert event.payload["data"]["handover"]["id"] == case.handover.pk


def test_handover_services_emit_their_events(world, admin_user):
    """GIVEN a subscription to every event, one to handover.submitted only and an inactive one WHEN a handover is
    created, submitted, returned, resubmitted, accepted, taken into hypercare and completed THEN each step recorded its
    event once, delivered to the subscriptions that want it."""
    everything = subscribe(admin_user)
    submitted_only = subscribe(admin_user, events=["handover.submitted"])
    inactive = subscribe(admin_user, is_active=False)
    people = world.people

    handover = world.handover()
    world.submit(handover)  # two items completed, two verified
    restore = world.item(handover)
    hs.handover_return(handover=handover, by=people.owner, reason="Restore evidence missing.", items=[restore])
    world.verify(world.complete(restore))
    hs.handover_submit(handover=handover, by=people.manager)
    world.accept(handover)
    hs.handover_start_hypercare(
        handover=handover, by=people.owner, ends_on=timezone.localdate() + 30 * DAY, exit_criteria="No P1 for a month."
    )
    hs.handover_complete(handover=handover, by=people.owner)

    assert event_types() == {
        "handover.created": 1,
        "item.updated": 7,  # 2 done, 2 verified, 1 sent back, done and verified again
        "handover.submitted": 2,
        "handover.returned": 1,
        "handover.accepted": 1,
        "handover.hypercare_started": 1,
        "handover.completed": 1,
    }
    assert WebhookDelivery.objects.filter(subscription=everything).count() == 14
    assert sorted(
        WebhookDelivery.objects.filter(subscription=submitted_only).values_list("event__type", flat=True)
    ) == [
        "handover.submitted",
        "handover.submitted",
    ]
    assert not WebhookDelivery.objects.filter(subscription=inactive).exists()
    submitted = Event.objects.filter(type=EventType.HANDOVER_SUBMITTED).order_by("created_at").first()
    assert submitted.handover_id == handover.pk
    assert submitted.payload["data"]["handover"]["status"] == "submitted"
    assert submitted.payload["data"]["by"] == people.manager.username


def test_conditional_acceptance_emits_its_event(world, admin_user):
    subscribe(admin_user, events=["handover.accepted_with_conditions", "handover.accepted"])
    case = conditions_overdue_case(world)

    assert event_types() == {"handover.accepted_with_conditions": 1}
    assert Event.objects.get().handover_id == case.handover.pk


def test_project_stage_move_becomes_one_event_however_often_it_is_published(world, clock, admin_user):
    """GIVEN a subscription to project.stage_changed WHEN a project moves to planning and later to execution, and the
    publisher runs again and again (as beat does every minute) THEN each move is exactly one event."""
    subscription = subscribe(admin_user, events=["project.stage_changed"])
    manager = world.people.manager
    project = ProjectFactory(code="ERP-2031", manager=manager, receiving_team=world.team)
    ps.project_transition(project=project, to=Stage.PLANNING, by=manager)

    assert webhooks.publish_project_events() == 1
    assert webhooks.publish_project_events() == 0
    [event] = Event.objects.filter(type=EventType.PROJECT_STAGE_CHANGED)
    assert event.payload["data"]["project"]["code"] == "ERP-2031"
    assert (event.payload["data"]["from"], event.payload["data"]["to"], event.payload["data"]["by"]) == (
        "initiation",
        "planning",
        manager.username,
    )

    clock.shift(HOUR)
    hs.handover_create(
        project=project,
        template=world.template,
        operations_owner=world.people.owner,
        target_date=timezone.localdate() + 30 * DAY,
        by=manager,
    )
    ps.project_transition(project=project, to=Stage.EXECUTION, by=manager)
    clock.shift(HOUR)
    assert webhooks.publish_project_events() == 1
    clock.shift(12 * HOUR)
    assert webhooks.publish_project_events() == 0
    assert webhooks.publish_project_events() == 0

    moves = Event.objects.filter(type=EventType.PROJECT_STAGE_CHANGED)
    assert sorted(moves.values_list("payload__data__to", flat=True)) == ["execution", "planning"]
    assert WebhookDelivery.objects.filter(subscription=subscription).count() == 2


@pytest.fixture
def receiver(monkeypatch) -> Iterator[SimpleNamespace]:
    """A webhook endpoint on localhost that records each request and answers with ``status``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = SimpleNamespace(status=200, received=[])

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            state.received.append((dict(self.headers.items()), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/handover"
    yield state
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_and_delivered_once(world, clock, admin_user, receiver):
    """GIVEN a subscription to stall.opened WHEN a flag opens and its delivery is sent twice THEN the endpoint gets one
    POST whose Standard Webhooks signature verifies with the subscription's secret."""
    subscription = subscribe(admin_user, url=receiver.url, events=["stall.opened"])
    _, flag = open_idle_flag(world, clock)
    detect()
    [delivery] = WebhookDelivery.objects.all()

    assert [webhooks.deliver_webhook(delivery.pk), webhooks.deliver_webhook(delivery.pk)] == [True, False]

    [(headers, body)] = receiver.received
    payload = Webhook(subscription.secret).verify(body, headers)
    assert payload["type"] == "stall.opened"
    assert payload["data"]["flag"]["id"] == flag.pk
    assert {k.lower(): v for k, v in headers.items()}["webhook-id"] == f"msg_{delivery.event_id.hex}"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.SENT, 1, 200)


def test_failed_webhook_is_retried_later_with_the_same_id(world, clock, admin_user, receiver):
    """GIVEN an endpoint answering 500 WHEN the delivery is sent THEN it waits for a later attempt (sending again at
    once does nothing); WHEN that time comes THEN the sweep picks it up and the retry carries the same message id."""
    subscribe(admin_user, url=receiver.url, events=["stall.opened"])
    receiver.status = 500
    open_idle_flag(world, clock)
    [delivery] = WebhookDelivery.objects.all()

    assert webhooks.deliver_webhook(delivery.pk) is False
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert delivery.next_attempt_at > timezone.now()
    assert webhooks.deliver_webhook(delivery.pk) is False
    assert len(receiver.received) == 1

    receiver.status = 204
    clock.move_to(delivery.next_attempt_at)
    assert outbox_sweep.sweep()["deliveries"] == 1
    assert webhooks.deliver_webhook(delivery.pk) is True

    ids = [{k.lower(): v for k, v in headers.items()}["webhook-id"] for headers, _ in receiver.received]
    assert len(ids) == 2
    assert ids[0] == ids[1]


# ------------------------------------------------------------------------------ when a send goes wrong


@pytest.fixture
def raw_server(monkeypatch) -> Iterator[Callable[..., RawServer]]:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    servers: list[RawServer] = []

    def start(reply: bytes | None = None, **options) -> RawServer:
        servers.append(RawServer(reply, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def one_pending_delivery(world, clock, admin_user, url: str) -> WebhookDelivery:
    subscribe(admin_user, url=url, events=["stall.opened"])
    open_idle_flag(world, clock)
    [delivery] = WebhookDelivery.objects.all()
    return delivery


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (b"GARBAGE\r\n\r\n", "BadStatusLine", None),
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "HTTP 500", 500),
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP 404", 404),
        (b"", "RemoteDisconnected|ConnectionResetError", None),  # hangs up without a word
    ],
    ids=["garbage", "500", "404", "hang-up"],
)
def test_any_failed_webhook_attempt_is_logged_and_retried_later(
    reply, error, code, world, clock, admin_user, raw_server, caplog
):
    """GIVEN a receiver that answers with garbage, an error status, or nothing WHEN the delivery is sent THEN the
    attempt counts as failed, with its error and code recorded and logged, and the row waits for a retry with
    backoff: it is never left in "sending"."""
    server = raw_server(reply)
    delivery = one_pending_delivery(world, clock, admin_user, server.url)

    assert webhooks.deliver_webhook(delivery.pk) is False

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, code)
    assert re.search(error, delivery.last_error), delivery.last_error
    assert timezone.now() + dt.timedelta(seconds=15) <= delivery.next_attempt_at <= timezone.now() + 30 * HOUR
    assert server.connections == 1
    assert any(re.search(error, r.getMessage()) and "(attempt 1)" in r.getMessage() for r in caplog.records)


def test_webhook_receiver_that_never_answers_times_out_as_a_failed_attempt(
    world, clock, admin_user, raw_server, settings
):
    """GIVEN a receiver that accepts the connection and never answers WHEN the delivery is sent THEN it gives up after
    WEBHOOK_TIMEOUT and schedules a retry."""
    settings.WEBHOOK_TIMEOUT = 0.3
    server = raw_server(None)
    delivery = one_pending_delivery(world, clock, admin_user, server.url)

    assert webhooks.deliver_webhook(delivery.pk) is False

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, None)
    assert "timed out" in delivery.last_error


def test_webhook_redirect_is_a_failed_attempt_and_is_not_followed(world, clock, admin_user, raw_server, receiver):
    """GIVEN a receiver answering 302 to another URL WHEN the delivery is sent THEN the signed payload is not re-sent
    there: the attempt failed with code 302."""
    server = raw_server(f"HTTP/1.1 302 Found\r\nLocation: {receiver.url}\r\nContent-Length: 0\r\n\r\n".encode())
    delivery = one_pending_delivery(world, clock, admin_user, server.url)

    assert webhooks.deliver_webhook(delivery.pk) is False

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 302)
    assert receiver.received == []


def test_webhook_delivery_gives_up_after_the_maximum_attempts(world, clock, admin_user, raw_server, settings):
    """GIVEN OUTBOX_MAX_ATTEMPTS=3 and a receiver that always answers garbage WHEN each retry comes due and is sent
    THEN the third failure marks the delivery failed and no sweep picks it up again."""
    settings.OUTBOX_MAX_ATTEMPTS = 3
    delivery = one_pending_delivery(world, clock, admin_user, raw_server(b"GARBAGE\r\n\r\n").url)

    for attempt in (1, 2, 3):
        assert webhooks.deliver_webhook(delivery.pk) is False
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
        clock.move_to(delivery.next_attempt_at)

    assert delivery.status == DeliveryStatus.FAILED
    clock.shift(DAY)
    assert outbox_sweep.sweep()["deliveries"] == 0


@pytest.mark.parametrize(
    ("reply", "error"),
    [(None, "timed out"), (b"GARBAGE\r\n", "SMTP")],
    ids=["hung", "garbage"],
)
def test_email_to_a_broken_smtp_server_is_a_failed_attempt(reply, error, world, clock, raw_server, settings):
    """GIVEN an SMTP server that never speaks (or speaks garbage) WHEN an email notification is sent THEN it gives up
    after EMAIL_TIMEOUT, far inside the task's time limit, and schedules a retry instead of hanging the worker."""
    server = raw_server(reply, read_first=False)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 0.3
    _, flag = open_idle_flag(world, clock)
    [first, _] = emails(flag)

    assert notification_services.send_notification(first.pk) is False

    first.refresh_from_db()
    assert (first.status, first.attempts) == (DeliveryStatus.PENDING, 1)
    assert error in first.last_error
    assert first.next_attempt_at > timezone.now()


def test_email_timeout_is_set_well_inside_the_task_time_limits():
    assert django_settings.EMAIL_TIMEOUT == 10
    assert django_settings.EMAIL_TIMEOUT < django_settings.CELERY_TASK_SOFT_TIME_LIMIT / 2
    assert django_settings.WEBHOOK_TIMEOUT < django_settings.CELERY_TASK_SOFT_TIME_LIMIT / 2


def test_row_whose_worker_died_mid_send_counts_the_attempt(world, clock, admin_user, settings):
    """GIVEN a delivery and an email claimed by workers that were killed mid-send (left in "sending") WHEN the sweep
    runs more than ten minutes later THEN each lost attempt counts: the rows wait for a retry with backoff, and a row
    that has had its last attempt is marked failed instead of looping for ever."""
    settings.OUTBOX_MAX_ATTEMPTS = 2
    subscribe(admin_user, url="http://127.0.0.1:9/hooks", events=["stall.opened"])
    _, flag = open_idle_flag(world, clock)
    [delivery] = WebhookDelivery.objects.all()
    [email, _] = emails(flag)
    for model, row in ((WebhookDelivery, delivery), (Notification, email)):
        assert queue.claim(model, row.pk, timezone.now())  # the worker claims it, then dies

    clock.shift(10 * dt.timedelta(minutes=1) - TICK)
    assert outbox_sweep.sweep()["freed"] == 0
    clock.shift(2 * TICK)
    assert outbox_sweep.sweep()["freed"] == 2

    for row in (delivery, email):
        row.refresh_from_db()
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
        assert "lost mid-send" in row.last_error
        assert row.next_attempt_at > timezone.now()

    clock.move_to(email.next_attempt_at + HOUR)
    for model, row in ((WebhookDelivery, delivery), (Notification, email)):
        assert queue.claim(model, row.pk, timezone.now())  # the second (last) attempt dies too
    clock.shift(11 * dt.timedelta(minutes=1))
    assert outbox_sweep.sweep()["freed"] == 2
    for row in (delivery, email):
        row.refresh_from_db()
        assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 2)


# ------------------------------------------------------------------------------ enqueueing and the sweep


@pytest.fixture
def published(monkeypatch) -> list[dict[type, list]]:
    """Every batch the outbox publishes after a commit, instead of a broker. The batch starts empty: ids that an
    earlier test in this process enqueued in its rolled-back transaction are not this test's (they would show as an
    empty list of their model)."""
    monkeypatch.setattr(queue._pending, "batch", defaultdict(list))
    batches: list[dict[type, list]] = []
    monkeypatch.setattr(queue, "_publish", lambda batch: batches.append({k: list(v) for k, v in batch.items()}))
    return batches


def test_a_transaction_that_emits_several_events_publishes_once(
    world, admin_user, published, django_capture_on_commit_callbacks
):
    """GIVEN a subscription to every event WHEN a return sends two items back (three events) in one request THEN one
    publish after the commit carries all three deliveries together."""
    subscribe(admin_user)
    with django_capture_on_commit_callbacks(execute=True):  # the earlier requests' own publishes
        handover = world.submit(world.handover())
    items = list(handover.items.filter(mandatory=True))
    published.clear()
    before = set(WebhookDelivery.objects.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        hs.handover_return(handover=handover, by=world.people.owner, reason="Evidence missing.", items=items)

    [batch] = published
    created = WebhookDelivery.objects.exclude(pk__in=before)
    assert sorted(batch[WebhookDelivery]) == sorted(created.values_list("pk", flat=True))
    assert Counter(created.values_list("event__type", flat=True)) == {"handover.returned": 1, "item.updated": 2}


def test_ids_enqueued_in_a_rolled_back_savepoint_do_not_lose_later_ones(
    world, admin_user, published, django_capture_on_commit_callbacks
):
    """GIVEN a subscription, and a savepoint that creates a handover (its delivery enqueued) and then rolls back
    WHEN the transaction creates another handover and commits THEN one publish carries the later delivery, and not
    the rolled-back one, whose row is gone."""
    subscribe(admin_user)

    class Boom(Exception):
        pass

    def rolled_back() -> None:
        with transaction.atomic():
            world.handover()
            raise Boom

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(Boom):
            rolled_back()
        handover = world.handover()

    [delivery] = WebhookDelivery.objects.all()
    assert delivery.event.handover == handover
    assert published == [{WebhookDelivery: [delivery.pk]}]


@pytest.fixture
def memory_broker():
    """The project's Celery app publishing to kombu's in-process memory transport for the test."""
    from config.celery import app

    conf = app.conf
    saved = (conf.broker_url, conf.broker_transport_options)
    app._pool, app.amqp._producer_pool = None, None
    conf.broker_url, conf.broker_transport_options = "memory://", {}
    queue.publish_breaker.reset()
    try:
        yield app
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)
        app._pool, app.amqp._producer_pool = None, None
        conf.broker_url, conf.broker_transport_options = saved


def test_sweep_re_enqueues_a_row_only_when_no_task_waits_for_it(
    world, clock, memory_broker, django_capture_on_commit_callbacks, settings
):
    """GIVEN an idle flag whose two emails were published after its pass committed WHEN the sweep runs a minute later
    THEN it leaves them (their tasks are queued); WHEN they are still unclaimed after OUTBOX_REQUEUE_AFTER (the
    messages were lost) THEN it publishes them again, once; a retry that falls due later is published when due."""

    def sweep() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return outbox_sweep.sweep()["notifications"]

    case = idle_case(world)
    clock.move_to(case.fires_at(default_days(StallRule.IDLE)) + HOUR)
    with django_capture_on_commit_callbacks(execute=True):
        detect()
    [flag] = open_flags(case.handover, StallRule.IDLE)
    held = emails(flag)
    assert {n.enqueued_at for n in held} == {timezone.now()}

    clock.shift(dt.timedelta(minutes=1))
    assert sweep() == 0
    clock.shift(dt.timedelta(seconds=settings.OUTBOX_REQUEUE_AFTER))
    assert sweep() == 2
    assert sweep() == 0

    retry_at = timezone.now() + 2 * dt.timedelta(minutes=1)  # a failed attempt's retry, due in two minutes
    Notification.objects.filter(pk=held[0].pk).update(next_attempt_at=retry_at)
    clock.move_to(retry_at - TICK)
    assert sweep() == 0
    clock.move_to(retry_at)
    assert sweep() == 1


def test_sweep_takes_the_oldest_due_rows_first(world, clock, monkeypatch):
    """GIVEN more due emails than one sweep takes WHEN it runs THEN it takes those due longest ago."""
    monkeypatch.setattr(outbox_sweep, "SWEEP_BATCH", 1)
    _, flag = open_idle_flag(world, clock)
    _, older = emails(flag)
    Notification.objects.filter(pk=older.pk).update(next_attempt_at=timezone.now() - DAY)

    enqueued = []
    monkeypatch.setattr(outbox_sweep, "enqueue", lambda model, ids: enqueued.append((model, list(ids))))
    outbox_sweep.sweep()

    assert (Notification, [older.pk]) in enqueued


# ------------------------------------------------------------------------------------------------ links


def test_notifications_link_to_the_handover_page_and_only_emails_carry_the_prefix(world, clock, admin_user):
    subscribe(admin_user, events=["stall.opened"])
    case, flag = open_idle_flag(world, clock)
    page = f"{django_settings.SITE_URL}/handovers/{case.handover.pk}/"

    for notification in Notification.objects.filter(flag=flag):
        assert f"Handover: {page}\n" in notification.body
        assert "/api/" not in notification.body
        prefix = "[Handover] Stalled: " if notification.channel == Channel.EMAIL else "Stalled: "
        assert notification.subject.startswith(prefix), notification.subject
    handover = Event.objects.get(type=EventType.STALL_OPENED).payload["data"]["handover"]
    assert (handover["web_url"], handover["url"]) == (
        page,
        f"{django_settings.SITE_URL}/api/v1/handovers/{case.handover.pk}/",
    )


@pytest.mark.parametrize(
    ("env", "site_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"PORT": "8797"}, "http://127.0.0.1:8797"),
        ({"PORT": "5100", "HANDOVER_PORT": "8797"}, "http://127.0.0.1:8797"),  # honcho's PORT for the worker
        ({"PORT": "8797", "SITE_URL": "https://handover.example.com"}, "https://handover.example.com"),
    ],
    ids=["default", "port", "handover-port", "explicit"],
)
def test_site_url_defaults_to_the_port_the_web_server_listens_on(env, site_url):
    import os

    clean = {k: v for k, v in os.environ.items() if k not in ("PORT", "HANDOVER_PORT", "SITE_URL")}
    code = "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == site_url


# --------------------------------------------------------------------------------------- detection runs


def test_detection_runs_record_what_each_pass_did(world, clock):
    """GIVEN a handover with a done item WHEN passes open a verification flag, remind after its snooze, open an idle
    flag, escalate the first and finally resolve both THEN each pass left a DetectionRun with its counts."""
    case = verification_waiting_case(world)
    item = world.item(case.handover)
    p1 = T0 + 5 * DAY + HOUR
    clock.move_to(p1)
    detect()
    [waiting] = open_flags(case.handover, StallRule.VERIFICATION_WAITING)
    stalls.stall_snooze(flag=waiting, by=world.people.owner, until=p1 + DAY, reason="Owner on leave until tomorrow.")
    clock.move_to(p1 + DAY)
    detect()  # the snooze ended: one reminder
    clock.move_to(T0 + 7 * DAY + HOUR)
    detect()  # idle opens
    clock.move_to(p1 + 3 * DAY + HOUR)
    detect()  # the verification flag escalates
    clock.shift(HOUR)
    world.verify(item)  # clears both rules
    summary = stall_tasks.detect_stalls()

    assert summary == {"opened": 0, "resolved": 2, "escalated": 0, "reminded": 0}
    runs = DetectionRun.objects.order_by("started_at")
    assert [
        (run.started_at, run.finished_at, run.opened, run.resolved, run.escalated, run.reminded) for run in runs
    ] == [
        (p1, p1, 1, 0, 0, 0),
        (p1 + DAY, p1 + DAY, 0, 0, 0, 1),
        (T0 + 7 * DAY + HOUR, T0 + 7 * DAY + HOUR, 1, 0, 0, 0),
        (p1 + 3 * DAY + HOUR, p1 + 3 * DAY + HOUR, 0, 0, 1, 0),
        (p1 + 3 * DAY + 2 * HOUR, p1 + 3 * DAY + 2 * HOUR, 0, 2, 0, 0),
    ]


def test_detection_queries_do_not_grow_with_the_number_of_stalled_handovers(
    world, clock, admin_user, django_assert_num_queries
):
    """GIVEN 5, then 25 handovers each with an item waiting for verification, plus healthy ones WHEN a pass opens
    their flags and a later pass escalates them THEN each pass runs as many queries for 25 as for 5: the detector
    works on sets and never loops over handovers. The counts are pinned.

    Verification waiting notifies the owner only and the lead takes escalations, so 25 handovers stay within one
    SQLite insert batch: the comparison measures the detector, not the backend's batch size.
    """
    subscribe(admin_user)
    ops.team_update(team=world.team, by=world.people.lead, escalation_days=1)
    opening_at, escalating_at = T0 + 5 * DAY + HOUR, T0 + 6 * DAY + 2 * HOUR

    def build(stalled: int, healthy: int) -> None:
        clock.move_to(T0)
        for _ in range(stalled):
            world.complete(world.item(world.handover()))
        clock.move_to(T0 + 4 * DAY)  # done a day before the pass: not waiting long enough
        for _ in range(healthy):
            world.complete(world.item(world.handover()))

    def forget_flags() -> None:
        StallFlag.objects.all().delete()  # with their notifications
        Event.objects.filter(type__startswith="stall.").delete()  # with their deliveries

    def measure(stalled: int) -> tuple[CaptureQueriesContext, CaptureQueriesContext]:
        clock.move_to(opening_at)
        with CaptureQueriesContext(connection) as opening:
            assert len(detect().opened) == stalled
        clock.move_to(escalating_at)
        with CaptureQueriesContext(connection) as escalating:
            assert len(detect().escalated) == stalled
        return opening, escalating

    build(stalled=5, healthy=2)
    small = measure(5)
    forget_flags()
    build(stalled=20, healthy=3)
    large = measure(25)

    for few, many in zip(small, large, strict=True):
        assert len(many) == len(few), f"5 stalled:\n{sql_of(few)}\n\n25 stalled:\n{sql_of(many)}"

    forget_flags()
    clock.move_to(opening_at)
    with django_assert_num_queries(OPENING_PASS_QUERIES):
        detect()
    clock.move_to(escalating_at)
    with django_assert_num_queries(ESCALATING_PASS_QUERIES):
        detect()


# ------------------------------------------------------------------------------------------- concurrency


def at_once(*calls: Callable[[], object]) -> None:
    """Run each call in its own thread (so its own database connection), released together; none may fail."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            connection.ensure_connection()  # connect first, so that only the calls race
            barrier.wait(timeout=10)
            call()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a pass is stuck (deadlock?)"
    assert errors == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_still_make_one_episode_each(world, clock, admin_user):
    """GIVEN three idle handovers WHEN two detection passes run at the same moment on two connections THEN each
    handover has one flag, one notification per recipient and channel, and one stall.opened event with one delivery;
    AND the two passes' run records add up to three openings: each counts only the flags it opened itself."""
    subscribe(admin_user, events=["stall.opened"])
    cases = [idle_case(world) for _ in range(3)]
    clock.move_to(cases[-1].fires_at(default_days(StallRule.IDLE)) + HOUR)

    at_once(stalls.detect_stalls, stalls.detect_stalls)

    for case in cases:
        [flag] = flags(case.handover, StallRule.IDLE)
        assert notified(flag) == each_channel(*case.recipients)
        assert event_types(handover=case.handover) == {"stall.opened": 1}
    assert WebhookDelivery.objects.count() == 3
    assert sorted(DetectionRun.objects.values_list("opened", flat=True)) == [0, 3]


# ----------------------------------------------------------------------------------------- who may hear


def test_an_owner_who_left_the_team_is_not_told_the_lead_is(world, clock):
    """GIVEN a submitted handover whose operations owner then leaves the receiving team
    WHEN its review becomes overdue THEN the lead is told instead: the owner may no longer decide it."""
    handover = world.submit(world.handover())
    ops.team_remove_member(team=world.team, by=world.people.lead, user=world.people.owner)
    clock.move_to(timezone.now() + default_days(StallRule.REVIEW_OVERDUE) * DAY + HOUR)

    detect()

    (flag,) = open_flags(handover, StallRule.REVIEW_OVERDUE)
    assert notified(flag) == each_channel("lead")


def test_a_confidential_project_is_told_only_to_those_who_take_part(world, clock):
    """GIVEN a confidential project's accepted handover with a condition owned by a project member, who then
    leaves the project WHEN the condition falls overdue THEN the operations owner hears of it and the former
    member does not: to them the project does not exist."""
    handover = world.submit(world.handover())
    project = handover.project
    ps.project_update(project=project, by=world.people.manager, confidential=True)
    condition = {"text": "Agents trained on the new queue.", "owner": world.people.member, "due_date": T0.date()}
    hs.handover_accept_with_conditions(handover=handover, by=world.people.owner, conditions=[condition])
    ps.project_remove_member(project=project, by=world.people.manager, user=world.people.member)
    clock.move_to(midnight(T0.date() + DAY) + HOUR)

    detect()

    (flag,) = open_flags(handover, StallRule.CONDITIONS_OVERDUE)
    assert notified(flag) == each_channel("owner")
