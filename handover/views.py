"""The web pages of handovers: home, the portfolio board, a handover and its checklist, stall flags, notifications.

Every page reads through the selectors and every button calls a service; nothing here decides a rule. What a page
offers comes from ``handover.selectors`` (``item_actions``, ``handover_actions``, ``stall_flag_actions``...); a
move its gate blocks is shown disabled with the gate's words (``handover_gates``). A POST first checks the role the
move asks for (``may_attempt_*``: 403 before the form is even read), then the service decides: ``NotPermitted``
becomes the 403 page, any other refusal is shown next to its field with a 400 (input) or 409 (state) status.

The project and team pages live in their own apps; their handover sections are contributed from here
(``register_section``), since those apps never import handover.

List pages load rows with ``select_related`` / ``prefetch_related`` and compute readiness from the prefetched
items, so that their query count does not grow with the rows they show (``tests/ui/test_views.py``).
"""

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.forms import BaseFormSet
from django.http import Http404, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_POST

from config.charts import Bar, Column, column_chart, horizontal_bars, meter
from config.errors import InvalidInput
from config.web import INVALID, ServiceForm, error_status, indexed_error_field, paginate, register_section
from operations.models import OperationsTeam, Service
from projects.choices import FINAL_STAGES, STAGE_ORDER, Stage
from projects.models import Project
from projects.selectors import managers_of, overdue_q, project_is_overdue
from projects.services import can_manage

from . import saved_views as sv
from . import services as hs
from .choices import ACCEPTED_STATUSES, OPEN_STATUSES, ConditionStatus, HandoverStatus, ItemStatus, Risk
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
    HandoverListForm,
    HypercareForm,
    NotApplicableForm,
    PlanHandoverForm,
    ReopenForm,
    ReturnForm,
    SavedViewForm,
    SendBackForm,
    SnoozeForm,
    SubmitForm,
    VerifyForm,
    WaiveForm,
)
from .models import (
    Activity,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    Evidence,
    Handover,
    StallFlag,
)
from .notifications.services import notifications_mark_read
from .readiness import stored_readiness
from .search import search as run_search
from .selectors import (
    Readiness,
    can_mark_condition_met,
    decision_times_by_team,
    handover_actions,
    handover_gates,
    handover_is_overdue,
    handover_overdue_q,
    handover_roles,
    handovers_visible_to,
    inbox,
    is_operations_owner,
    item_actions,
    items_awaiting_verification_by,
    items_sent_back_to,
    may_act_on_flag,
    may_attempt_handover_move,
    may_attempt_item_move,
    open_flag_count,
    operations_handovers,
    stall_flag_actions,
    teams_of,
)
from .stalls import services as stalls

User = get_user_model()

# --------------------------------------------------------------------------------------------------- loading


def _team_members(path: str) -> Prefetch:
    """The members of the teams on ``path``, read once: each flag's acknowledge/snooze offer asks whether the user
    is on the receiving team (``is_team_member`` answers from this prefetch instead of a query per flag)."""
    return Prefetch(path, queryset=User.objects.only("pk"))


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _meter(verified: float | None, done: float | None, what: str = "Readiness") -> SafeString:
    return meter(verified, done, label=f"{what}: {_percent(verified)} verified, {_percent(done)} done")


@dataclass(frozen=True)
class RiskMeter:
    """One risk's readiness as a table cell: a meter and its verified and done shares as text."""

    risk: Risk
    verified: str
    done: str
    meter: SafeString


def _risk_meters(readiness: Readiness) -> list[RiskMeter]:
    return [
        RiskMeter(
            risk=risk,
            verified=_percent(readiness.by_risk[risk.value].verified_ratio),
            done=_percent(readiness.by_risk[risk.value].done_ratio),
            meter=_meter(
                readiness.by_risk[risk.value].verified_ratio, readiness.by_risk[risk.value].done_ratio, risk.label
            ),
        )
        for risk in Risk
    ]


# Typed with its ``to_attr``, so that the django-stubs plugin knows ``open_flags`` on the rows it is given to
# (a string: Prefetch is not subscriptable at run time).
def _open_flags() -> 'Prefetch[Literal["stall_flags"], QuerySet[StallFlag], Literal["open_flags"]]':
    return Prefetch("stall_flags", queryset=StallFlag.objects.filter(resolved_at__isnull=True), to_attr="open_flags")


@dataclass(frozen=True)
class HandoverCard:
    """A handover as list pages show it: its readiness, whether it is past its target, its open stall flags."""

    handover: Handover
    readiness: Readiness
    overdue: bool
    open_flags: list[StallFlag]
    overall_meter: SafeString
    overall_verified: str

    @property
    def risk_meters(self) -> list[RiskMeter]:
        return _risk_meters(self.readiness)


def _handover_card(handover: Handover, open_flags: list[StallFlag], today: date) -> HandoverCard:
    """The card of a handover (its open flags from ``_open_flags``); readiness as stored on it, no item read."""
    readiness = stored_readiness(handover)
    return HandoverCard(
        handover=handover,
        readiness=readiness,
        overdue=handover_is_overdue(handover, today),
        open_flags=open_flags,
        overall_meter=_meter(readiness.overall.verified_ratio, readiness.overall.done_ratio),
        overall_verified=_percent(readiness.overall.verified_ratio),
    )


def _handover_cards(handovers: QuerySet[Handover], today: date) -> list[HandoverCard]:
    """Cards of ``handovers``, with their open flags read in one more query (readiness is stored on each)."""
    return [
        _handover_card(handover, handover.open_flags, today) for handover in handovers.prefetch_related(_open_flags())
    ]


@dataclass(frozen=True)
class ProjectCard:
    """A project as the board and the home page show it, with the card of its live (not cancelled) handover."""

    project: Project
    live: HandoverCard | None
    overdue: bool

    @property
    def stalled(self) -> bool:
        return bool(self.live and self.live.open_flags)

    @property
    def risk_meters(self) -> list[RiskMeter]:
        return self.live.risk_meters if self.live else []


def _project_cards(projects: list[Project], today: date) -> list[ProjectCard]:
    """Cards of ``projects``; their live handovers are read in one query (and two for their items and flags)."""
    live = {
        card.handover.project_id: card
        for card in _handover_cards(
            Handover.objects.filter(project__in=projects)
            .exclude(status=HandoverStatus.CANCELLED)
            .select_related("operations_owner", "receiving_team"),
            today,
        )
    }
    cards = []
    for project in projects:
        card = live.get(project.pk)
        overdue = project_is_overdue(project, today) or bool(card and card.overdue)
        cards.append(ProjectCard(project=project, live=card, overdue=overdue))
    return cards


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
    return replace(chart, headers=("risk", "mandatory items"), rows=rows)


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


# How many rows each section of a home page shows, the most urgent first; its heading gives the section's total
# (a COUNT) and an "all n" link opens the full list, filtered to the same rows.
HOME_ROWS = 10
# The full lists the home and team pages link to (their filters are the API's HandoverFilter's names).
HANDOVER_LIST_PATH, PROJECT_LIST_PATH = "/handovers/", "/projects/"
LIVE_STATUSES = [s.value for s in HandoverStatus if s not in (HandoverStatus.COMPLETED, HandoverStatus.CANCELLED)]


def _list_url(path: str, **params) -> str:
    """``path`` with ``params`` as its query string (a list value repeats its name: ``status=a&status=b``)."""
    return f"{path}?{urlencode(params, doseq=True)}" if params else path


@dataclass(frozen=True)
class ListLink:
    """A link into a full list holding a section's rows: the only one ("all n"), or one of several (a team's)."""

    href: str
    label: str = ""


@dataclass(frozen=True)
class HomeSection:
    """The first rows of a home section (at most HOME_ROWS), its total, and links to the full lists."""

    rows: list
    total: int
    links: list[ListLink] = field(default_factory=list)

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def _urgent_first(handovers: QuerySet[Handover], today: date) -> QuerySet[Handover]:
    """Overdue first, then those with an open stall flag, then by target date; each row knows its open flags."""
    return (
        handovers.annotate(open_flag_count=open_flag_count())
        .alias(
            _late=Case(When(handover_overdue_q(today), then=Value(0)), default=Value(1)),
            _calm=Case(When(open_flag_count__gt=0, then=Value(0)), default=Value(1)),
        )
        .order_by("_late", "_calm", "target_date", "id")
    )


def _readiness_of(handovers: list[Handover]) -> dict[int, Readiness]:
    """Readiness of the (few) handovers shown, read from the counters stored on each handover: no item is read."""
    return {handover.pk: stored_readiness(handover) for handover in handovers}


@dataclass(frozen=True)
class HandoverRow:
    """A handover as a home or team section shows it: readiness from its stored counters, its open flags counted."""

    handover: Handover
    readiness: Readiness
    overdue: bool
    open_flags: int

    @property
    def overall_meter(self) -> SafeString:
        return _meter(self.readiness.overall.verified_ratio, self.readiness.overall.done_ratio)

    @property
    def overall_verified(self) -> str:
        return _percent(self.readiness.overall.verified_ratio)

    @property
    def risk_meters(self) -> list[RiskMeter]:
        return _risk_meters(self.readiness)


def _handover_rows(handovers: list[Handover], today: date) -> list[HandoverRow]:
    """Rows of handovers read with ``_urgent_first`` (or annotated with ``open_flag_count``)."""
    readiness = _readiness_of(handovers)
    return [
        HandoverRow(
            handover=handover,
            readiness=readiness[handover.pk],
            overdue=handover_is_overdue(handover, today),
            open_flags=getattr(handover, "open_flag_count", 0),
        )
        for handover in handovers
    ]


@dataclass(frozen=True)
class ProjectRow:
    """A project of the manager's home with its live (not cancelled) handover's row, if it has one."""

    project: Project
    live: HandoverRow | None
    overdue: bool

    @property
    def risk_meters(self) -> list[RiskMeter]:
        return self.live.risk_meters if self.live else []


def _managed_projects(user, today: date) -> HomeSection:
    """The manager's running projects: overdue first (the project's plan or its handover's target), then those
    with an open stall flag, then by target date (the live handover's, else the plan's)."""
    projects = Project.objects.visible_to(user).filter(manager=user).exclude(stage__in=FINAL_STAGES)
    live = Handover.objects.filter(project=OuterRef("pk")).exclude(status=HandoverStatus.CANCELLED)
    late = Q(planned_handover__lt=today, actual_handover__isnull=True) | Q(_live_target__lt=today, _live_accepted=False)
    shown = list(
        projects.select_related("receiving_team")
        .alias(
            _live_target=Subquery(live.values("target_date")[:1]),
            _live_accepted=Exists(live.filter(status__in=[*ACCEPTED_STATUSES])),
            _flagged=Exists(
                StallFlag.objects.filter(handover__in=live.values("pk"), resolved_at__isnull=True).order_by()
            ),
        )
        .alias(
            _late=Case(When(late, then=Value(0)), default=Value(1)),
            _calm=Case(When(_flagged=True, then=Value(0)), default=Value(1)),
            _target=Coalesce("_live_target", "planned_handover"),
        )
        .annotate(section_total=_counted())
        .order_by("_late", "_calm", F("_target").asc(nulls_last=True), "code")[:HOME_ROWS]
    )
    handovers = list(
        _urgent_first(
            Handover.objects.filter(project__in=shown)
            .exclude(status=HandoverStatus.CANCELLED)
            .select_related("operations_owner", "receiving_team"),
            today,
        )
    )
    live_rows = {row.handover.project_id: row for row in _handover_rows(handovers, today)}
    rows = []
    for project in shown:
        row = live_rows.get(project.pk)
        rows.append(
            ProjectRow(
                project=project, live=row, overdue=project_is_overdue(project, today) or bool(row and row.overdue)
            )
        )
    total = shown[0].section_total if shown else 0
    return HomeSection(rows=rows, total=total, links=[ListLink(_list_url(PROJECT_LIST_PATH, manager=user.pk))])


def _counted() -> Window:
    """The number of rows the query matches, on each row it returns: the total of a section and its first rows
    in one query (the window is computed before the LIMIT)."""
    return Window(Count("pk"))


def _section(queryset: QuerySet, links: list[ListLink]) -> HomeSection:
    """The first HOME_ROWS of ``queryset`` and how many it holds in all."""
    shown = list(queryset.annotate(section_total=_counted())[:HOME_ROWS])
    return HomeSection(rows=shown, total=shown[0].section_total if shown else 0, links=links)


def _team_links(coming: dict[int, int], teams: list[OperationsTeam], user, **params) -> list[ListLink]:
    """Links to the full lists of rows spread over the receiving teams of ``coming`` (live handovers per team):
    one per team of ``teams`` (its list holds them), one for the rest (the user's own as operations owner)."""
    links = [
        ListLink(_list_url(HANDOVER_LIST_PATH, team=team.pk, **params), team.name)
        for team in teams
        if coming.get(team.pk)
    ]
    if set(coming) - {team.pk for team in teams}:
        links.append(ListLink(_list_url(HANDOVER_LIST_PATH, operations_owner=user.pk, **params), "yours as owner"))
    return links


def _per_team(queryset: QuerySet, team_path: str = "receiving_team_id") -> dict[int, int]:
    """How many rows of ``queryset`` each receiving team has (one grouped query, a row per team)."""
    return {row["team"]: row["n"] for row in queryset.order_by().values(team=F(team_path)).annotate(n=Count("pk"))}


def _flag_rows(flags: QuerySet[StallFlag]) -> QuerySet[StallFlag]:
    """Escalated flags first, then those on the earliest target, the oldest first."""
    return (
        flags.select_related("handover__project", "handover__receiving_team", "acknowledged_by", "snoozed_by")
        .prefetch_related(_team_members("handover__receiving_team__members"))
        .order_by(F("escalated_at").asc(nulls_last=True), "handover__target_date", "opened_at", "id")
    )


@login_required
def home(request):
    """What waits on the signed-in user, by role, in bounded sections: the first HOME_ROWS rows of each, the most
    urgent first, with its total and a link to the full list. No section reads more rows than it shows, and no
    checklist item is read: readiness comes from the counters stored on each handover."""
    user = request.user
    today = timezone.localdate()
    context: dict = {"nav": "home", "today": today, "home_rows": HOME_ROWS}

    none = HomeSection(rows=[], total=0)
    context["is_manager"] = is_manager = Project.objects.filter(manager=user).exists()
    context.update(managed=none, returned=none, sent_back=none, manager_flags=none)
    if is_manager:
        mine = handovers_visible_to(user).filter(project__manager=user)
        returned = _list_url(HANDOVER_LIST_PATH, manager=user.pk, status=HandoverStatus.RETURNED)
        manager_flags = StallFlag.objects.filter(resolved_at__isnull=True, handover__in=mine.values("pk"))
        context.update(
            managed=_managed_projects(user, today),
            returned=_section(
                _urgent_first(mine.filter(status=HandoverStatus.RETURNED).select_related("project"), today),
                [ListLink(returned)],
            ),
            sent_back=_section(
                items_sent_back_to(user)
                .select_related("handover__project")
                .order_by("handover__target_date", "position", "id"),
                [ListLink(returned, "the returned handovers")],
            ),
            manager_flags=_section(
                _flag_rows(manager_flags),
                [ListLink(_list_url(HANDOVER_LIST_PATH, manager=user.pk, has_open_stall="true"), "flagged handovers")],
            ),
        )

    teams = list(teams_of(user).order_by("name"))
    team_ids = [team.pk for team in teams]
    theirs = operations_handovers(user, team_ids)
    coming = _per_team(theirs)
    context["teams"] = teams
    context["is_operations"] = is_operations = bool(teams or coming)
    context.update(incoming=none, to_decide=none, verify_groups=[], verify_total=0, operations_flags=none)
    if is_operations:
        incoming = list(
            _urgent_first(theirs.select_related("project", "receiving_team", "operations_owner"), today)[:HOME_ROWS]
        )
        # As ``is_operations_owner``: the team's lead, or its owner while still on the team; never the manager.
        member_of = OperationsTeam.members.through.objects.filter(user=user).values("operationsteam_id")
        deciders = Q(receiving_team__lead=user) | Q(operations_owner=user, receiving_team__in=member_of)
        to_decide = theirs.filter(Q() if user.is_staff else deciders, status=HandoverStatus.SUBMITTED).exclude(
            project__manager=user
        )
        operations_flags = StallFlag.objects.filter(resolved_at__isnull=True, handover__in=theirs.values("pk")).exclude(
            handover__project__manager=user
        )
        verify_groups = _verification_groups(user, team_ids)
        context.update(
            incoming=HomeSection(
                rows=_handover_rows(incoming, today),
                total=sum(coming.values()),
                links=_team_links(coming, teams, user, status=LIVE_STATUSES),
            ),
            to_decide=_section(
                _urgent_first(to_decide.select_related("project"), today),
                _team_links(coming, [team for team in teams if team.lead_id == user.pk], user, status="submitted"),
            ),
            verify_groups=verify_groups,
            verify_total=verify_groups[0].total if verify_groups else 0,
            verify_links=_team_links(coming, teams, user, status=sorted(OPEN_STATUSES)),
            operations_flags=_section(
                _flag_rows(operations_flags), _team_links(coming, teams, user, has_open_stall="true")
            ),
        )
    for name in ("manager_flags", "operations_flags"):
        context[name] = replace(context[name], rows=[_flag_card(request, flag) for flag in context[name].rows])
    context["notifications"] = list(
        inbox(user).filter(read_at__isnull=True).select_related("flag").order_by("-created_at", "-id")[:5]
    )
    if not (is_manager or is_operations):
        stages = Project.objects.visible_to(user).order_by().values("stage").annotate(n=Count("pk"))
        context["stage_chart"] = _stage_chart_of({row["stage"]: row["n"] for row in stages})
    return render(request, "handover/home.html", context)


# How many handovers the home page's "waiting for verification" lists, and how many item titles under each.
VERIFY_GROUPS, VERIFY_TITLES = 20, 3


@dataclass(frozen=True)
class VerificationGroup:
    """A handover's done items waiting for the viewer's verification: how many, the oldest, the first titles."""

    handover_id: int
    code: str
    name: str
    count: int
    oldest: datetime
    titles: list[str]
    total: int = 0  # how many handovers have items waiting for the viewer, this one among them

    @property
    def more(self) -> int:
        return self.count - len(self.titles)


def _verification_groups(user, team_ids: list[int]) -> list[VerificationGroup]:
    """Done items waiting for ``user``'s verification, one entry per handover (its count, the oldest, a few titles),
    so that a handover with forty items done reads as one line (two queries, whatever the number of items)."""
    waiting = items_awaiting_verification_by(user, team_ids).order_by()
    groups = list(
        waiting.values("handover_id", code=F("handover__project__code"), name=F("handover__project__name"))
        .annotate(count=Count("id", distinct=True), oldest=Min("done_at"))
        # The number of handovers waiting in all, on each group (counted over the groups before the LIMIT).
        .annotate(total=Window(Count("*")))
        .order_by("oldest", "handover_id")[:VERIFY_GROUPS]
    )
    if not groups:
        return []
    titles: dict[int, list[str]] = defaultdict(list)
    for handover_id, title in (
        waiting.filter(handover_id__in=[g["handover_id"] for g in groups])
        .order_by("handover_id", "done_at", "position", "id")
        .values_list("handover_id", "title")
    ):
        if len(titles[handover_id]) < VERIFY_TITLES:
            titles[handover_id].append(title)
    return [VerificationGroup(**group, titles=titles[group["handover_id"]]) for group in groups]


def _stage_chart_of(given: Mapping[str, int], href: Callable[[Stage], str] | None = None):
    """The projects by stage, from their number in each stage (a grouped count, not the projects)."""
    counts = {stage: given.get(stage.value, 0) for stage in [*STAGE_ORDER, Stage.CANCELLED]}
    return column_chart(
        [Column(label=stage.label, value=count, href=href(stage) if href else "") for stage, count in counts.items()],
        title="Projects by stage",
        desc="Number of projects in each lifecycle stage: "
        + "; ".join(f"{stage.label} {count}" for stage, count in counts.items()),
        headers=("stage", "projects"),
    )


# ------------------------------------------------------------------------------------------- portfolio board


# How a board card is ordered in its column: overdue first, then stalled, then by planned handover date.
BOARD_STAGES = [*STAGE_ORDER, Stage.CANCELLED]


# Both as ``pk IN (small subquery)``, not a correlated EXISTS: the database reads the late handovers (along the
# status and target date index) and the open flags (their partial index) once, and each project is a hash lookup.


def _board_overdue(today: date) -> Q:
    """The project is overdue (``project_is_overdue``), or its live handover is (``handover_is_overdue``)."""
    return overdue_q(today) | Q(pk__in=Handover.objects.filter(handover_overdue_q(today)).values("project_id"))


def _board_stalled() -> Q:
    """The project's live handover has an open stall flag."""
    open_flags = StallFlag.objects.filter(resolved_at__isnull=True).exclude(handover__status=HandoverStatus.CANCELLED)
    return Q(pk__in=open_flags.values("handover__project_id"))


@dataclass(frozen=True)
class BoardCard:
    """A project's card on the board, with its live (not cancelled) handover, its readiness stored on it."""

    project: Project
    live: Handover | None
    overdue: bool
    stalled: bool
    open_flags: int

    @property
    def readiness(self) -> Readiness | None:
        return stored_readiness(self.live) if self.live else None

    @property
    def overall_meter(self) -> SafeString:
        overall = self.readiness.overall if self.readiness else None
        return _meter(overall.verified_ratio, overall.done_ratio) if overall else SafeString("")

    @property
    def overall_verified(self) -> str:
        return _percent(self.readiness.overall.verified_ratio) if self.readiness else ""


@dataclass(frozen=True)
class BoardColumn:
    """A stage's column: its first cards, how many projects it holds (on the board), and the older final ones."""

    stage: Stage
    cards: list[BoardCard]
    count: int
    older: int  # closed or cancelled before the board's window (0 when the window is off)
    more_href: str

    @property
    def more(self) -> int:
        return self.count - len(self.cards)


def _board_query(params: dict, **changes) -> str:
    """A query string of the board's own filters (``team``, ``manager``, ``closed``) with ``changes``."""
    merged = {name: value for name, value in {**params, **changes}.items() if value}
    return f"?{urlencode(merged)}" if merged else ""


@login_required
def board(request):
    """Projects in columns by stage, filterable by receiving team and manager; overdue and stalled ones stand out.

    Bounded whatever the size of the organisation, in a fixed number of queries: one grouped COUNT gives every
    column's size and the overdue and stalled totals; one query ranks the projects within their stage (ROW_NUMBER()
    OVER (PARTITION BY stage), overdue first, then stalled, then by planned handover date) and reads the first
    ``HANDOVER_BOARD_COLUMN_CAP`` of each; one more reads their live handovers, readiness from the counters stored
    on each (no checklist item is read). A column's "n more" opens the projects list on that stage, with the board's
    filters. Closed and cancelled projects are shown from the last ``HANDOVER_BOARD_RECENT_DAYS`` days (by the date
    they reached that stage) unless ``?closed=all``; the column says how many older ones there are.
    """
    user = request.user
    today = timezone.localdate()
    cap = settings.HANDOVER_BOARD_COLUMN_CAP
    visible = Project.objects.visible_to(user)
    teams = list(OperationsTeam.objects.order_by("name"))
    managers = list(managers_of(visible))
    team_id = _int_param(request.GET.get("team"), {t.pk for t in teams})
    manager_id = _int_param(request.GET.get("manager"), {m.pk for m in managers})
    all_closed = request.GET.get("closed") == "all"
    shown = visible
    if team_id:
        shown = shown.filter(receiving_team_id=team_id)
    if manager_id:
        shown = shown.filter(manager_id=manager_id)
    since = timezone.now() - timedelta(days=settings.HANDOVER_BOARD_RECENT_DAYS)
    on_board = Q() if all_closed else ~Q(stage__in=FINAL_STAGES) | Q(stage_changed_at__gte=since)
    overdue, stalled = _board_overdue(today), _board_stalled()

    counts = {
        row["stage"]: row
        for row in shown.order_by()
        .values("stage")
        .annotate(
            on_board=Count("pk", filter=on_board),
            overdue=Count("pk", filter=on_board & overdue),
            stalled=Count("pk", filter=on_board & stalled),
            all=Count("pk"),
        )
    }
    ranked_ids = list(
        shown.filter(on_board)
        # Aliases, not annotations: each is computed once, in the window's order (the cards' badges are read from
        # the project and its live handover, the same rules in Python).
        .alias(
            late=Case(When(overdue, then=Value(0)), default=Value(1)),
            calm=Case(When(stalled, then=Value(0)), default=Value(1)),
        )
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("stage")],
                order_by=[
                    F("late").asc(),
                    F("calm").asc(),
                    F("planned_handover").asc(nulls_last=True),
                    F("code").asc(),
                ],
            )
        )
        .filter(rank__lte=cap)
        .order_by("stage", "rank")
        .values_list("pk", flat=True)
    )
    # The ranking reads and sorts only what it orders by; the cards' projects are read apart, by id (a few dozen).
    ranked = sorted(
        Project.objects.filter(pk__in=ranked_ids).select_related("manager", "receiving_team"),
        key=lambda project: ranked_ids.index(project.pk),
    )
    live = {
        handover.project_id: handover
        for handover in Handover.objects.filter(project__in=[p.pk for p in ranked])
        .exclude(status=HandoverStatus.CANCELLED)
        .annotate(open_flag_total=open_flag_count())
    }
    by_stage: dict[str, list[BoardCard]] = defaultdict(list)
    for project in ranked:
        handover = live.get(project.pk)
        flags = handover.open_flag_total if handover else 0
        by_stage[project.stage].append(
            BoardCard(
                project=project,
                live=handover,
                overdue=project_is_overdue(project, today) or bool(handover and handover_is_overdue(handover, today)),
                stalled=bool(flags),
                open_flags=flags,
            )
        )
    filters = {"team": team_id, "manager": manager_id}
    projects_list = reverse("projects:list")
    columns = []
    for stage in BOARD_STAGES:
        row: Mapping[str, Any] = counts.get(stage.value, {})
        list_params = {**filters, "stage": stage.value}
        if stage in FINAL_STAGES:
            list_params["ordering"] = "-stage_changed_at"
        columns.append(
            BoardColumn(
                stage=stage,
                cards=by_stage[stage.value],
                count=row.get("on_board", 0),
                older=row.get("all", 0) - row.get("on_board", 0),
                more_href=f"{projects_list}{_board_query(list_params)}",
            )
        )
    context = {
        "nav": "board",
        "columns": columns,
        "teams": teams,
        "managers": managers,
        "team_id": team_id,
        "manager_id": manager_id,
        "filtered": bool(team_id or manager_id),
        "all_closed": all_closed,
        "recent_days": settings.HANDOVER_BOARD_RECENT_DAYS,
        "older": sum(column.older for column in columns),
        "all_closed_query": _board_query({**filters, "closed": "all"}),
        "recent_query": _board_query(filters),
        "total": sum(column.count for column in columns),
        "overdue_count": sum(row["overdue"] for row in counts.values()),
        "stalled_count": sum(row["stalled"] for row in counts.values()),
        "stage_chart": _stage_chart_of(
            {column.stage.value: column.count for column in columns}, href=lambda stage: f"#stage-{stage.value}"
        ),
    }
    return render(request, "handover/board.html", context)


def _int_param(value: str | None, allowed: set[int]) -> int | None:
    """A filter's id, if it is one of the offered choices (anything else is ignored)."""
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number in allowed else None


# ------------------------------------------------------------------------------------------- handovers list


@dataclass(frozen=True)
class ListedHandover:
    """A row of the handovers list: readiness from the handover's stored counters, its open flags counted."""

    handover: Handover
    overdue: bool
    open_flags: int

    @property
    def overall_meter(self) -> SafeString:
        overall = stored_readiness(self.handover).overall
        return _meter(overall.verified_ratio, overall.done_ratio)

    @property
    def overall_verified(self) -> str:
        return _percent(stored_readiness(self.handover).overall.verified_ratio)


@login_required
def handover_list(request):
    """The handovers the user may see, filtered (``HandoverListForm``: the API list's names) and paged by 50.

    A bounded page whatever the size of the organisation, in a fixed number of queries: the count is capped
    (``config.web.paginate`` counts at most 1,001 rows, in a subquery, and says "more than 1,000" past that: a
    large organisation's whole visible set is not counted on every page, and the count is read once per request),
    then the page's rows are read with their project, team and owner joined, their open flags counted in a
    subquery and readiness from the counters stored on each handover (no checklist item is read). Paging links
    keep every filter (``{% querystring %}``); invalid filters are shown next to their fields with a 400, and a page
    past the end is a 404.
    """
    user = request.user
    visible = handovers_visible_to(user)
    projects = Project.objects.visible_to(user)
    owners = User.objects.filter(pk__in=visible.values("operations_owner_id")).order_by(
        "first_name", "last_name", "username"
    )
    form = HandoverListForm(request.GET, projects=projects, owners=owners, managers=managers_of(projects))
    context: dict = {"nav": "handovers", "form": form}
    if not form.is_valid():
        return render(request, "handover/handover_list.html", context, status=INVALID)
    shown = form.filter(visible)
    page = paginate(
        shown.select_related("project", "receiving_team", "operations_owner").annotate(
            open_flag_total=open_flag_count()
        ),
        request.GET.get("page"),
        count=shown,
    )
    today = timezone.localdate()
    context["page"] = page
    context["rows"] = [
        ListedHandover(handover=h, overdue=handover_is_overdue(h, today), open_flags=h.open_flag_total)
        for h in page.rows
    ]
    context["project"] = form.cleaned_data["project"]
    context["filtered"] = any(value for name, value in form.cleaned_data.items() if name != "ordering")
    return render(request, "handover/handover_list.html", context)


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


# The item moves that mean "this waits on you" on a mandatory item (optional ones block nothing): the page opens
# the risk groups holding such items, and its filter "only what needs me" (``?needs=me``) keeps just them.
NEEDS_YOU = frozenset({"complete", "verify", "approve_waiver"})
NEEDS_ME_PARAM = ("needs", "me")


@dataclass
class ItemRow:
    """One checklist item as the page shows it: what the user may do with it, and the forms to do it."""

    item: ChecklistItem
    actions: frozenset[str]
    forms: dict[str, ServiceForm]
    comments: list[Comment]
    open_action: str = ""
    flash: str = ""
    earlier_comments: int = 0  # older than the latest COMMENTS_SHOWN, on the comments page
    # The errors of a posted move that the row no longer offers (the item moved on meanwhile), shown on the row.
    refusals: list[str] = field(default_factory=list)

    @property
    def needs_you(self) -> bool:
        # A done item waits for its verification whether mandatory or not (the home page counts it so); what is
        # still to do waits on the project side only where acceptance needs it.
        return bool(self.actions & NEEDS_YOU) and (self.item.mandatory or "verify" in self.actions)

    # Shown behind the row's "More…" (the others are its first-line moves).
    secondary_actions = ("waive", "not_applicable", "reopen", "evidence", "comment")


def _item_prefix(item_pk: int, action: str) -> str:
    return f"i{item_pk}-{action.replace('_', '-')}"


@dataclass
class Bound:
    """Forms posted back with errors, to show in place of the empty ones."""

    items: dict[tuple[int, str], ServiceForm] = field(default_factory=dict)
    handover: dict[str, ServiceForm] = field(default_factory=dict)
    # The conditions of an acceptance with conditions, posted with its form (``handover["accept_with_conditions"]``).
    condition_rows: BaseFormSet | None = None
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


def _condition_formset(handover: Handover, data=None, *, initial=None) -> BaseFormSet:
    owners = _participants(handover)
    return ConditionFormSet(data, prefix="conditions", initial=initial, form_kwargs={"owners": owners})


CONDITION_FIELDS = ("text", "owner", "due_date")


def _posted_conditions(data: QueryDict) -> list[dict]:
    """The condition rows as posted, raw, to show again with one more empty row ("Add another condition")."""
    try:
        total = min(int(data.get("conditions-TOTAL_FORMS", "0")), ConditionFormSet.absolute_max)
    except ValueError:
        total = 0
    return [{name: data.get(f"conditions-{index}-{name}", "") for name in CONDITION_FIELDS} for index in range(total)]


@dataclass(frozen=True)
class FlagCard:
    """A stall flag with the acknowledge and snooze forms its viewer may use."""

    flag: StallFlag
    actions: frozenset[str]
    forms: dict[str, ServiceForm]
    # The errors of a posted move the card no longer offers, and what a move just did ("Acknowledged.").
    refusals: list[str]
    flash: str = ""


def _flag_card(request, flag: StallFlag, bound: Bound | None = None) -> FlagCard:
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
    # A form posted for a move the card no longer offers (someone acknowledged first): its refusal, on the card.
    refusals = [m for (_, action), form in bound.flags.items() if action not in forms for m in _messages(form)]
    return FlagCard(flag=flag, actions=actions, forms=forms, refusals=refusals)


def _needs_me_only(request) -> bool:
    """``?needs=me`` on the page, or on the page an htmx move was made from (its answer keeps the page's filter)."""
    query = request.GET
    if request.htmx and request.htmx.current_url:
        query = QueryDict(urlsplit(request.htmx.current_url).query)
    return query.get(NEEDS_ME_PARAM[0]) == NEEDS_ME_PARAM[1]


@dataclass(frozen=True)
class ConditionRow:
    """A condition of acceptance with the form to mark it met, if the viewer may, or why the posted one went away."""

    condition: Condition
    form: ServiceForm | None = None
    refusals: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ActivityLine:
    """An activity entry with its item's title and its states' labels."""

    activity: Activity
    item_title: str
    from_label: str
    to_label: str


@dataclass(frozen=True)
class SnapshotRisk:
    label: str
    verified: str
    done: str
    not_applicable: int


@dataclass(frozen=True)
class SnapshotItem:
    title: str
    risk: str
    status: str
    status_value: str
    mandatory: bool
    evidence: int


@dataclass(frozen=True)
class SentBack:
    id: int | None
    title: str
    reason: str


@dataclass(frozen=True)
class SnapshotView:
    """A decision's frozen checklist, shaped for its tables: readiness per risk and each item's state then."""

    status: str | None
    target_date: str | None
    risks: list[SnapshotRisk]
    items: list[SnapshotItem]
    sent_back: list[SentBack]


@dataclass(frozen=True)
class DecisionRow:
    """A decision as the handover page shows it: what it sent back; its frozen checklist is loaded on demand."""

    decision: Decision
    sent_back: list[SentBack]


def _handover_context(request, handover: Handover, bound: Bound | None = None, *, awc_open: bool = False) -> dict:
    """Everything the handover page shows, in a fixed number of queries whatever the checklist's length."""
    bound = bound or Bound()
    needs_me_only = _needs_me_only(request)
    user = request.user
    today = timezone.localdate()
    roles = handover_roles(handover, user)
    items = list(
        handover.items.select_related(
            "assignee", "done_by", "verified_by", "waiver_requested_by", "waiver_approved_by"
        ).prefetch_related(Prefetch("evidence", queryset=Evidence.objects.select_related("added_by")))
    )
    comments_by_item, earlier_comments = _latest_comments(handover)

    rows = []
    for item in items:
        actions = item_actions(item, handover, roles)
        item_forms = {
            action: bound.items.get((item.pk, action))
            or ITEM_FORMS[action](prefix=_item_prefix(item.pk, action), initial={"version": item.version})
            for action in sorted(actions)
        }
        open_action = next((action for (pk, action) in bound.items if pk == item.pk), "")
        refusals = _messages(bound.items[(item.pk, open_action)]) if open_action and open_action not in actions else []
        rows.append(
            ItemRow(
                item=item,
                actions=actions,
                forms=item_forms,
                comments=comments_by_item[item.pk],
                earlier_comments=earlier_comments[item.pk],
                open_action=open_action,
                flash=bound.flash.get(item.pk, ""),
                refusals=refusals,
            )
        )
    readiness = stored_readiness(handover)  # the meters: as lists show them (a test holds them to the items)
    groups = []
    for risk in Risk:
        risk_rows = [row for row in rows if row.item.risk == risk.value]
        needing = [row for row in risk_rows if row.needs_you]
        shown = needing if needs_me_only else risk_rows
        groups.append(
            {
                "risk": risk,
                "rows": shown,
                "total": len(risk_rows),
                "hidden": len(risk_rows) - len(shown),
                "needs_you": len(needing),
                # Open what waits on the viewer, and what a move just touched (an error to read, a flash).
                "open": needs_me_only or bool(needing) or any(row.open_action or row.flash for row in risk_rows),
                "readiness": readiness.by_risk[risk.value],
                "verified": _percent(readiness.by_risk[risk.value].verified_ratio),
                "done": _percent(readiness.by_risk[risk.value].done_ratio),
            }
        )

    actions = handover_actions(handover, roles)
    forms: dict[str, ServiceForm | BaseFormSet] = {}
    conditions_full = False
    if "submit" in actions:
        forms["submit"] = bound.handover.get("submit") or SubmitForm(prefix="submit")
    if "accept" in actions:
        forms["accept"] = bound.handover.get("accept") or AcceptForm(prefix="accept")
    if "accept_with_conditions" in actions:
        forms["accept_with_conditions"] = bound.handover.get("accept_with_conditions") or AcceptWithConditionsForm(
            prefix="awc"
        )
        formset = bound.condition_rows or _condition_formset(handover)
        forms["conditions"] = formset
        conditions_full = formset.total_form_count() >= ConditionFormSet.max_num
        awc_open = awc_open or "accept_with_conditions" in bound.handover
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
    # A posted move the page no longer offers (its state moved on): its refusal is shown above the moves.
    refusals = [message for name, form in bound.handover.items() if name not in forms for message in _messages(form)]

    # A move the user may make but a gate blocks is shown disabled with the gate's words, as the project page does.
    gates = {move: message for move, message in handover_gates(items).items() if move in actions}
    if "accept" in actions and "accept" in gates:
        gates["accept_with_conditions"] = gates["accept"]
    # Each decision's frozen checklist stays in the database until asked for (handover_decision); only the list
    # of what a return sent back is read with it, a key of the snapshot.
    decisions = [
        DecisionRow(decision=decision, sent_back=_sent_back(decision.sent_back_record))
        for decision in handover.decisions.defer("snapshot")
        .annotate(sent_back_record=F("snapshot__sent_back"))
        .select_related("decided_by")
        .prefetch_related(Prefetch("conditions", queryset=Condition.objects.select_related("owner")))
    ]
    conditions = []
    for condition in handover.conditions.select_related("owner", "met_by"):
        posted = bound.conditions.get(condition.pk)
        if can_mark_condition_met(condition, handover, user):
            conditions.append(
                ConditionRow(condition=condition, form=posted or ConditionMetForm(prefix=f"c{condition.pk}"))
            )
        else:  # marked met meanwhile, by someone else: say why the form went away
            conditions.append(
                ConditionRow(condition=condition, refusals=_messages(posted) if posted is not None else [])
            )
    activity, older = _activity_chunk(handover)
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
        "actions": actions,
        "refusals": refusals,
        "gates": gates,
        "forms": forms,
        "awc_open": awc_open,
        "conditions_full": conditions_full,
        "needs_me_only": needs_me_only,
        "needs_you": sum(group["needs_you"] for group in groups),
        "decisions": decisions,
        "conditions": conditions,
        "activity": activity,
        "activity_older": older,
        "handover_comments": comments_by_item[None],
        "handover_comments_earlier": earlier_comments[None],
        "open_flags": [_flag_card(request, f, bound) for f in flags if f.resolved_at is None],
        "resolved_flags": [f for f in flags if f.resolved_at is not None],
    }


# The activity log shows its latest entries; "older activity" loads the next as many on demand.
ACTIVITY_PAGE = 20
# The handover page shows the latest comments of each thread (the handover's, each item's); the rest are on the
# comments page, COMMENTS_PAGE at a time.
COMMENTS_SHOWN, COMMENTS_PAGE = 20, 50


def _latest_comments(handover: Handover) -> tuple[dict[int | None, list[Comment]], dict[int | None, int]]:
    """The latest COMMENTS_SHOWN comments of each thread, oldest first, and how many earlier ones each has: one
    query, ranked per thread by the database, whatever the number of comments."""
    newest_first = [F("created_at").desc(), F("id").desc()]
    shown: dict[int | None, list[Comment]] = defaultdict(list)
    earlier: dict[int | None, int] = defaultdict(int)
    for comment in (
        handover.comments.select_related("author")
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("item_id")], order_by=newest_first),
            in_thread=Window(Count("pk"), partition_by=[F("item_id")]),
        )
        .filter(rank__lte=COMMENTS_SHOWN)
        .order_by("created_at", "id")
    ):
        shown[comment.item_id].append(comment)
        earlier[comment.item_id] = max(comment.in_thread - COMMENTS_SHOWN, 0)
    return shown, earlier


@login_required
@require_GET
def handover_comments(request, pk: int):
    """Every comment of a handover's thread (``?item=<id>`` for an item's, else the handover's own), newest first,
    COMMENTS_PAGE at a time; 404 where the handover is not visible, 400 for an item not on it."""
    handover = _visible_handover(request, pk)
    value, item = request.GET.get("item", ""), None
    if value:
        item = (
            handover.items.filter(pk=int(value)).only("pk", "title").first()
            if value.isascii() and value.isdigit() and len(value) < 19
            else None
        )
        if item is None:
            return HttpResponseBadRequest("item: must be the id of an item of this handover's checklist.")
    comments = handover.comments.filter(item=item).select_related("author").order_by("-created_at", "-id")
    page = Paginator(comments, COMMENTS_PAGE).get_page(request.GET.get("page"))
    context = {"nav": "handover", "handover": handover, "project": handover.project, "item": item, "page": page}
    return render(request, "handover/comments.html", context)


def _activity_chunk(handover: Handover, before: Activity | None = None) -> tuple[list[ActivityLine], str]:
    """The ACTIVITY_PAGE entries of ``handover``'s log before ``before`` (the latest without it), newest first, and
    the address of the next older chunk ("" at the start of the log). Read along the entries' time, never counted,
    so that a long log costs what one chunk does and entries written meanwhile do not shift the chunks."""
    entries = handover.activity.select_related("actor").annotate(item_title=F("item__title"))
    if before is not None:
        entries = entries.filter(
            Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, pk__lt=before.pk)
        )
    chunk = list(entries.order_by("-created_at", "-id")[: ACTIVITY_PAGE + 1])
    lines = [
        ActivityLine(
            activity=entry,
            item_title=entry.item_title or "",
            from_label=STATE_LABELS.get(entry.from_state, entry.from_state),
            to_label=STATE_LABELS.get(entry.to_state, entry.to_state),
        )
        for entry in chunk[:ACTIVITY_PAGE]
    ]
    older = ""
    if len(chunk) > ACTIVITY_PAGE:
        older = reverse("handover:activity", args=[handover.pk]) + f"?before={chunk[ACTIVITY_PAGE - 1].pk}"
    return lines, older


@login_required
@require_GET
def handover_activity(request, pk: int):
    """Older entries of a handover's activity log, ``?before=<entry id>``: under htmx the next chunk of the list
    (its entries and the link to the chunk after), else a page of its own (the log without JavaScript)."""
    handover = _visible_handover(request, pk)
    before = None
    value = request.GET.get("before", "")
    if value:
        # ASCII digits only ("²".isdigit() is true) and few of them: int() refuses strings of over 4300 digits.
        entry = (
            handover.activity.filter(pk=int(value)).only("pk", "created_at").first()
            if value.isascii() and value.isdigit() and len(value) < 19
            else None
        )
        if entry is None:
            return HttpResponseBadRequest("before: must be the id of an entry of this handover's activity log.")
        before = entry
    activity, older = _activity_chunk(handover, before)
    context = {"handover": handover, "project": handover.project, "activity": activity, "activity_older": older}
    if request.htmx:
        return render(request, "handover/_activity_chunk.html", context)
    return render(request, "handover/activity.html", {**context, "nav": "handover"})


@login_required
@require_GET
def handover_decision(request, pk: int, decision_id: int):
    """A decision with the checklist as it stood when it was made: under htmx the snapshot's tables (the handover
    page's disclosure loads them when opened), else a page of its own. 404 where the handover is not visible."""
    handover = _visible_handover(request, pk)
    decision = get_object_or_404(handover.decisions.select_related("decided_by"), pk=decision_id)
    context = {
        "handover": handover,
        "project": handover.project,
        "decision": decision,
        "snapshot": _snapshot_view(decision.snapshot),
    }
    if request.htmx:
        return render(request, "handover/_snapshot.html", context)
    return render(request, "handover/decision.html", {**context, "nav": "handover"})


def _sent_back(record) -> list[SentBack]:
    """Which items a return sent back, with its reason (recorded by handover_return; older snapshots lack it)."""
    return [
        SentBack(id=entry.get("id"), title=entry.get("title", ""), reason=entry.get("reason", ""))
        for entry in record or []
        if isinstance(entry, dict)
    ]


def _snapshot_view(snapshot: dict) -> SnapshotView:
    """A decision's frozen checklist, shaped for its table: readiness per risk and each item's state then."""
    readiness = snapshot.get("readiness", {})
    risks = []
    for risk in [*Risk, None]:
        r = readiness.get(risk.value if risk else "overall", {})
        risks.append(
            SnapshotRisk(
                label=risk.label if risk else "Overall",
                verified=_percent(r.get("verified_ratio")),
                done=_percent(r.get("done_ratio")),
                not_applicable=r.get("not_applicable", 0),
            )
        )
    labels = {risk.value: risk.label for risk in Risk}
    statuses = dict(ItemStatus.choices)
    items = [
        SnapshotItem(
            title=item.get("title", ""),
            risk=labels.get(item.get("risk"), item.get("risk")),
            status=statuses.get(item.get("status"), item.get("status")),
            status_value=item.get("status"),
            mandatory=item.get("mandatory"),
            evidence=len(item.get("evidence", [])),
        )
        for item in snapshot.get("items", [])
    ]
    sent_back = _sent_back(snapshot.get("sent_back"))
    return SnapshotView(
        status=snapshot.get("status"),
        target_date=snapshot.get("target_date"),
        risks=risks,
        items=items,
        sent_back=sent_back,
    )


def _messages(form) -> list[str]:
    """Every error of a bound form, as text."""
    return [str(message) for messages in form.errors.values() for message in messages]


def _handover_page(request, handover: Handover, bound: Bound | None = None, *, status: int = 200, **options):
    context = _handover_context(request, handover, bound, **options)
    return render(request, "handover/handover_detail.html", context, status=status)


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


def _require_move_role(handover: Handover, user, name: str) -> None:
    """403 before the form is read when the user does not hold the role the move asks for."""
    if not may_attempt_handover_move(name, handover_roles(handover, user)):
        raise PermissionDenied(f"{MOVE_NAMES.get(name, 'This move').capitalize()} is not yours to do on this handover.")


MOVE_NAMES = {
    "submit": "submitting",
    "accept": "accepting",
    "accept_with_conditions": "accepting with conditions",
    "return": "returning",
    "start_hypercare": "starting hypercare",
    "complete": "completing",
    "cancel": "cancelling",
    "comment": "commenting",
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
    _require_move_role(handover, request.user, name)
    form = move.form(handover, request.POST)
    if form.is_valid() and form.run(move.call, handover, request.user, form.cleaned_data):
        messages.success(request, move.done)
        anchor = "#comments" if name == "comment" else ""
        return redirect(reverse("handover:detail", args=[handover.pk]) + anchor)
    return _handover_page(request, handover, Bound(handover={name: form}), status=error_status(form))


@login_required
@require_POST
def accept_with_conditions(request, pk: int):
    """Accept with conditions: a note and a formset of conditions (text, owner, due date).

    "Add another condition" posts the same form with ``add_condition``: the page comes back with the rows as typed
    and one more empty row (no JavaScript needed; with htmx only the rows are swapped).
    """
    handover = _visible_handover(request, pk)
    _require_move_role(handover, request.user, "accept_with_conditions")
    if "add_condition" in request.POST:
        form = AcceptWithConditionsForm(prefix="awc", initial={"note": request.POST.get("awc-note", "")})
        formset = _condition_formset(handover, initial=_posted_conditions(request.POST))
        formset.forms[-1].fields["text"].widget.attrs["autofocus"] = True  # the row just added
        bound = Bound(handover={"accept_with_conditions": form}, condition_rows=formset)
        return _handover_page(request, handover, bound, awc_open=True)
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
    bound = Bound(handover={"accept_with_conditions": form}, condition_rows=formset)
    return _handover_page(request, handover, bound, status=error_status(form))


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
    if not may_attempt_item_move(name, item, handover_roles(item.handover, request.user)):
        raise PermissionDenied(f"{ITEM_MOVE_NAMES[name].capitalize()} is not yours to do on this item.")
    form = ITEM_FORMS[name](request.POST, prefix=_item_prefix(item.pk, name))
    done = form.is_valid() and form.run(ITEM_CALLS[name], item, request.user, form.cleaned_data)
    bound = Bound(flash={item.pk: ITEM_DONE[name]}) if done else Bound(items={(item.pk, name): form})
    status = 200 if done else error_status(form)
    if request.htmx:
        handover = _visible_handover(request, item.handover_id)
        context = _handover_context(request, handover, bound)
        context["row"] = context["rows_by_id"][item.pk]
        return render(request, "handover/_item_response.html", context, status=status)
    if done:
        messages.success(request, f"{item.title}: {ITEM_DONE[name]}")
        return redirect(reverse("handover:detail", args=[item.handover_id]) + f"#item-{item.pk}")
    return _handover_page(request, _visible_handover(request, item.handover_id), bound, status=status)


ITEM_MOVE_NAMES = {
    "complete": "completing",
    "verify": "verifying",
    "send_back": "sending back",
    "waive": "waiving",
    "approve_waiver": "approving the waiver",
    "not_applicable": "marking it not applicable",
    "reopen": "reopening",
    "evidence": "adding evidence",
    "comment": "commenting",
}


@login_required
@require_POST
def condition_met(request, pk: int):
    condition = get_object_or_404(
        Condition.objects.filter(handover__in=handovers_visible_to(request.user).values("pk")).select_related(
            "handover__receiving_team"
        ),
        pk=pk,
    )
    # condition_mark_met's role: the condition's owner or the operations owner (403 before the form is read).
    if not (condition.owner_id == request.user.pk or is_operations_owner(condition.handover, request.user)):
        raise PermissionDenied("Only the condition's owner or the operations owner may mark it met.")
    form = ConditionMetForm(request.POST, prefix=f"c{condition.pk}")
    if form.is_valid() and form.run(
        hs.condition_mark_met, condition=condition, by=request.user, note=form.cleaned_data["note"]
    ):
        messages.success(request, "Condition marked met.")
        return redirect(reverse("handover:detail", args=[condition.handover_id]) + "#conditions")
    handover = _visible_handover(request, condition.handover_id)
    return _handover_page(request, handover, Bound(conditions={condition.pk: form}), status=error_status(form))


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
    if not may_act_on_flag(flag, request.user):
        raise PermissionDenied("Only the operations owner or the receiving team's lead may act on a stall flag.")
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
    card = replace(card, flash=("Acknowledged." if action == "acknowledge" else "Snoozed.") if done else "")
    status = 200 if done else error_status(form)
    context = {"card": card, "next": _safe_next(request, "")}
    if request.htmx:
        return render(request, "handover/_stall_flag.html", context, status=status)
    if done:
        messages.success(request, f"Stall flag {card.flash.lower().rstrip('.')}.")
        return redirect(_safe_next(request, reverse("handover:detail", args=[flag.handover_id]) + "#stalls"))
    return render(request, "handover/stall_flag.html", context, status=status)


# ---------------------------------------------------------------------------------------- notifications


@login_required
def notifications(request):
    """The in-app inbox: stall flags on handovers you own, manage or lead; newest first."""
    notices = inbox(request.user).select_related("flag").order_by("-created_at", "-id")
    page = Paginator(notices, 50).get_page(request.GET.get("page"))
    return render(request, "handover/notifications.html", {"nav": "notifications", "page": page})


@login_required
@require_GET
def notification_open(request, pk: int):
    """Follow a notification: mark it read and go to its handover's page (404 for someone else's notification)."""
    notification = get_object_or_404(inbox(request.user).select_related("flag"), pk=pk)
    if notification.read_at is None:
        notifications_mark_read(user=request.user, ids=[notification.pk])
    handover_id = notification.flag.handover_id
    if not handovers_visible_to(request.user).filter(pk=handover_id).exists():
        # No longer visible (a project made confidential): the inbox, not a 404 for a link we offered.
        messages.info(request, "That handover is no longer visible to you.")
        return redirect("handover:notifications")
    return redirect(reverse("handover:detail", args=[handover_id]) + "#stalls")


@login_required
@require_POST
def notifications_read(request):
    """Mark one notification (``id``) or all unread ones (``all``) read."""
    if request.POST.get("all"):
        marked = notifications_mark_read(user=request.user)
    else:
        values = request.POST.getlist("id")
        # ASCII digits only ("²".isdigit() is true) and few of them: int() refuses strings of over 4300 digits.
        if not all(value.isascii() and value.isdigit() and len(value) < 19 for value in values):
            return HttpResponseBadRequest("id: each id must be the number of one of your notifications.")
        ids = [int(value) for value in values]
        marked = notifications_mark_read(user=request.user, ids=ids) if ids else 0
    messages.success(request, f"{marked} notification{'s' if marked != 1 else ''} marked read.")
    return redirect(_safe_next(request, reverse("handover:notifications")))


# ------------------------------------------------------------------------------------- search and saved views


@login_required
@require_GET
def search(request):
    """The navigation's search box: projects, handovers and checklist items the user may see (handover.search)."""
    raw = request.GET.get("q")
    context: dict[str, object] = {"nav": "search", "search_query": raw or "", "error": None}
    if raw is None:
        return render(request, "handover/search.html", context)
    try:
        found = run_search(request.user, raw)
    except InvalidInput as error:
        context["error"] = error.message
        return render(request, "handover/search.html", context, status=400)  # the query at fault
    groups: dict[str, list] = {"project": [], "handover": [], "item": []}
    for result in found.results:
        groups[result.kind].append(result)
    context.update(
        searched=True,
        search_query=found.query,
        code_only=found.code_only,
        total=len(found.results),
        groups=[
            {"kind": kind, "title": title, "results": groups[kind]}
            for kind, title in (("project", "Projects"), ("handover", "Handovers"), ("item", "Checklist items"))
            if groups[kind]
        ],
    )
    return render(request, "handover/search.html", context)


@login_required
@require_POST
def saved_view_create(request):
    """Save the filters of the page the form is on as one of the user's views, then open it."""
    form = SavedViewForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data

        def save():
            filters = sv.filters_from_query(data["page"], data["query"])
            return sv.saved_view_create(user=request.user, page=data["page"], name=data["name"], filters=filters)

        if form.run(save):
            messages.success(request, f"Saved the view “{form.result.name}”.")
            return redirect(sv.saved_view_url(form.result))
    page = form.data.get("page", "")
    back = sv.PAGES[page].url() if page in sv.PAGES else reverse("home")
    query = form.data.get("query", "")
    context = {"form": form, "back": f"{back}?{query}" if query else back}
    return render(request, "handover/saved_view_form.html", context, status=form.error_status)


@login_required
@require_POST
def saved_view_delete(request, pk: int):
    """Delete one of the user's own saved views (anyone else's is a 404), then go back to its page."""
    view = get_object_or_404(sv.saved_views_of(request.user), pk=pk)
    sv.saved_view_delete(view=view, by=request.user)
    messages.success(request, f"Deleted the saved view “{view.name}”.")
    return redirect(_safe_next(request, sv.PAGES[view.page].url()))


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
    form = _plan_form(project, request.POST if request.method == "POST" else None)
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
    status = error_status(form) if request.method == "POST" else 200
    context = {"project": project, "form": form, "nav": "board"}
    return render(request, "handover/plan_handover.html", context, status=status)


# ------------------------------------------------------------------------------ sections of other pages


@register_section("project", "handover/sections/project_handover.html")
def project_handover_section(request, project: Project) -> dict:
    """The project page's handover: the live one with its readiness, earlier cancelled ones, or a plan link."""
    today = timezone.localdate()
    cards = _handover_cards(
        project.handovers.select_related("operations_owner", "receiving_team", "service").order_by(
            "-created_at", "-id"
        ),
        today,
    )
    live = next((c for c in cards if c.handover.status != HandoverStatus.CANCELLED), None)
    return {
        "live": live,
        "live_chart": readiness_chart(live.readiness, title=f"Readiness of the {project.code} handover")
        if live
        else None,
        "cancelled": [c.handover for c in cards if c.handover.status == HandoverStatus.CANCELLED],
        "may_plan": live is None and not project.is_final and can_manage(project, request.user),
        # handover_create needs the project's receiving team; until it is chosen the page says so instead.
        "needs_team": project.receiving_team_id is None,
    }


# The handovers still coming to a team: not yet accepted, so the team's work on them is ahead.
COMING = (HandoverStatus.PREPARING, HandoverStatus.SUBMITTED, HandoverStatus.RETURNED)
LOAD_WEEKS_BACK, LOAD_WEEKS = 4, 16
WEEK = timedelta(weeks=1)


# The team page lists its live handovers a page at a time.
TEAM_PAGE_SIZE = 25


@register_section("team", "handover/sections/team_handovers.html")
def team_handovers_section(request, team: OperationsTeam) -> dict:
    """A team's load: the handovers still coming to it per week of their target date (counted by the database),
    and its live handovers a page at a time (``?page=``), the most urgent first."""
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=LOAD_WEEKS_BACK)
    after = first + timedelta(weeks=LOAD_WEEKS)
    weeks = [first + timedelta(weeks=i) for i in range(LOAD_WEEKS)]
    visible = handovers_visible_to(request.user).filter(receiving_team=team)
    # One aggregate over the team's handovers: how many are still coming in each week, before and after the chart,
    # and how many were completed.
    load = visible.aggregate(
        **{
            f"w{i}": Count("pk", filter=Q(status__in=COMING, target_date__gte=week, target_date__lt=week + WEEK))
            for i, week in enumerate(weeks)
        },
        earlier=Count("pk", filter=Q(status__in=COMING, target_date__lt=first)),
        later=Count("pk", filter=Q(status__in=COMING, target_date__gte=after)),
        completed=Count("pk", filter=Q(status=HandoverStatus.COMPLETED)),
    )
    counts = [load[f"w{i}"] for i in range(LOAD_WEEKS)]
    columns = [
        Column(
            label=f"{week:%d %b}",
            value=count,
            highlight=week == monday,
            tooltip=f"Week of {week:%d %b %Y}{' (this week)' if week == monday else ''}: {count} handover(s) due",
        )
        for week, count in zip(weeks, counts, strict=True)
    ]
    in_window = sum(counts)
    chart = column_chart(
        columns,
        title=f"Handovers still coming to {team.name}, per week of their target date",
        desc=f"Preparing, submitted or returned handovers by the week of their target date, from {first:%d %b} to "
        f"{after - timedelta(days=1):%d %b %Y}; this week is marked. "
        + "; ".join(f"week of {c.label}: {_count(c.value)}" for c in columns),
        headers=("week of", "handovers due"),
        width=640,
        series=True,
        marker_label="this week",
        empty="" if in_window else "Nothing due in these weeks.",
    )
    live = _urgent_first(
        visible.exclude(status__in=(HandoverStatus.COMPLETED, HandoverStatus.CANCELLED)).select_related(
            "project", "operations_owner"
        ),
        today,
    )
    # get_page: a page number that is not one (``?page=x``, ``?page=999``) shows the first or the last page.
    page = Paginator(live, TEAM_PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "load_chart": chart,
        "load_empty": f"No handover is due to {team.name} between {first:%d %b} and {after:%d %b}."
        if not in_window
        else "",
        "coming": in_window + load["earlier"] + load["later"],
        "earlier": load["earlier"],
        "later": load["later"],
        "page": page,
        "rows": _handover_rows(list(page.object_list), today),
        "all_url": _list_url(HANDOVER_LIST_PATH, team=team.pk, status=LIVE_STATUSES),
        "completed": load["completed"],
    }


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
    return {"chart": replace(chart, headers=("team", "submission to decision"), rows=rows)}
