"""What the pages offer is what the services allow.

The pages decide which buttons to show with ``handover.selectors`` (``item_actions``, ``handover_actions``,
``stall_flag_actions``, ``can_mark_condition_met``), from roles read once per page. These tests hold those reads to
the services: for every role, item state and handover state, a move is offered exactly when its service makes it
(each call is rolled back); a handover move may in addition be refused by its gate (the mandatory items), which the
page shows disabled with the service's own message (``handover_gates``, compared word for word).

The URLs check the role a move asks for before they read the form (``may_attempt_*``): a role refused there must be
refused by the service too, and every ``NotPermitted`` of a service must be refused there, so that a move the user
may never make is a 403 whatever was posted.
"""

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError, NotPermitted
from handover import services as hs
from handover.choices import HandoverStatus, Risk, Side, StallRule
from handover.models import ChecklistItem, Condition, Handover, StallFlag
from handover.selectors import (
    can_mark_condition_met,
    can_verify_item,
    can_verify_item_as,
    can_work_item,
    can_work_item_as,
    handover_actions,
    handover_gates,
    handover_roles,
    item_actions,
    may_act_on_flag,
    may_attempt_handover_move,
    may_attempt_item_move,
    stall_flag_actions,
)
from handover.stalls import services as stalls

from .conftest import EVIDENCE_URL, item_of

pytestmark = pytest.mark.django_db

PEOPLE = ("manager", "member", "viewer", "lead", "owner", "ops_member", "admin_user")


class _Undo(Exception):
    pass


def refused_with(call) -> DomainError | None:
    """None if the service acted (then rolled back), else its refusal."""
    try:
        with transaction.atomic():
            call()
            raise _Undo
    except _Undo:
        return None
    except DomainError as error:
        return error


def refusal(call) -> str | None:
    """None if the service acted (then rolled back), else the rule it refused with."""
    error = refused_with(call)
    return error.rule if error else None


def check_role_precheck(may: bool, error: DomainError | None, what: str) -> None:
    """The URL's role check (``may``) and the service agree: what the URL refuses, the service refuses; what the
    service refuses for lack of a role, the URL refuses."""
    if not may:
        assert error is not None, f"{what}: the URL refuses it, the service allowed it"
    if isinstance(error, NotPermitted):
        assert not may, f"{what}: the service refused {error.rule}, the URL would read the form"


ITEM_MOVES = {
    "complete": lambda item, by: hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL),
    "verify": lambda item, by: hs.item_verify(item=item, by=by),
    "send_back": lambda item, by: hs.item_send_back(item=item, by=by, reason="Missing."),
    "waive": lambda item, by: hs.item_waive(item=item, by=by, justification="Not needed here."),
    "approve_waiver": lambda item, by: hs.item_approve_waiver(item=item, by=by),
    "not_applicable": lambda item, by: hs.item_mark_not_applicable(item=item, by=by, reason="Does not apply."),
    "reopen": lambda item, by: hs.item_reopen(item=item, by=by, reason="Again."),
    "evidence": lambda item, by: hs.evidence_add(item=item, by=by, url=EVIDENCE_URL),
    "comment": lambda item, by: hs.comment_add(handover=item.handover, by=by, body="A remark.", item=item),
}

HANDOVER_MOVES = {
    "submit": lambda h, by: hs.handover_submit(handover=h, by=by),
    "accept": lambda h, by: hs.handover_accept(handover=h, by=by),
    "accept_with_conditions": lambda h, by: hs.handover_accept_with_conditions(
        handover=h,
        by=by,
        conditions=[hs.ConditionInput("Drill.", by, timezone.localdate() + dt.timedelta(days=7))],
    ),
    "return": lambda h, by: hs.handover_return(handover=h, by=by, reason="Not yet."),
    "start_hypercare": lambda h, by: hs.handover_start_hypercare(
        handover=h, by=by, ends_on=timezone.localdate() + dt.timedelta(days=10), exit_criteria="Quiet."
    ),
    "complete": lambda h, by: hs.handover_complete(handover=h, by=by),
    "cancel": lambda h, by: hs.handover_cancel(handover=h, by=by, reason="Re-scoped."),
    "comment": lambda h, by: hs.comment_add(handover=h, by=by, body="A remark."),
}
# Refusals that a shown button may still meet: the gate on the mandatory items, shown as the service's message.
GATES = {"submit_mandatory_open", "accept_mandatory_unverified"}
GATE_OF = {"submit": "submit", "accept": "accept", "accept_with_conditions": "accept"}


def _fresh(handover: Handover) -> Handover:
    return Handover.objects.select_related("project", "receiving_team").get(pk=handover.pk)


def check_offers(handover: Handover, people) -> int:
    """Compare every offer with its service for everyone; returns how many pairs were compared."""
    compared = 0
    for who in PEOPLE:
        user = people[who]
        page_handover = _fresh(handover)
        roles = handover_roles(page_handover, user)
        items = list(ChecklistItem.objects.filter(handover=handover).order_by("position"))
        for item in items:
            item.handover = page_handover
            assert can_work_item_as(item, roles) == can_work_item(item, user), (who, item.title)
            assert can_verify_item_as(item, roles) == can_verify_item(item, user), (who, item.title)
            offered = item_actions(item, page_handover, roles)
            for action, move in ITEM_MOVES.items():
                fresh = ChecklistItem.objects.select_related("handover").get(pk=item.pk)
                error = refused_with(lambda move=move, fresh=fresh, user=user: move(fresh, user))
                rule = error.rule if error else None
                what = f"{who} / {item.title} ({item.status}) / {action} on a {page_handover.status} handover"
                assert (action in offered) == (rule is None), (
                    f"{what}: offered={action in offered}, service refused with {rule}"
                )
                check_role_precheck(may_attempt_item_move(action, item, roles), error, what)
                compared += 1
        offered = handover_actions(page_handover, roles)
        gates = handover_gates(items)
        for action, move in HANDOVER_MOVES.items():
            error = refused_with(lambda move=move, user=user: move(_fresh(handover), user))
            rule = error.rule if error else None
            what = f"{who} / {action} on {page_handover.status}"
            if action in offered:
                assert rule is None or rule in GATES, f"{what}: offered, refused {rule}"
                if action in GATE_OF:  # the disabled button says what the service would say, word for word
                    assert gates.get(GATE_OF[action]) == (error.message if rule in GATES else None), what
            else:
                assert rule not in (None, *GATES), f"{what}: not offered, yet allowed"
            check_role_precheck(may_attempt_handover_move(action, roles), error, what)
            compared += 1
    return compared


@pytest.fixture
def people(manager, member, viewer, lead, owner, ops_member, admin_user) -> dict:
    return {
        "manager": manager,
        "member": member,
        "viewer": viewer,
        "lead": lead,
        "owner": owner,
        "ops_member": ops_member,
        "admin_user": admin_user,
    }


@pytest.fixture
def mixed_handover(handover, manager, member, owner, ops_member) -> Handover:
    """Preparing, its items in every state: done, verified, waived (pending and approved), not applicable, open
    (assigned to a project member), done on the operations side."""
    hs.item_complete(item=item_of(handover, Risk.INEFFICIENCY, Side.PROJECT), by=manager, evidence_url=EVIDENCE_URL)
    ops_verified = item_of(handover, Risk.INEFFICIENCY, Side.OPERATIONS)
    hs.item_complete(item=ops_verified, by=ops_member, evidence_text="Rota.")
    hs.item_verify(item=ops_verified, by=owner)
    hs.item_waive(item=item_of(handover, Risk.FAILURE, Side.PROJECT), by=manager, justification="Covered elsewhere.")
    hs.item_mark_not_applicable(item=item_of(handover, Risk.FAILURE, Side.OPERATIONS), by=owner, reason="No vendor.")
    hs.item_update(item=item_of(handover, Risk.ADOPTION, Side.PROJECT), by=manager, assignee=member)
    hs.item_complete(item=item_of(handover, Risk.ADOPTION, Side.OPERATIONS), by=ops_member, evidence_text="Briefed.")
    hs.item_waive(item=handover.items.get(mandatory=False), by=owner, justification="Optional anyway.")
    return handover


def test_offers_match_the_services_while_preparing(mixed_handover, people):
    assert check_offers(mixed_handover, people) > 400


def test_offers_match_the_services_when_submitted_and_returned(mixed_handover, people, member, owner, manager):
    """GIVEN the mixed checklist made submittable and submitted THEN offers match; WHEN operations returns it with
    an item sent back THEN they match again."""
    hs.item_complete(item=item_of(mixed_handover, Risk.ADOPTION, Side.PROJECT), by=member, evidence_url=EVIDENCE_URL)
    hs.handover_submit(handover=mixed_handover, by=manager)
    check_offers(mixed_handover, people)

    hs.handover_return(
        handover=_fresh(mixed_handover),
        by=owner,
        reason="Not yet.",
        items=[item_of(mixed_handover, Risk.INEFFICIENCY, Side.PROJECT)],
    )
    check_offers(mixed_handover, people)


def test_offers_match_the_services_for_a_manager_seated_on_the_receiving_team(mixed_handover, people, team, manager):
    """GIVEN the project's manager is also a member of the receiving team THEN what each page offers them still
    matches the services, which give them nothing of operations' side to do."""
    team.members.add(manager)
    check_offers(mixed_handover, people)


def test_offers_match_the_services_after_acceptance(submitted_handover, people, owner):
    hs.handover_accept(handover=submitted_handover, by=owner)
    check_offers(submitted_handover, people)
    hs.handover_start_hypercare(
        handover=_fresh(submitted_handover),
        by=owner,
        ends_on=timezone.localdate() + dt.timedelta(days=5),
        exit_criteria="Quiet.",
    )
    check_offers(submitted_handover, people)


def test_flag_and_condition_offers_match_their_services(conditional_handover, people, owner):
    open_flag = StallFlag.objects.create(handover=conditional_handover, rule=StallRule.IDLE, opened_at=timezone.now())
    acknowledged = StallFlag.objects.create(
        handover=conditional_handover, rule=StallRule.PAST_TARGET, opened_at=timezone.now()
    )
    stalls.stall_acknowledge(flag=acknowledged, by=owner, note="Seen.")
    resolved = StallFlag.objects.create(
        handover=conditional_handover,
        rule=StallRule.REVIEW_OVERDUE,
        opened_at=timezone.now(),
        resolved_at=timezone.now(),
    )
    condition = Condition.objects.get(handover=conditional_handover)
    later = timezone.now() + dt.timedelta(days=2)
    for who in PEOPLE:
        user = people[who]
        for flag in (open_flag, acknowledged, resolved):
            flag = StallFlag.objects.select_related("handover__project", "handover__receiving_team").get(pk=flag.pk)
            offered = stall_flag_actions(flag, user)
            ack = refusal(lambda flag=flag, user=user: stalls.stall_acknowledge(flag=flag, by=user, note="Seen."))
            snooze = refusal(
                lambda flag=flag, user=user: stalls.stall_snooze(flag=flag, by=user, until=later, reason="Later.")
            )
            assert ("acknowledge" in offered) == (ack is None), (who, flag.rule, ack)
            assert ("snooze" in offered) == (snooze is None), (who, flag.rule, snooze)
            may = may_act_on_flag(flag, user)
            for call in (
                lambda flag=flag, user=user: stalls.stall_acknowledge(flag=flag, by=user, note="Seen."),
                lambda flag=flag, user=user: stalls.stall_snooze(flag=flag, by=user, until=later, reason="Later."),
            ):
                check_role_precheck(may, refused_with(call), f"{who} / {flag.rule}")
        handover = _fresh(conditional_handover)
        met = refusal(lambda user=user: hs.condition_mark_met(condition=condition, by=user))
        assert can_mark_condition_met(condition, handover, user) == (met is None), (who, met)
    assert _fresh(conditional_handover).status == HandoverStatus.ACCEPTED_WITH_CONDITIONS


def test_the_gates_name_what_blocks_in_the_services_words(handover, manager, owner, ops_member, people):
    """GIVEN a checklist with more than five mandatory items open WHEN the page reads its gates THEN submitting is
    blocked with the service's message (five titles and "and N more"), and once submitted, accepting likewise."""
    for position in range(8):
        hs.item_add(handover=handover, by=manager, title=f"Extra {position}", risk=Risk.FAILURE)
    items = list(handover.items.all())
    gates = handover_gates(items)
    error = refused_with(lambda: hs.handover_submit(handover=_fresh(handover), by=manager))
    assert error.rule == "submit_mandatory_open"
    assert gates["submit"] == error.message
    assert "; and " in gates["submit"]

    for item in handover.items.filter(mandatory=True):
        hs.item_complete(item=item, by=ops_member if item.side == Side.OPERATIONS else manager, evidence_text="Done.")
    hs.handover_submit(handover=_fresh(handover), by=manager)
    items = list(handover.items.all())
    gates = handover_gates(items)
    assert "submit" not in gates
    error = refused_with(lambda: hs.handover_accept(handover=_fresh(handover), by=owner))
    assert gates["accept"] == error.message
    check_offers(handover, people)
