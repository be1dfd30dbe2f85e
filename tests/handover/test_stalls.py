"""Stalled handovers: the detector, its notifications and escalation, acknowledge and snooze, and the events other
tools receive (DOMAIN.md "Stalled handovers" and "Events for other tools").

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
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config.errors import IllegalTransition, InvalidInput, NotPermitted
from handover import outbox, stalls, tasks
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
from operations import services as ops
from operations.models import OperationsTeam
from projects import services as ps
from projects.choices import Stage
from tests.factories import ProjectFactory, TeamFactory, TemplateFactory

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
OPENING_PASS_QUERIES = 43
ESCALATING_PASS_QUERIES = 42


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
    return [outbox.send_notification(notification.pk) for notification in notifications]


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
    recipients: tuple[str, ...]  # who DOMAIN.md says is notified when it opens
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
    one open flag, one in-app and one email notification per recipient DOMAIN.md names, and one email each."""
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
    assert [(outbox.send_notification(n.pk), outbox.send_notification(n.pk)) for n in pending] == [(True, False)] * len(
        case.recipients
    )
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


# ----------------------------------------------------------------------------------------------- escalation


def test_unacknowledged_flag_escalates_to_the_team_lead_once(world, clock, mailoutbox):
    """GIVEN an open flag nobody acknowledges WHEN the escalation delay (3 days) passes THEN the team's lead gets one
    in-app and one email notification: not a moment before, and not again on later passes."""
    case, flag = open_idle_flag(world, clock)
    opened = flag.opened_at

    clock.move_to(opened + 3 * DAY - TICK)
    detect()
    assert notified(flag, ESCALATED) == []

    clock.move_to(opened + 3 * DAY + TICK)
    first = detect()
    detect()
    clock.shift(2 * DAY)
    detect()

    assert first.escalated == [flag.pk]
    assert notified(flag, ESCALATED) == each_channel("lead")
    flag.refresh_from_db()
    assert flag.escalated_at == opened + 3 * DAY + TICK
    assert notified(flag) == each_channel(*case.recipients)  # the opening notifications are untouched
    assert send(emails(flag, ESCALATED) * 2) == [True, False]
    [message] = mailoutbox
    assert message.to == [address("lead")]
    assert message.subject.startswith("[Handover] Escalated:")


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


def test_snoozed_flag_sends_nothing_until_its_date_then_reminds_once(world, clock, mailoutbox):
    """GIVEN an open flag whose emails are still pending WHEN the owner snoozes it for five days THEN the emails are
    held until the date (send defers them, the sweep leaves them), nothing escalates although the delay passes, and
    from the date the held emails go out and the owner gets one reminder, however often detection runs."""
    _, flag = open_idle_flag(world, clock)
    held = emails(flag)
    assert len(held) == 2  # owner and manager
    clock.shift(HOUR)
    until = timezone.now() + 5 * DAY
    stalls.stall_snooze(flag=flag, by=world.people.owner, until=until, reason="Waiting for the vendor's contract.")

    assert send(held) == [False, False]
    assert mailoutbox == []
    assert set(Notification.objects.filter(pk__in=[n.pk for n in held]).values_list("status", "next_attempt_at")) == {
        (DeliveryStatus.PENDING, until)
    }
    assert outbox.sweep()["notifications"] == 0

    clock.move_to(flag.opened_at + 4 * DAY)  # past the 3-day escalation delay, still snoozed
    detect()
    detect()
    flag.refresh_from_db()
    assert flag.is_open
    assert flag.escalated_at is None
    assert notified(flag, ESCALATED) == []
    assert notified(flag, REMINDER) == []

    clock.move_to(until - TICK)
    assert send(held) == [False, False]
    assert outbox.sweep()["notifications"] == 0
    assert mailoutbox == []

    clock.move_to(until)
    assert outbox.sweep()["notifications"] == 2  # the held emails are due again
    first = detect()
    detect()
    clock.shift(DAY)
    detect()

    assert first.reminded == [flag.pk]
    assert notified(flag, REMINDER) == each_channel("owner")
    assert send(held) == [True, True]
    assert send(emails(flag, REMINDER) * 2) == [True, False]
    assert sorted((message.to[0], message.subject.split(":")[0]) for message in mailoutbox) == [
        (address("manager"), "[Handover] Stalled"),
        (address("owner"), "[Handover] Reminder"),
        (address("owner"), "[Handover] Stalled"),
    ]


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

    assert outbox.sweep()["notifications"] == 2
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
    publisher runs again and again (directly and from the sweep) THEN each move is exactly one event."""
    subscription = subscribe(admin_user, events=["project.stage_changed"])
    manager = world.people.manager
    project = ProjectFactory(code="ERP-2031", manager=manager, receiving_team=world.team)
    ps.project_transition(project=project, to=Stage.PLANNING, by=manager)

    assert outbox.publish_project_events() == 1
    assert outbox.publish_project_events() == 0
    assert outbox.sweep()["published"] == 0
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
    assert outbox.sweep()["published"] == 1
    clock.shift(12 * HOUR)
    assert outbox.publish_project_events() == 0
    assert outbox.sweep()["published"] == 0

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

    assert [outbox.deliver_webhook(delivery.pk), outbox.deliver_webhook(delivery.pk)] == [True, False]

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

    assert outbox.deliver_webhook(delivery.pk) is False
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert delivery.next_attempt_at > timezone.now()
    assert outbox.deliver_webhook(delivery.pk) is False
    assert len(receiver.received) == 1

    receiver.status = 204
    clock.move_to(delivery.next_attempt_at)
    assert outbox.sweep()["deliveries"] == 1
    assert outbox.deliver_webhook(delivery.pk) is True

    ids = [{k.lower(): v for k, v in headers.items()}["webhook-id"] for headers, _ in receiver.received]
    assert len(ids) == 2
    assert ids[0] == ids[1]


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
    summary = tasks.detect_stalls()

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
    handover has one flag, one notification per recipient and channel, and one stall.opened event with one delivery."""
    subscribe(admin_user, events=["stall.opened"])
    cases = [idle_case(world) for _ in range(3)]
    clock.move_to(cases[-1].fires_at(default_days(StallRule.IDLE)) + HOUR)

    at_once(stalls.detect_stalls, stalls.detect_stalls)

    for case in cases:
        [flag] = flags(case.handover, StallRule.IDLE)
        assert notified(flag) == each_channel(*case.recipients)
        assert event_types(handover=case.handover) == {"stall.opened": 1}
    assert WebhookDelivery.objects.count() == 3
