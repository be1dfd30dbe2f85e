"""The web pages of handovers: home, the portfolio board, a handover and its checklist, stall flags, notifications.

Every page reads through the selectors and every button calls a service; nothing here decides a rule. What a page
offers comes from ``handover.selectors`` (``item_actions``, ``handover_actions``, ``stall_flag_actions``...), and
the service still refuses what is not allowed: ``NotPermitted`` becomes the 403 page, any other refusal is shown
next to its field. The project and team pages live in their own apps; their handover sections are contributed
from here (``register_section``), since those apps never import handover.

List pages load rows with ``select_related`` / ``prefetch_related`` and compute readiness from the prefetched
items, so that their query count does not grow with the rows they show (``tests/ui/test_views.py``).
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F, Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from config.charts import Bar, Column, column_chart, horizontal_bars, meter
from config.web import ServiceForm, indexed_error_field, register_section
from operations.models import OperationsTeam, Service
from projects.choices import FINAL_STAGES, STAGE_ORDER, Stage
from projects.models import Project
from projects.selectors import project_is_overdue
from projects.services import can_manage

from . import outbox, stalls
from . import services as hs
from .choices import Channel, ConditionStatus, HandoverStatus, ItemStatus, Risk
from .forms import (
    AcceptForm,
    AcceptWithConditionsForm,
    AcknowledgeForm,
    ApproveWaiverForm,
    CancelForm,
    CommentForm,
    CompleteForm,
    CompleteHandoverForm,
    ConditionFormSet,
    ConditionMetForm,
    EvidenceForm,
    HypercareForm,
    NotApplicableForm,
    PlanHandoverForm,
    ReopenForm,
    ReturnForm,
    SendBackForm,
    SnoozeForm,
    SubmitForm,
    VerifyForm,
    WaiveForm,
)
from .models import (
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Evidence,
    Handover,
    Notification,
    StallFlag,
)
from .selectors import (
    Readiness,
    can_mark_condition_met,
    decision_times_by_team,
    handover_actions,
    handover_is_overdue,
    handover_roles,
    handovers_visible_to,
    is_operations_owner,
    item_actions,
    items_awaiting_verification_by,
    items_sent_back_to,
    operations_handovers,
    readiness_from_items,
    stall_flag_actions,
)

User = get_user_model()

# --------------------------------------------------------------------------------------------------- loading


def _readiness_items() -> Prefetch:
    """Just what readiness needs of each item."""
    return Prefetch(
        "items",
        queryset=ChecklistItem.objects.only(
            "id", "handover_id", "risk", "mandatory", "status", "waiver_approved_by_id"
        ),
    )


def _open_flags() -> Prefetch:
    return Prefetch("stall_flags", queryset=StallFlag.objects.filter(resolved_at__isnull=True), to_attr="open_flags")


def _live_handovers() -> Prefetch:
    """A project's handover that is not cancelled (at most one), with readiness items and open flags."""
    return Prefetch(
        "handovers",
        queryset=Handover.objects.exclude(status=HandoverStatus.CANCELLED)
        .select_related("operations_owner", "receiving_team")
        .prefetch_related(_readiness_items(), _open_flags()),
        to_attr="live_handovers",
    )


def _summarise(handover: Handover, today) -> Handover:
    """Attach what list pages show of a handover loaded with ``_readiness_items`` and ``_open_flags``."""
    handover.readiness = readiness_from_items(handover.items.all())
    handover.overdue = handover_is_overdue(handover, today)
    handover.overall_meter = _meter(handover.readiness.overall.verified_ratio, handover.readiness.overall.done_ratio)
    handover.overall_verified = _percent(handover.readiness.overall.verified_ratio)
    return handover


def _summarise_project(project: Project, today) -> Project:
    project.handover = project.live_handovers[0] if project.live_handovers else None
    if project.handover is not None:
        _summarise(project.handover, today)
    project.overdue = project_is_overdue(project, today) or bool(project.handover and project.handover.overdue)
    project.stalled = bool(project.handover and project.handover.open_flags)
    return project


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _meter(verified: float | None, done: float | None, what: str = "Readiness"):
    return meter(verified, done, label=f"{what}: {_percent(verified)} verified, {_percent(done)} done")


def _risk_meters(readiness: Readiness) -> list[dict]:
    return [
        {
            "risk": risk,
            "verified": _percent(readiness.by_risk[risk.value].verified_ratio),
            "done": _percent(readiness.by_risk[risk.value].done_ratio),
            "meter": _meter(
                readiness.by_risk[risk.value].verified_ratio, readiness.by_risk[risk.value].done_ratio, risk.label
            ),
        }
        for risk in Risk
    ]


def readiness_chart(readiness: Readiness, *, title: str = "Readiness per risk"):
    """Verified share (dark) over done share (light) per risk and overall, with the counts as text."""
    bars = []
    for label, r in [(risk.label, readiness.by_risk[risk.value]) for risk in Risk] + [("Overall", readiness.overall)]:
        text = f"{_percent(r.verified_ratio)} verified" if r.applicable else "no mandatory items"
        if r.applicable and r.done_ratio != r.verified_ratio:
            text += f", {_percent(r.done_ratio)} done"
        bars.append(Bar(label=label, value=r.verified_ratio, back=r.done_ratio, text=text))
    chart = horizontal_bars(
        bars,
        title=title,
        desc=(
            "Share of mandatory items verified (dark) and done (light) per risk. "
            + "; ".join(f"{bar.label}: {bar.text}" for bar in bars)
        ),
        percent=True,
        headers=("risk", "readiness"),
    )
    rows = [
        (
            label,
            f"{r.verified} of {r.applicable} verified, {r.done} done"
            + (f", {r.not_applicable} not applicable" if r.not_applicable else "")
            + (f", {r.waived_pending} waiver(s) awaiting approval" if r.waived_pending else ""),
        )
        for label, r in [(risk.label, readiness.by_risk[risk.value]) for risk in Risk]
        + [("Overall", readiness.overall)]
    ]
    return type(chart)(svg=chart.svg, title=chart.title, headers=("risk", "mandatory items"), rows=rows)


def _visible_handover(request, pk: int) -> Handover:
    return get_object_or_404(
        handovers_visible_to(request.user).select_related(
            "project__manager", "receiving_team__lead", "service", "operations_owner", "template"
        ),
        pk=pk,
    )


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


# ------------------------------------------------------------------------------------------------------ home


@login_required
def home(request):
    """What waits on the signed-in user, by role: the manager's projects, the operations side's handovers."""
    user = request.user
    today = timezone.localdate()
    context: dict = {"nav": "home", "today": today}

    managed = [
        _summarise_project(project, today)
        for project in Project.objects.visible_to(user)
        .filter(manager=user)
        .exclude(stage__in=FINAL_STAGES)
        .select_related("receiving_team")
        .prefetch_related(_live_handovers())
        .order_by(F("planned_handover").asc(nulls_last=True), "code")
    ]
    for project in managed:
        project.risk_meters = _risk_meters(project.handover.readiness) if project.handover else []
    context["managed"] = managed
    context["returned"] = [p.handover for p in managed if p.handover and p.handover.status == HandoverStatus.RETURNED]
    context["sent_back"] = list(
        items_sent_back_to(user).select_related("handover__project").order_by("handover__target_date", "position")[:50]
    )
    manager_flags = list(
        StallFlag.objects.filter(
            resolved_at__isnull=True,
            handover__project__manager=user,
            handover__in=handovers_visible_to(user).values("pk"),
        ).select_related("handover__project", "handover__receiving_team", "acknowledged_by", "snoozed_by")
    )

    teams = list(OperationsTeam.objects.filter(Q(lead=user) | Q(members=user)).distinct().order_by("name"))
    incoming = [
        _summarise(handover, today)
        for handover in operations_handovers(user)
        .select_related("project", "receiving_team", "operations_owner")
        .prefetch_related(_readiness_items(), _open_flags())
        .order_by("target_date", "id")
    ]
    context["teams"] = teams
    context["incoming"] = incoming
    context["to_decide"] = [
        h for h in incoming if h.status == HandoverStatus.SUBMITTED and is_operations_owner(h, user)
    ]
    context["to_verify"] = list(
        items_awaiting_verification_by(user).select_related("handover__project", "done_by").order_by("done_at")[:50]
    )
    incoming_ids = [h.pk for h in incoming]
    operations_flags = list(
        StallFlag.objects.filter(resolved_at__isnull=True, handover_id__in=incoming_ids)
        .exclude(pk__in=[f.pk for f in manager_flags])
        .select_related("handover__project", "handover__receiving_team", "acknowledged_by", "snoozed_by")
    )
    context["manager_flags"] = [_flag_card(request, flag) for flag in manager_flags]
    context["operations_flags"] = [_flag_card(request, flag) for flag in operations_flags]
    context["notifications"] = list(
        Notification.objects.filter(recipient=user, channel=Channel.IN_APP, read_at__isnull=True)
        .select_related("flag")
        .order_by("-created_at", "-id")[:5]
    )
    context["is_manager"] = bool(managed) or Project.objects.filter(manager=user).exists()
    context["is_operations"] = bool(teams) or bool(incoming)
    if not (context["is_manager"] or context["is_operations"]):
        context["stage_chart"] = _stage_chart(list(Project.objects.visible_to(user).values_list("stage", flat=True)))
    return render(request, "handover/home.html", context)


def _stage_chart(stages: list[str], href: Callable[[Stage], str] | None = None):
    counts = dict.fromkeys([*STAGE_ORDER, Stage.CANCELLED], 0)
    for stage in stages:
        counts[Stage(stage)] += 1
    return column_chart(
        [Column(label=stage.label, value=count, href=href(stage) if href else "") for stage, count in counts.items()],
        title="Projects by stage",
        desc="Number of projects in each lifecycle stage: "
        + "; ".join(f"{stage.label} {count}" for stage, count in counts.items()),
        headers=("stage", "projects"),
    )


# ------------------------------------------------------------------------------------------- portfolio board


@login_required
def board(request):
    """Projects in columns by stage, filterable by receiving team and manager; overdue and stalled ones stand out."""
    user = request.user
    today = timezone.localdate()
    visible = Project.objects.visible_to(user)
    teams = list(OperationsTeam.objects.order_by("name"))
    managers = list(
        User.objects.filter(pk__in=visible.exclude(manager=None).values("manager_id")).order_by(
            "first_name", "last_name", "username"
        )
    )
    team_id = _int_param(request.GET.get("team"), {t.pk for t in teams})
    manager_id = _int_param(request.GET.get("manager"), {m.pk for m in managers})
    projects = visible.select_related("manager", "receiving_team").prefetch_related(_live_handovers())
    if team_id:
        projects = projects.filter(receiving_team_id=team_id)
    if manager_id:
        projects = projects.filter(manager_id=manager_id)
    projects = [
        _summarise_project(p, today) for p in projects.order_by(F("planned_handover").asc(nulls_last=True), "code")
    ]
    by_stage: dict[str, list[Project]] = defaultdict(list)
    for project in projects:
        by_stage[project.stage].append(project)
    columns = [{"stage": stage, "projects": by_stage[stage.value]} for stage in [*STAGE_ORDER, Stage.CANCELLED]]
    context = {
        "nav": "board",
        "columns": columns,
        "teams": teams,
        "managers": managers,
        "team_id": team_id,
        "manager_id": manager_id,
        "filtered": bool(team_id or manager_id),
        "total": len(projects),
        "overdue_count": sum(p.overdue for p in projects),
        "stalled_count": sum(p.stalled for p in projects),
        "stage_chart": _stage_chart([p.stage for p in projects], href=lambda stage: f"#stage-{stage.value}"),
    }
    return render(request, "handover/board.html", context)


def _int_param(value: str | None, allowed: set[int]) -> int | None:
    """A filter's id, if it is one of the offered choices (anything else is ignored)."""
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number in allowed else None


# ----------------------------------------------------------------------------------------- the handover page

# An activity row's states are handover, item or condition states; shown by their labels.
STATE_LABELS = {**dict(ConditionStatus.choices), **dict(ItemStatus.choices), **dict(HandoverStatus.choices)}

ITEM_FORMS: dict[str, type[ServiceForm]] = {
    "complete": CompleteForm,
    "verify": VerifyForm,
    "send_back": SendBackForm,
    "waive": WaiveForm,
    "approve_waiver": ApproveWaiverForm,
    "not_applicable": NotApplicableForm,
    "reopen": ReopenForm,
    "evidence": EvidenceForm,
    "comment": CommentForm,
}


@dataclass
class ItemRow:
    """One checklist item as the page shows it: what the user may do with it, and the forms to do it."""

    item: ChecklistItem
    actions: frozenset[str]
    forms: dict[str, ServiceForm]
    comments: list[Comment]
    open_action: str = ""
    flash: str = ""


def _item_prefix(item_pk: int, action: str) -> str:
    return f"i{item_pk}-{action.replace('_', '-')}"


@dataclass
class Bound:
    """Forms posted back with errors, to show in place of the empty ones."""

    items: dict[tuple[int, str], ServiceForm] = field(default_factory=dict)
    handover: dict[str, object] = field(default_factory=dict)
    flags: dict[tuple[int, str], ServiceForm] = field(default_factory=dict)
    conditions: dict[int, ServiceForm] = field(default_factory=dict)
    flash: dict[int, str] = field(default_factory=dict)


def _participants(handover: Handover) -> list:
    """People who may own a condition: the project's manager and members, the receiving team's lead and members."""
    project, team = handover.project, handover.receiving_team
    return list(
        User.objects.filter(is_active=True)
        .filter(Q(pk=project.manager_id) | Q(projects=project) | Q(operations_teams=team) | Q(pk=team.lead_id or 0))
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def _condition_formset(handover: Handover, data=None):
    owners = _participants(handover)
    return ConditionFormSet(data, prefix="conditions", form_kwargs={"owners": owners})


def _flag_card(request, flag: StallFlag, bound: Bound | None = None) -> dict:
    """A stall flag with the acknowledge and snooze forms its viewer may use."""
    bound = bound or Bound()
    actions = stall_flag_actions(flag, request.user)
    forms: dict[str, ServiceForm] = {}
    if "acknowledge" in actions:
        forms["acknowledge"] = bound.flags.get((flag.pk, "acknowledge")) or AcknowledgeForm(prefix=f"f{flag.pk}-ack")
    if "snooze" in actions:
        default_until = timezone.localtime() + timedelta(days=3)
        forms["snooze"] = bound.flags.get((flag.pk, "snooze")) or SnoozeForm(
            prefix=f"f{flag.pk}-snooze",
            initial={"until": default_until.replace(minute=0, second=0, microsecond=0)},
        )
    return {"flag": flag, "actions": actions, "forms": forms}


def _handover_context(request, handover: Handover, bound: Bound | None = None) -> dict:
    """Everything the handover page shows, in a fixed number of queries whatever the checklist's length."""
    bound = bound or Bound()
    user = request.user
    today = timezone.localdate()
    roles = handover_roles(handover, user)
    items = list(
        handover.items.select_related(
            "assignee", "done_by", "verified_by", "waiver_requested_by", "waiver_approved_by"
        ).prefetch_related(Prefetch("evidence", queryset=Evidence.objects.select_related("added_by")))
    )
    comments_by_item: dict[int | None, list[Comment]] = defaultdict(list)
    for comment in handover.comments.select_related("author"):
        comments_by_item[comment.item_id].append(comment)

    rows = []
    for item in items:
        actions = item_actions(item, handover, roles)
        item_forms = {
            action: bound.items.get((item.pk, action))
            or ITEM_FORMS[action](prefix=_item_prefix(item.pk, action), initial={"version": item.version})
            for action in sorted(actions)
        }
        open_action = next((action for (pk, action) in bound.items if pk == item.pk), "")
        rows.append(
            ItemRow(
                item=item,
                actions=actions,
                forms=item_forms,
                comments=comments_by_item[item.pk],
                open_action=open_action,
                flash=bound.flash.get(item.pk, ""),
            )
        )
    readiness = readiness_from_items(items)
    groups = [
        {
            "risk": risk,
            "rows": [row for row in rows if row.item.risk == risk.value],
            "readiness": readiness.by_risk[risk.value],
            "verified": _percent(readiness.by_risk[risk.value].verified_ratio),
            "done": _percent(readiness.by_risk[risk.value].done_ratio),
        }
        for risk in Risk
    ]

    actions = handover_actions(handover, roles)
    forms: dict[str, object] = {}
    if "submit" in actions:
        forms["submit"] = bound.handover.get("submit") or SubmitForm(prefix="submit")
    if "accept" in actions:
        forms["accept"] = bound.handover.get("accept") or AcceptForm(prefix="accept")
    if "accept_with_conditions" in actions:
        forms["accept_with_conditions"] = bound.handover.get("accept_with_conditions") or AcceptWithConditionsForm(
            prefix="awc"
        )
        forms["conditions"] = bound.handover.get("conditions") or _condition_formset(handover)
    if "return" in actions:
        sendable = [item for item in items if item.status in (ItemStatus.DONE, ItemStatus.VERIFIED)]
        forms["return"] = bound.handover.get("return") or ReturnForm(prefix="return", items=sendable)
    if "start_hypercare" in actions:
        forms["start_hypercare"] = bound.handover.get("start_hypercare") or HypercareForm(prefix="hypercare")
    if "complete" in actions:
        forms["complete"] = bound.handover.get("complete") or CompleteHandoverForm(prefix="complete")
    if "cancel" in actions:
        forms["cancel"] = bound.handover.get("cancel") or CancelForm(prefix="cancel")
    if "comment" in actions:
        forms["comment"] = bound.handover.get("comment") or CommentForm(prefix="comment")

    open_mandatory = readiness.overall.applicable - readiness.overall.done
    unverified_mandatory = readiness.overall.applicable - readiness.overall.verified
    decisions = list(
        handover.decisions.select_related("decided_by").prefetch_related(
            Prefetch("conditions", queryset=Condition.objects.select_related("owner"))
        )
    )
    for decision in decisions:
        decision.snapshot_view = _snapshot_view(decision.snapshot)
    conditions = list(handover.conditions.select_related("owner", "met_by"))
    for condition in conditions:
        condition.may_mark_met = can_mark_condition_met(condition, handover, user)
        if condition.may_mark_met:
            condition.form = bound.conditions.get(condition.pk) or ConditionMetForm(prefix=f"c{condition.pk}")
    titles = {item.pk: item.title for item in items}
    activity = list(handover.activity.select_related("actor").order_by("-created_at", "-id")[:100])
    for entry in activity:
        entry.item_title = titles.get(entry.item_id or 0, "")
        entry.from_label = STATE_LABELS.get(entry.from_state, entry.from_state)
        entry.to_label = STATE_LABELS.get(entry.to_state, entry.to_state)
    flags = list(handover.stall_flags.select_related("acknowledged_by", "snoozed_by").order_by("-opened_at", "-id"))
    for flag in flags:
        flag.handover = handover
    return {
        "nav": "handover",
        "handover": handover,
        "project": handover.project,
        "roles": roles,
        "overdue": handover_is_overdue(handover, today),
        "groups": groups,
        "rows_by_id": {row.item.pk: row for row in rows},
        "readiness": readiness,
        "readiness_chart": readiness_chart(readiness),
        "open_mandatory": open_mandatory,
        "unverified_mandatory": unverified_mandatory,
        "actions": actions,
        "forms": forms,
        "decisions": decisions,
        "conditions": conditions,
        "activity": activity,
        "handover_comments": comments_by_item[None],
        "open_flags": [_flag_card(request, f, bound) for f in flags if f.resolved_at is None],
        "resolved_flags": [f for f in flags if f.resolved_at is not None],
    }


def _snapshot_view(snapshot: dict) -> dict:
    """A decision's frozen checklist, shaped for its table: readiness per risk and each item's state then."""
    readiness = snapshot.get("readiness", {})
    risks = []
    for risk in [*Risk, None]:
        r = readiness.get(risk.value if risk else "overall", {})
        risks.append(
            {
                "label": risk.label if risk else "Overall",
                "verified": _percent(r.get("verified_ratio")),
                "done": _percent(r.get("done_ratio")),
                "not_applicable": r.get("not_applicable", 0),
            }
        )
    labels = {risk.value: risk.label for risk in Risk}
    statuses = dict(ItemStatus.choices)
    items = [
        {
            "title": item.get("title", ""),
            "risk": labels.get(item.get("risk"), item.get("risk")),
            "status": statuses.get(item.get("status"), item.get("status")),
            "status_value": item.get("status"),
            "mandatory": item.get("mandatory"),
            "evidence": len(item.get("evidence", [])),
        }
        for item in snapshot.get("items", [])
    ]
    return {
        "status": snapshot.get("status"),
        "target_date": snapshot.get("target_date"),
        "risks": risks,
        "items": items,
    }


def _handover_page(request, handover: Handover, bound: Bound | None = None, *, status: int = 200):
    return render(request, "handover/handover_detail.html", _handover_context(request, handover, bound), status=status)


@login_required
def handover_detail(request, pk: int):
    return _handover_page(request, _visible_handover(request, pk))


# ----------------------------------------------------------------------------------- moves on the handover


@dataclass(frozen=True)
class HandoverMove:
    """A handover-level form: how to build it and which service it calls."""

    form: Callable[..., ServiceForm]
    call: Callable[[Handover, object, dict], object]
    done: str


def _return_form(handover: Handover, data):
    sendable = handover.items.filter(status__in=(ItemStatus.DONE, ItemStatus.VERIFIED)).only("id", "title")
    return ReturnForm(data, prefix="return", items=list(sendable))


HANDOVER_MOVES: dict[str, HandoverMove] = {
    "submit": HandoverMove(
        lambda h, data: SubmitForm(data, prefix="submit"),
        lambda h, by, d: hs.handover_submit(handover=h, by=by),
        "Submitted to operations.",
    ),
    "accept": HandoverMove(
        lambda h, data: AcceptForm(data, prefix="accept"),
        lambda h, by, d: hs.handover_accept(handover=h, by=by, note=d["note"]),
        "Handover accepted.",
    ),
    "return": HandoverMove(
        _return_form,
        lambda h, by, d: hs.handover_return(handover=h, by=by, reason=d["reason"], items=d["items"]),
        "Handover returned to the project.",
    ),
    "start_hypercare": HandoverMove(
        lambda h, data: HypercareForm(data, prefix="hypercare"),
        lambda h, by, d: hs.handover_start_hypercare(
            handover=h, by=by, ends_on=d["ends_on"], exit_criteria=d["exit_criteria"]
        ),
        "Hypercare started.",
    ),
    "complete": HandoverMove(
        lambda h, data: CompleteHandoverForm(data, prefix="complete"),
        lambda h, by, d: hs.handover_complete(handover=h, by=by, note=d["note"]),
        "Handover completed.",
    ),
    "cancel": HandoverMove(
        lambda h, data: CancelForm(data, prefix="cancel"),
        lambda h, by, d: hs.handover_cancel(handover=h, by=by, reason=d["reason"]),
        "Handover cancelled.",
    ),
    "comment": HandoverMove(
        lambda h, data: CommentForm(data, prefix="comment"),
        lambda h, by, d: hs.comment_add(handover=h, by=by, body=d["body"]),
        "Comment added.",
    ),
}


@login_required
@require_POST
def handover_move(request, pk: int, action: str):
    """Submit, accept, return, start hypercare, complete, cancel or comment: one service call each."""
    name = action.replace("-", "_")
    move = HANDOVER_MOVES.get(name)
    if move is None:
        raise Http404("No such action.")
    handover = _visible_handover(request, pk)
    form = move.form(handover, request.POST)
    if form.is_valid() and form.run(move.call, handover, request.user, form.cleaned_data):
        messages.success(request, move.done)
        anchor = "#comments" if name == "comment" else ""
        return redirect(reverse("handover:detail", args=[handover.pk]) + anchor)
    return _handover_page(request, handover, Bound(handover={name: form}))


@login_required
@require_POST
def accept_with_conditions(request, pk: int):
    """Accept with conditions: a note and a small formset of conditions (text, owner, due date)."""
    handover = _visible_handover(request, pk)
    form = AcceptWithConditionsForm(request.POST, prefix="awc")
    formset = _condition_formset(handover, request.POST)
    if form.is_valid() and formset.is_valid():
        given = [f for f in formset.forms if not f.is_blank]
        conditions = [
            hs.ConditionInput(
                text=f.cleaned_data["text"],
                owner=f.owners.get(f.cleaned_data["owner"]),
                due_date=f.cleaned_data["due_date"],
            )
            for f in given
        ]
        accepted = form.run(
            hs.handover_accept_with_conditions,
            handover=handover,
            by=request.user,
            conditions=conditions,
            note=form.cleaned_data["note"],
        )
        if accepted:
            messages.success(request, f"Handover accepted with {len(conditions)} condition(s).")
            return redirect("handover:detail", pk=handover.pk)
        _spread_condition_errors(form, given)
    return _handover_page(request, handover, Bound(handover={"accept_with_conditions": form, "conditions": formset}))


def _spread_condition_errors(form: AcceptWithConditionsForm, given: list) -> None:
    """A refusal naming ``conditions[2].due_date`` goes next to that field of the third filled-in row."""
    error = form.domain_error
    where = indexed_error_field(error.field) if error else None
    if error is None or where is None:
        return
    _list, index, name = where
    if index < len(given) and name in given[index].fields:
        given[index].add_error(name, error.message)
        form.errors.pop("__all__", None)
        form.add_error(None, f"Condition {index + 1}: {error.message}")


# -------------------------------------------------------------------------------------- moves on an item


ITEM_CALLS: dict[str, Callable[[ChecklistItem, object, dict], object]] = {
    "complete": lambda item, by, d: hs.item_complete(
        item=item, by=by, evidence_url=d["url"], evidence_text=d["text"], expected_version=d.get("version")
    ),
    "verify": lambda item, by, d: hs.item_verify(item=item, by=by, note=d["note"], expected_version=d.get("version")),
    "send_back": lambda item, by, d: hs.item_send_back(
        item=item, by=by, reason=d["reason"], expected_version=d.get("version")
    ),
    "waive": lambda item, by, d: hs.item_waive(
        item=item, by=by, justification=d["justification"], expected_version=d.get("version")
    ),
    "approve_waiver": lambda item, by, d: hs.item_approve_waiver(item=item, by=by, expected_version=d.get("version")),
    "not_applicable": lambda item, by, d: hs.item_mark_not_applicable(
        item=item, by=by, reason=d["reason"], expected_version=d.get("version")
    ),
    "reopen": lambda item, by, d: hs.item_reopen(
        item=item, by=by, reason=d["reason"], expected_version=d.get("version")
    ),
    "evidence": lambda item, by, d: hs.evidence_add(item=item, by=by, url=d["url"], text=d["text"]),
    "comment": lambda item, by, d: hs.comment_add(handover=item.handover, by=by, body=d["body"], item=item),
}

ITEM_DONE = {
    "complete": "Marked done.",
    "verify": "Verified.",
    "send_back": "Sent back to the project.",
    "waive": "Waived.",
    "approve_waiver": "Waiver approved.",
    "not_applicable": "Marked not applicable.",
    "reopen": "Reopened.",
    "evidence": "Evidence added.",
    "comment": "Comment added.",
}


@login_required
@require_POST
def item_action(request, pk: int, action: str):
    """One move on a checklist item. With htmx, answers the item's row and, out of band, the readiness, the
    status, the decision forms and the activity log; without, redirects back to the handover page."""
    name = action.replace("-", "_")
    if name not in ITEM_CALLS:
        raise Http404("No such action.")
    item = get_object_or_404(
        ChecklistItem.objects.filter(handover__in=handovers_visible_to(request.user).values("pk")).select_related(
            "handover__project", "handover__receiving_team"
        ),
        pk=pk,
    )
    form = ITEM_FORMS[name](request.POST, prefix=_item_prefix(item.pk, name))
    done = form.is_valid() and form.run(ITEM_CALLS[name], item, request.user, form.cleaned_data)
    bound = Bound(flash={item.pk: ITEM_DONE[name]}) if done else Bound(items={(item.pk, name): form})
    if request.htmx:
        handover = _visible_handover(request, item.handover_id)
        context = _handover_context(request, handover, bound)
        context["row"] = context["rows_by_id"][item.pk]
        return render(request, "handover/_item_response.html", context)
    if done:
        messages.success(request, f"{item.title}: {ITEM_DONE[name]}")
        return redirect(reverse("handover:detail", args=[item.handover_id]) + f"#item-{item.pk}")
    return _handover_page(request, _visible_handover(request, item.handover_id), bound)


@login_required
@require_POST
def condition_met(request, pk: int):
    condition = get_object_or_404(
        Condition.objects.filter(handover__in=handovers_visible_to(request.user).values("pk")), pk=pk
    )
    form = ConditionMetForm(request.POST, prefix=f"c{condition.pk}")
    if form.is_valid() and form.run(
        hs.condition_mark_met, condition=condition, by=request.user, note=form.cleaned_data["note"]
    ):
        messages.success(request, "Condition marked met.")
        return redirect(reverse("handover:detail", args=[condition.handover_id]) + "#conditions")
    handover = _visible_handover(request, condition.handover_id)
    return _handover_page(request, handover, Bound(conditions={condition.pk: form}))


# ------------------------------------------------------------------------------------------- stall flags

STALL_FORMS = {"acknowledge": (AcknowledgeForm, "ack"), "snooze": (SnoozeForm, "snooze")}


@login_required
@require_POST
def stall_action(request, pk: int, action: str):
    """Acknowledge (with a note) or snooze (until a moment, with a reason) a stall flag."""
    if action not in STALL_FORMS:
        raise Http404("No such action.")
    flag = get_object_or_404(
        StallFlag.objects.filter(handover__in=handovers_visible_to(request.user).values("pk")).select_related(
            "handover__project", "handover__receiving_team", "acknowledged_by", "snoozed_by"
        ),
        pk=pk,
    )
    form_class, suffix = STALL_FORMS[action]
    form = form_class(request.POST, prefix=f"f{flag.pk}-{suffix}")
    done = False
    if form.is_valid():
        if action == "acknowledge":
            done = form.run(stalls.stall_acknowledge, flag=flag, by=request.user, note=form.cleaned_data["note"])
        else:
            done = form.run(
                stalls.stall_snooze,
                flag=flag,
                by=request.user,
                until=form.cleaned_data["until"],
                reason=form.cleaned_data["reason"],
            )
    if done:
        flag.refresh_from_db()
    bound = Bound() if done else Bound(flags={(flag.pk, action): form})
    card = _flag_card(request, flag, bound)
    card["flash"] = ("Acknowledged." if action == "acknowledge" else "Snoozed.") if done else ""
    if request.htmx:
        return render(request, "handover/_stall_flag.html", {"card": card, "next": _safe_next(request, "")})
    if done:
        messages.success(request, f"Stall flag {card['flash'].lower().rstrip('.')}.")
        return redirect(_safe_next(request, reverse("handover:detail", args=[flag.handover_id]) + "#stalls"))
    return render(request, "handover/stall_flag.html", {"card": card, "next": _safe_next(request, "")})


# ---------------------------------------------------------------------------------------- notifications


@login_required
def notifications(request):
    """The in-app inbox: stall flags on handovers you own, manage or lead; newest first."""
    inbox = (
        Notification.objects.filter(recipient=request.user, channel=Channel.IN_APP)
        .select_related("flag")
        .order_by("-created_at", "-id")
    )
    page = Paginator(inbox, 50).get_page(request.GET.get("page"))
    return render(request, "handover/notifications.html", {"nav": "notifications", "page": page})


@login_required
@require_POST
def notifications_read(request):
    """Mark one notification (``id``) or all unread ones (``all``) read."""
    if request.POST.get("all"):
        marked = outbox.notifications_mark_read(user=request.user)
    else:
        ids = [int(value) for value in request.POST.getlist("id") if value.isdigit()]
        marked = outbox.notifications_mark_read(user=request.user, ids=ids) if ids else 0
    messages.success(request, f"{marked} notification{'s' if marked != 1 else ''} marked read.")
    return redirect(_safe_next(request, reverse("handover:notifications")))


# ------------------------------------------------------------------------------------------ planning


def _plan_form(project: Project, data=None) -> PlanHandoverForm:
    team = project.receiving_team
    owners = (
        User.objects.filter(Q(operations_teams=team) | Q(led_teams=team)).distinct().order_by("first_name", "username")
        if team
        else User.objects.none()
    )
    return PlanHandoverForm(
        data,
        templates=ChecklistTemplate.objects.filter(is_active=True).order_by("name"),
        owners=owners,
        services=Service.objects.filter(team=team, is_active=True) if team else Service.objects.none(),
        initial={"target_date": project.planned_handover},
    )


@login_required
def plan_handover(request, pk: int):
    """The project manager plans the handover: a template, an operations owner and a target date."""
    project = get_object_or_404(Project.objects.visible_to(request.user).select_related("receiving_team"), pk=pk)
    if not can_manage(project, request.user):
        raise PermissionDenied("Only the project manager or an administrator may prepare a handover.")
    form = _plan_form(project, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if form.run(
            hs.handover_create,
            project=project,
            by=request.user,
            template=data["template"],
            operations_owner=data["operations_owner"],
            target_date=data["target_date"],
            service=data["service"],
            deliverables=data["deliverables"],
        ):
            messages.success(request, "Handover planned: the checklist is ready.")
            return redirect("handover:detail", pk=form.result.pk)
    return render(request, "handover/plan_handover.html", {"project": project, "form": form, "nav": "board"})


# ------------------------------------------------------------------------------ sections of other pages


@register_section("project", "handover/sections/project_handover.html")
def project_handover_section(request, project: Project) -> dict:
    """The project page's handover: the live one with its readiness, earlier cancelled ones, or a plan link."""
    today = timezone.localdate()
    handovers = list(
        project.handovers.select_related("operations_owner", "receiving_team", "service")
        .prefetch_related(_readiness_items(), _open_flags())
        .order_by("-created_at", "-id")
    )
    live = next((h for h in handovers if h.status != HandoverStatus.CANCELLED), None)
    if live is not None:
        _summarise(live, today)
    return {
        "live": live,
        "live_chart": readiness_chart(live.readiness, title=f"Readiness of the {project.code} handover")
        if live
        else None,
        "cancelled": [h for h in handovers if h.status == HandoverStatus.CANCELLED],
        "may_plan": live is None and not project.is_final and can_manage(project, request.user),
        # handover_create needs the project's receiving team; until it is chosen the page says so instead.
        "needs_team": project.receiving_team_id is None,
    }


@register_section("team", "handover/sections/team_handovers.html")
def team_handovers_section(request, team: OperationsTeam) -> dict:
    """A team's load: handovers coming to it per week of their target date, and the live ones by target date."""
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    first, weeks = monday - timedelta(weeks=4), 16
    handovers = [
        _summarise(h, today)
        for h in handovers_visible_to(request.user)
        .filter(receiving_team=team)
        .exclude(status=HandoverStatus.CANCELLED)
        .select_related("project", "operations_owner")
        .prefetch_related(_readiness_items(), _open_flags())
        .order_by("target_date", "id")
    ]
    counts = [0] * weeks
    for handover in handovers:
        index = (handover.target_date - first).days // 7
        if 0 <= index < weeks:
            counts[index] += 1
    columns = [
        Column(
            label=f"{first + timedelta(weeks=i):%d %b}",
            value=count,
            highlight=first + timedelta(weeks=i) == monday,
            tooltip=f"Week of {first + timedelta(weeks=i):%d %b %Y}: {count} handover(s)",
        )
        for i, count in enumerate(counts)
    ]
    chart = column_chart(
        columns,
        title=f"Handovers to {team.name} per week of their target date",
        desc="From four weeks ago to eleven weeks ahead; the current week is highlighted. "
        + "; ".join(f"week of {c.label}: {_count(c.value)}" for c in columns),
        headers=("week of", "handovers"),
        width=640,
    )
    live = [h for h in handovers if h.status != HandoverStatus.COMPLETED]
    return {"load_chart": chart, "live": live, "completed": len(handovers) - len(live)}


def _count(value: float) -> str:
    return str(int(value))


@register_section("teams", "handover/sections/decision_times.html")
def decision_times_section(request, teams) -> dict:
    """Days from submission to decision, per receiving team."""
    times = decision_times_by_team(request.user)
    chart = horizontal_bars(
        [
            Bar(
                label=t.team.name,
                value=t.average_days,
                text=f"{t.average_days:.1f} days ({t.decisions} decision{'s' if t.decisions != 1 else ''})",
                href=reverse("operations:team", args=[t.team.pk]),
            )
            for t in times
        ],
        title="Days from submission to decision, per team",
        headers=("team", "average days"),
    )
    rows = [
        (t.team.name, f"{t.average_days:.1f} days on average, longest {t.longest_days:.1f}, {t.decisions} decision(s)")
        for t in times
    ]
    return {
        "chart": type(chart)(svg=chart.svg, title=chart.title, headers=("team", "submission to decision"), rows=rows)
    }
