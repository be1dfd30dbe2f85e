"""Web pages of projects: the list, the project page (details, stage timeline, the moves its manager may make),
create, edit.

The moves come from ``projects.selectors.project_moves``: a move the user may not make is not shown (and its URL
answers 403 before reading the form), a move a gate blocks is shown disabled with the gate's message, and
``project_transition`` still decides when it is pressed. A form with errors comes back with 400 (or 409 when the
state refused the move), the errors next to the fields.
Handover sections of the page are added by the handover app (``config.web.register_section``).
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from config.errors import NotPermitted
from config.web import INVALID, error_status, page_sections, paginate

from . import services as ps
from .choices import STAGE_ORDER, ProjectEventKind, Stage
from .forms import MoveForm, ProjectForm, ProjectListForm
from .models import Project
from .selectors import managers_of, project_is_overdue, project_moves, project_success


@login_required
def project_list(request):
    """The projects the user may see, filtered (``ProjectListForm``: the API list's names) and paged by 50.

    A bounded page whatever the size of the organisation: one capped count (``config.web.paginate``: "more than
    1,000" past the cap, rather than counting every visible project on every page), then the page's rows with their
    manager and team joined. Paging links keep every filter (``{% querystring %}``); invalid filters are shown next
    to their fields with a 400, and a page past the end is a 404.
    """
    visible = Project.objects.visible_to(request.user)
    form = ProjectListForm(request.GET, managers=managers_of(visible))
    context: dict = {"nav": "projects", "form": form, "today": timezone.localdate()}
    if not form.is_valid():
        return render(request, "projects/project_list.html", context, status=INVALID)
    shown = form.filter(visible)
    page = paginate(shown.select_related("manager", "receiving_team"), request.GET.get("page"), count=shown)
    context["page"] = page
    context["rows"] = [(project, project_is_overdue(project, context["today"])) for project in page.rows]
    context["filtered"] = any(value for name, value in form.cleaned_data.items() if name != "ordering")
    return render(request, "projects/project_list.html", context)


def _visible_project(request, pk: int) -> Project:
    """The project, or 404 when it does not exist or is confidential to others."""
    return get_object_or_404(
        Project.objects.visible_to(request.user)
        .select_related("manager", "receiving_team__lead", "created_by")
        .prefetch_related("members"),
        pk=pk,
    )


def _timeline(project: Project, events: list) -> list[dict]:
    """Each lifecycle stage with when the project last entered it, and whether it is behind, current or ahead."""
    entered: dict[str, object] = {}
    cancelled_from = None
    for event in events:
        if event.kind in (ProjectEventKind.CREATED, ProjectEventKind.STAGE_CHANGED) and event.to_stage:
            entered[event.to_stage] = event.created_at
            if event.to_stage == Stage.CANCELLED:
                cancelled_from = event.from_stage
    reached = Stage(cancelled_from) if project.stage == Stage.CANCELLED and cancelled_from else Stage(project.stage)
    position = STAGE_ORDER.index(reached) if reached in STAGE_ORDER else -1
    steps = []
    for index, stage in enumerate(STAGE_ORDER):
        if project.stage == stage:
            state = "current"
        elif index < position or (index == position and project.stage == Stage.CANCELLED):
            state = "done"
        else:
            state = "ahead"
        steps.append({"stage": stage, "state": state, "entered": entered.get(stage.value)})
    if project.stage == Stage.CANCELLED:
        steps.append({"stage": Stage.CANCELLED, "state": "current", "entered": entered.get(Stage.CANCELLED.value)})
    return steps


def _project_page(request, project: Project, *, bound_move: tuple[str, MoveForm] | None = None, status: int = 200):
    events = list(project.events.select_related("actor").order_by("created_at", "id"))
    moves = []
    for move in project_moves(project, request.user):
        if isinstance(move.blocked_by, NotPermitted):
            continue  # not this user's move to make: not offered
        form = bound_move[1] if bound_move and bound_move[0] == move.to else None
        moves.append(
            {
                "move": move,
                "form": form or MoveForm(auto_id=f"id_move_{move.to}_%s"),
                "open": form is not None,
            }
        )
    context = {
        "nav": "board",
        "project": project,
        "members": list(project.members.all()),
        "timeline": _timeline(project, events),
        "history": list(reversed(events)),
        "moves": moves,
        "may_manage": ps.can_manage(project, request.user),
        "success": project_success(project),
        "overdue": project_is_overdue(project, timezone.localdate()),
        "sections": page_sections("project", request, project),
    }
    return render(request, "projects/project_detail.html", context, status=status)


@login_required
def project_detail(request, pk: int):
    return _project_page(request, _visible_project(request, pk))


@login_required
@require_POST
def project_move(request, pk: int, to: str):
    """Move the project's stage; the service checks the table, the reason, the role and the gate."""
    project = _visible_project(request, pk)
    if not ps.can_manage(project, request.user):
        raise PermissionDenied("Only the project manager or an administrator may move the project's stage.")
    form = MoveForm(request.POST, auto_id=f"id_move_{to}_%s")
    if form.is_valid() and form.run(
        ps.project_transition, project=project, to=to, by=request.user, reason=form.cleaned_data["reason"]
    ):
        label = Stage(to).label if to in Stage.values else to
        messages.success(request, f"{project.code} moved to {label}.")
        return redirect("projects:detail", pk=project.pk)
    return _project_page(request, project, bound_move=(to, form), status=error_status(form))


_DETAIL_FIELDS = (
    "code",
    "name",
    "description",
    "sponsor",
    "receiving_team",
    "planned_start",
    "planned_handover",
    "confidential",
)


class _EditForm(ProjectForm):
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)


@login_required
def project_create(request):
    """Any signed-in user may start a project in initiation; they manage it unless an administrator names another."""
    posted = request.POST if request.method == "POST" else None
    form = ProjectForm(posted, may_choose_manager=request.user.is_staff)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        fields = {name: data[name] for name in _DETAIL_FIELDS if name not in ("code", "name")}
        if data.get("manager") is not None:
            fields["manager"] = data["manager"]
        if form.run(
            ps.project_create,
            by=request.user,
            code=data["code"],
            name=data["name"],
            members=list(data["members"]),
            **fields,
        ):
            messages.success(request, f"Project {form.result.code} created in initiation.")
            return redirect("projects:detail", pk=form.result.pk)
    status = error_status(form) if posted is not None else 200
    context = {"form": form, "nav": "board", "creating": True}
    return render(request, "projects/project_form.html", context, status=status)


@login_required
def project_edit(request, pk: int):
    """The manager (or an administrator) edits the details and the members."""
    project = _visible_project(request, pk)
    if not ps.can_manage(project, request.user):
        raise PermissionDenied("Only the project manager or an administrator may edit the project.")
    initial = {name: getattr(project, name) for name in _DETAIL_FIELDS}
    initial.update(manager=project.manager, members=list(project.members.all()), version=project.version)
    posted = request.POST if request.method == "POST" else None
    form = _EditForm(posted, initial=initial, may_choose_manager=request.user.is_staff)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        changes = {name: data[name] for name in _DETAIL_FIELDS}
        if "manager" in form.fields:
            changes["manager"] = data["manager"]
        if form.run(
            ps.project_update,
            project=project,
            by=request.user,
            expected_version=data["version"],
            members=list(data["members"]),
            **changes,
        ):
            messages.success(request, "Project saved.")
            return redirect("projects:detail", pk=project.pk)
    status = error_status(form) if posted is not None else 200
    context = {"form": form, "project": project, "nav": "board"}
    return render(request, "projects/project_form.html", context, status=status)
