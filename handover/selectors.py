"""Reads about handovers that are more than a filter: roles, readiness and snapshots."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from operations.models import OperationsTeam
from operations.selectors import is_team_lead, is_team_member
from projects.models import visible_q

from .choices import (
    ACCEPTED_STATUSES,
    HANDOVER_TRANSITIONS,
    ITEM_TRANSITIONS,
    OPEN_STATUSES,
    ActivityVerb,
    Channel,
    ConditionStatus,
    HandoverStatus,
    ItemStatus,
    Side,
)
from .models import Activity, ChecklistItem, Condition, Handover, Notification, StallFlag
from .readiness import Readiness as Readiness
from .readiness import RiskReadiness as RiskReadiness
from .readiness import handover_readiness as handover_readiness
from .readiness import readiness_aggregates as readiness_aggregates
from .readiness import readiness_from_items

# ---------------------------------------------------------------------------------------------------- roles


def is_manager(handover: Handover, user) -> bool:
    """The project's manager, or an administrator."""
    return bool(user.is_authenticated and (user.is_staff or handover.project.manager_id == user.pk))


def is_operations_owner(handover: Handover, user) -> bool:
    """The handover's operations owner while still on the receiving team, the team's lead, or an administrator;
    never the project's manager, whatever else they are: the side that hands over does not accept."""
    if not user.is_authenticated or handover.project.manager_id == user.pk:
        return False
    if user.is_staff or is_team_lead(handover.receiving_team, user):
        return True
    # Someone who has left the receiving team keeps the name on the handover but not the right to decide.
    return handover.operations_owner_id == user.pk and is_team_member(handover.receiving_team, user)


def is_operations_member(handover: Handover, user) -> bool:
    """Anyone on the receiving side: owner, lead, team member, or an administrator."""
    return is_operations_owner(handover, user) or is_team_member(handover.receiving_team, user)


def acts_for_operations(handover: Handover, user) -> bool:
    """Someone on the receiving side who may do its work: never the project's manager, even from a seat on the
    receiving team (the side that hands over does not sign off for the side that receives)."""
    return handover.project.manager_id != user.pk and is_operations_member(handover, user)


def is_project_member(handover: Handover, user) -> bool:
    return bool(user.is_authenticated and handover.project.members.filter(pk=user.pk).exists())


def is_participant(handover: Handover, user) -> bool:
    return is_manager(handover, user) or is_operations_member(handover, user) or is_project_member(handover, user)


def can_work_item(item: ChecklistItem, user) -> bool:
    """Who may complete an item: its responsible side (project members only for items assigned to them)."""
    handover = item.handover
    if item.side == Side.OPERATIONS:
        return acts_for_operations(handover, user)
    if is_manager(handover, user):
        return True
    return bool(user.is_authenticated and item.assignee_id == user.pk and is_project_member(handover, user))


def can_verify_item(item: ChecklistItem, user) -> bool:
    """The operations owner verifies any item; a team member verifies operations-side items; the project's manager
    verifies nothing, even from a seat on the receiving team."""
    handover = item.handover
    if is_operations_owner(handover, user):
        return True
    return item.side == Side.OPERATIONS and acts_for_operations(handover, user)


def handovers_visible_to(user) -> QuerySet[Handover]:
    """Handovers of the projects ``user`` may see (``projects.models.visible_q``), as a filter on the joined project
    rather than an ``IN`` over every visible project: a list ordered by an index reads only its page."""
    return Handover.objects.filter(visible_q(user, "project__"))


def inbox(user) -> QuerySet[Notification]:
    """``user``'s in-app notifications about handovers they may still see: someone who has left a confidential
    project's receiving team no longer reads about it, in the inbox, its count or the API."""
    return Notification.objects.filter(
        visible_q(user, "flag__handover__project__"), recipient=user, channel=Channel.IN_APP
    )


# ------------------------------------------------------------------------------------------------ readiness


# Readiness lives in handover.readiness: stored on the handover, recomputed from the items (imported above, and
# still importable from here).


# ------------------------------------------------------------------------------------------------ snapshots


def checklist_snapshot(handover: Handover) -> dict:
    """The checklist as it stands, frozen into a decision (two queries)."""
    items = list(
        handover.items.select_related("assignee", "done_by", "verified_by", "waiver_approved_by").prefetch_related(
            "evidence"
        )
    )
    return {
        "status": handover.status,
        "target_date": handover.target_date.isoformat(),
        "readiness": readiness_from_items(items).as_dict(),
        "items": [
            {
                "id": item.pk,
                "title": item.title,
                "risk": item.risk,
                "side": item.side,
                "mandatory": item.mandatory,
                "status": item.status,
                "assignee": _username(item.assignee),
                "done_by": _username(item.done_by),
                "done_at": _iso(item.done_at),
                "verified_by": _username(item.verified_by),
                "verified_at": _iso(item.verified_at),
                "waiver_justification": item.waiver_justification,
                "waiver_approved_by": _username(item.waiver_approved_by),
                "not_applicable_reason": item.not_applicable_reason,
                "evidence": [{"url": e.url, "text": e.text, "added_at": _iso(e.added_at)} for e in item.evidence.all()],
            }
            for item in items
        ],
    }


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------------------------------------- web pages
# What a page may offer a user, and the lists of what waits on whom. Offering is not deciding: every service
# still checks its role, state and gate under its lock; these reads only keep off the page the buttons that could
# not work now. Each mirrors the checks of the service it names, and tests/ui holds them to that.


@dataclass(frozen=True)
class HandoverRoles:
    """One user's roles on one handover, read once (two queries at most), so that a page deciding what to offer on
    each item of a checklist does not ask the database once per item."""

    user_id: int | None
    manager: bool
    owner: bool
    operations_member: bool
    project_member: bool
    project_manager: bool  # the project's own manager (not an administrator standing in)

    @property
    def participant(self) -> bool:
        return self.manager or self.operations_member or self.project_member

    @property
    def for_operations(self) -> bool:
        """``acts_for_operations``."""
        return self.operations_member and not self.project_manager


def handover_roles(handover: Handover, user) -> HandoverRoles:
    """The roles of ``is_manager``, ``is_operations_owner``, ``is_operations_member`` and ``is_project_member``."""
    return HandoverRoles(
        user_id=user.pk if user.is_authenticated else None,
        manager=is_manager(handover, user),
        owner=is_operations_owner(handover, user),
        operations_member=is_operations_member(handover, user),
        project_member=is_project_member(handover, user),
        project_manager=user.is_authenticated and handover.project.manager_id == user.pk,
    )


def can_work_item_as(item: ChecklistItem, roles: HandoverRoles) -> bool:
    """``can_work_item``, from roles already read."""
    if item.side == Side.OPERATIONS:
        return roles.for_operations
    if roles.manager:
        return True
    return roles.user_id is not None and item.assignee_id == roles.user_id and roles.project_member


def can_verify_item_as(item: ChecklistItem, roles: HandoverRoles) -> bool:
    """``can_verify_item``, from roles already read."""
    return roles.owner or (item.side == Side.OPERATIONS and roles.for_operations)


# Where the project side may change the checklist (``_require_project_side_can_act``): not while submitted.
_PROJECT_SIDE_ACTS = frozenset({HandoverStatus.PREPARING, HandoverStatus.RETURNED})


def item_actions(item: ChecklistItem, handover: Handover, roles: HandoverRoles) -> frozenset[str]:
    """The moves on ``item`` to offer now: ``complete``, ``verify``, ``send_back``, ``waive``,
    ``approve_waiver``, ``not_applicable``, ``reopen``, ``evidence``, ``comment``."""
    status = handover.status
    # _require_open: an open status, and a project still running (a final project's handover is frozen).
    checklist_open = status in OPEN_STATUSES and not handover.project.is_final
    project_side_acts = checklist_open and status in _PROJECT_SIDE_ACTS
    work, verify = can_work_item_as(item, roles), can_verify_item_as(item, roles)
    actions: set[str] = set()
    if roles.participant:
        actions.add("comment")
    # evidence_add: a verifier while the checklist is open; the project side only while it may act.
    if (verify and checklist_open) or (work and project_side_acts):
        actions.add("evidence")
    side_may_act = checklist_open if item.side == Side.OPERATIONS else project_side_acts
    if item.status == ItemStatus.OPEN and work and side_may_act:
        actions.add("complete")
    if item.status == ItemStatus.DONE and verify and checklist_open:
        actions.add("send_back")
        if item.done_by_id != roles.user_id:  # four eyes: nobody verifies their own work
            actions.add("verify")
    # item_waive / item_mark_not_applicable: the owner while the checklist is open, the manager while the
    # project side may act.
    may_plan = checklist_open if roles.owner else roles.manager and project_side_acts
    if may_plan and ItemStatus.WAIVED in ITEM_TRANSITIONS[item.status]:
        actions.add("waive")
    if may_plan and ItemStatus.NOT_APPLICABLE in ITEM_TRANSITIONS[item.status]:
        actions.add("not_applicable")
    if roles.owner and checklist_open and item.status == ItemStatus.WAIVED and item.waiver_approved_by_id is None:
        actions.add("approve_waiver")
    # item_reopen: the owner any item; the team its own operations-side done work; the project side its own
    # done work, the manager any waiver or not-applicable; nobody but the owner undoes a verification.
    if item.status != ItemStatus.OPEN and may_attempt_item_move("reopen", item, roles):
        if roles.owner or (item.side == Side.OPERATIONS and item.status == ItemStatus.DONE):
            reopen = checklist_open
        else:
            reopen = project_side_acts
        if reopen:
            actions.add("reopen")
    return frozenset(actions)


def handover_actions(handover: Handover, roles: HandoverRoles) -> frozenset[str]:
    """The handover moves to offer now: ``submit``, ``accept``, ``accept_with_conditions``, ``return``,
    ``start_hypercare``, ``complete``, ``cancel``, ``comment``."""
    status = handover.status
    actions: set[str] = set()
    if roles.participant:
        actions.add("comment")
    if roles.manager and not handover.project.is_final and status in _PROJECT_SIDE_ACTS:
        actions.add("submit")
    if roles.owner and status == HandoverStatus.SUBMITTED and not handover.project.is_final:
        actions.update({"accept", "accept_with_conditions", "return"})
    if roles.owner and HandoverStatus.HYPERCARE in HANDOVER_TRANSITIONS[status]:
        actions.add("start_hypercare")
    if roles.owner and status == HandoverStatus.HYPERCARE:
        actions.add("complete")
    if (roles.manager or roles.owner) and HandoverStatus.CANCELLED in HANDOVER_TRANSITIONS[status]:
        actions.add("cancel")
    return frozenset(actions)


# The role each move asks for, apart from the state and the gate: what a URL checks before it even reads the
# form, so that a move the user may never make is refused (403) whatever was posted. Each mirrors the
# ``NotPermitted`` checks of its service; tests/ui/test_offers.py holds them to that in both directions (a role
# refused here is refused by the service, and a service's ``NotPermitted`` is refused here).
HANDOVER_MOVE_ROLES = {
    "submit": lambda roles: roles.manager,
    "accept": lambda roles: roles.owner,
    "accept_with_conditions": lambda roles: roles.owner,
    "return": lambda roles: roles.owner,
    "start_hypercare": lambda roles: roles.owner,
    "complete": lambda roles: roles.owner,
    "cancel": lambda roles: roles.manager or roles.owner,
    "comment": lambda roles: roles.participant,
}


def may_attempt_handover_move(action: str, roles: HandoverRoles) -> bool:
    """Whether ``roles`` hold the role the handover move ``action`` asks for (its state and gate aside)."""
    check = HANDOVER_MOVE_ROLES.get(action)
    return bool(check and check(roles))


def may_attempt_item_move(action: str, item: ChecklistItem, roles: HandoverRoles) -> bool:
    """Whether ``roles`` hold the role the item move ``action`` asks for on ``item`` (its state aside)."""
    work, verify = can_work_item_as(item, roles), can_verify_item_as(item, roles)
    if action == "complete":
        return work
    if action == "verify":  # four eyes: the one who completed it may not verify it
        return verify and item.done_by_id != roles.user_id
    if action == "send_back":
        return verify
    if action in ("waive", "not_applicable"):
        return roles.owner or roles.manager
    if action == "approve_waiver":
        return roles.owner
    if action == "reopen":  # each side takes back its own done work; only the owner undoes a verification
        own_work = item.status == ItemStatus.DONE and work
        planned = item.status in (ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE) and roles.manager
        return roles.owner or own_work or planned
    if action == "evidence":
        return work or verify
    if action == "comment":
        return roles.participant
    return False


def may_act_on_flag(flag: StallFlag, user) -> bool:
    """The role ``stall_acknowledge`` and ``stall_snooze`` ask for: the operations owner or the team's lead."""
    return is_operations_owner(flag.handover, user)


# The gates of submitting and accepting, the one place they are written: ``handover_submit`` and
# ``handover_accept(_with_conditions)`` refuse with these words, and a page that has already loaded the items
# (no query) shows a blocked button with the same reason.
_SUBMITTABLE = (ItemStatus.DONE, ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE)
_ACCEPTABLE = (ItemStatus.VERIFIED, ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE)


def _missing(items: Iterable[ChecklistItem], statuses, *, approved_waivers: bool) -> list[str]:
    missing = []
    for item in sorted((i for i in items if i.mandatory), key=lambda i: (i.position, i.pk)):
        if item.status == ItemStatus.WAIVED and approved_waivers and not item.waiver_approved:
            missing.append(f"{item.title} (waiver not approved)")
        elif item.status not in statuses:
            missing.append(item.title)
    return missing


def _titles(titles: list[str], limit: int = 5) -> str:
    shown = "; ".join(titles[:limit])
    return shown + (f"; and {len(titles) - limit} more" if len(titles) > limit else "")


def handover_gates(items: Iterable[ChecklistItem]) -> dict[str, str]:
    """``{"submit": message, "accept": message}`` for the gates that block those moves now (absent: open).

    ``accept`` also gates accepting with conditions. The services apply it under their lock; pages show it.
    """
    items = list(items)
    gates = {}
    open_items = _missing(items, _SUBMITTABLE, approved_waivers=False)
    if open_items:
        gates["submit"] = (
            f"Submitting needs every mandatory item done, waived or not applicable; {len(open_items)} still open: "
            f"{_titles(open_items)}."
        )
    unverified = _missing(items, _ACCEPTABLE, approved_waivers=True)
    if unverified:
        gates["accept"] = (
            f"Accepting needs every mandatory item verified, waived with approval or not applicable; "
            f"{len(unverified)} not yet: {_titles(unverified)}."
        )
    return gates


def stall_flag_actions(flag: StallFlag, user) -> frozenset[str]:
    """``acknowledge`` and ``snooze`` as ``handover.stalls`` allows them (needs ``flag.handover`` loaded with its
    receiving team)."""
    if flag.resolved_at is not None or not is_operations_owner(flag.handover, user):
        return frozenset()
    return frozenset({"snooze"} if flag.acknowledged_at is not None else {"snooze", "acknowledge"})


def can_mark_condition_met(condition: Condition, handover: Handover, user) -> bool:
    """As ``condition_mark_met``: the condition's owner or the operations owner, while it is open."""
    return condition.status == ConditionStatus.OPEN and (
        condition.owner_id == user.pk or is_operations_owner(handover, user)
    )


def handover_is_overdue(handover: Handover, today: date | None = None) -> bool:
    """Past its target date and neither accepted nor cancelled (the API's ``overdue`` filter)."""
    today = today or timezone.localdate()
    return handover.target_date < today and handover.status not in (*ACCEPTED_STATUSES, HandoverStatus.CANCELLED)


def handover_overdue_q(today: date | None = None, prefix: str = "") -> Q:
    """``handover_is_overdue`` as a filter (``prefix``: the path from the queried model to the handover); the
    statuses named, not excluded, so that the status and target date index serves it."""
    today = today or timezone.localdate()
    waiting = [s for s in HandoverStatus if s not in ACCEPTED_STATUSES and s != HandoverStatus.CANCELLED]
    return Q(**{f"{prefix}target_date__lt": today, f"{prefix}status__in": waiting})


def open_flag_count() -> Coalesce:
    """A handover's open stall flags, counted in a subquery: evaluated for the rows read, not the whole list."""
    return Coalesce(
        Subquery(
            StallFlag.objects.filter(handover=OuterRef("pk"), resolved_at__isnull=True)
            .order_by()
            .values("handover")
            .annotate(n=Count("pk"))
            .values("n")
        ),
        0,
    )


def teams_of(user) -> QuerySet[OperationsTeam]:
    """The operations teams ``user`` leads or belongs to."""
    return OperationsTeam.objects.filter(Q(lead=user) | Q(members=user)).distinct()


def operations_handovers(user, team_ids: Iterable[int] | None = None) -> QuerySet[Handover]:
    """Live handovers (not completed or cancelled) coming to a team ``user`` leads or belongs to, or owned by them.

    ``team_ids``, those teams (``teams_of``) if the caller has read them: the filter is then two index ranges
    (receiving team, operations owner) that the database reads as one bitmap, instead of an OR across the teams
    and their members that scans every handover; nobody's team, the owner's range alone."""
    teams = teams_of(user).values("pk") if team_ids is None else team_ids
    return (
        handovers_visible_to(user)
        .filter(Q(receiving_team_id__in=teams) | Q(operations_owner=user))
        .exclude(status__in=(HandoverStatus.COMPLETED, HandoverStatus.CANCELLED))
    )


def items_sent_back_to(user) -> QuerySet[ChecklistItem]:
    """Items operations sent back (open again, with the reason) on live handovers of projects ``user`` manages."""
    return ChecklistItem.objects.filter(
        handover__project__manager=user, status=ItemStatus.OPEN, handover__status__in=OPEN_STATUSES
    ).exclude(sent_back_reason="")


def items_awaiting_verification_by(user, team_ids: Iterable[int] | None = None) -> QuerySet[ChecklistItem]:
    """Done items ``user`` may verify (``can_verify_item`` without an administrator's reach), except their own.

    Only a team's lead or member verifies, so the items are read from the live handovers of ``team_ids`` (the teams
    ``user`` leads or belongs to, ``teams_of``), an index range on the receiving team, not from every handover."""
    teams = teams_of(user).values("pk") if team_ids is None else team_ids
    member_of = OperationsTeam.members.through.objects.filter(user=user).values("operationsteam_id")
    # As ``is_operations_owner``: an owner who has left the team no longer verifies, and a project's manager never.
    may_verify = (
        Q(handover__operations_owner=user, handover__receiving_team__in=member_of)
        | Q(handover__receiving_team__lead=user)
        | Q(side=Side.OPERATIONS, handover__receiving_team__in=member_of)
    ) & ~Q(handover__project__manager=user)
    return (
        ChecklistItem.objects.filter(
            may_verify,
            status=ItemStatus.DONE,
            handover__in=handovers_visible_to(user)
            .filter(Q(receiving_team_id__in=teams), status__in=OPEN_STATUSES)
            .values("pk"),
        )
        .exclude(done_by=user)
        .distinct()
    )


@dataclass(frozen=True)
class TeamDecisionTime:
    """How long a team took from a submission to its decision (accept, accept with conditions or return)."""

    team: OperationsTeam
    decisions: int
    average_days: float
    longest_days: float


_DECIDED = (HandoverStatus.ACCEPTED, HandoverStatus.ACCEPTED_WITH_CONDITIONS, HandoverStatus.RETURNED)


def decision_times_by_team(user) -> list[TeamDecisionTime]:
    """Days from each submission to the decision on it, per receiving team, over the handovers ``user`` can see.

    Read from the status history (two queries), so that a resubmission after a return counts as its own round.
    """
    rows = (
        Activity.objects.filter(
            verb=ActivityVerb.STATUS_CHANGED,
            to_state__in=(HandoverStatus.SUBMITTED, *_DECIDED),
            handover__in=handovers_visible_to(user).values("pk"),
        )
        .order_by("handover_id", "created_at", "id")
        .values_list("handover_id", "handover__receiving_team_id", "to_state", "created_at")
    )
    days: dict[int, list[float]] = defaultdict(list)
    submitted: dict[int, datetime] = {}
    for handover_id, team_id, to_state, at in rows:
        if to_state == HandoverStatus.SUBMITTED:
            submitted[handover_id] = at
        elif handover_id in submitted:
            days[team_id].append((at - submitted.pop(handover_id)).total_seconds() / 86400)
    teams = OperationsTeam.objects.in_bulk(list(days))
    return sorted(
        (
            TeamDecisionTime(
                team=teams[team_id],
                decisions=len(values),
                average_days=sum(values) / len(values),
                longest_days=max(values),
            )
            for team_id, values in days.items()
        ),
        key=lambda t: t.team.name,
    )
