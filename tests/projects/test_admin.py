"""The project admin writes only through ``projects.services``: its forms and actions leave history behind, and a
refusal is shown to the administrator instead of a server error."""

from html.parser import HTMLParser

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from projects import services as ps
from projects.choices import ProjectEventKind, Stage
from projects.models import Project, ProjectEvent

# ---------------------------------------------------------------------------------- helpers (shared by admin tests)


class _FormReader(HTMLParser):
    """Collects what a browser would submit from one ``<form>``: inputs, checked boxes, selected options, text."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or ("name" not in a and tag not in ("option",)):
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "image", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._add(a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else ""))
        elif tag == "select":
            self._select = a["name"]
            self.data.setdefault(a["name"], [])
        elif tag == "option" and self._select and "selected" in a:
            self._add(self._select, a.get("value", ""))
        elif tag == "textarea":
            self._textarea = a["name"]
            self._add(a["name"], "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][-1] += data.removeprefix("\n") if not self.data[self._textarea][-1] else data


def form_data(response, model) -> dict:
    """The admin change form of ``response`` as a browser would post it, ready to be edited and posted back."""
    reader = _FormReader(f"{model._meta.model_name}_form")
    reader.feed(response.content.decode())
    assert reader.data, f"no {model._meta.model_name}_form on the page"
    return {name: values if len(values) != 1 else values[0] for name, values in reader.data.items()}


def action(client, model, name: str, objects, **extra):
    """Run an admin action on ``objects`` from the change list."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    data = {"action": name, "_selected_action": [o.pk for o in objects], "index": "0", **extra}
    return client.post(url, data, follow=True)


def confirm(client, model, name: str, objects, **fields):
    """Answer an action's intermediate page (the reason form), as its own form would post it."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    data = {"action": name, "_selected_action": [o.pk for o in objects], "confirm": "yes", **fields}
    return client.post(url, data, follow=True)


def shown(response) -> list[tuple[str, str]]:
    """The messages shown on the page the admin ended on: (level tag, text)."""
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


# ------------------------------------------------------------------------------------------------------- tests


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_creating_a_project_in_the_admin_goes_through_the_service_and_writes_history(staff, admin_user, team, member):
    add = staff.get(reverse("admin:projects_project_add"))
    data = form_data(add, Project)
    data.update(code="ERP-2027", name="ERP upgrade", receiving_team=team.pk, members=[member.pk])

    response = staff.post(reverse("admin:projects_project_add"), data, follow=True)

    assert response.status_code == 200
    project = Project.objects.get(code="ERP-2027")
    assert project.manager == admin_user  # left empty: the creator manages it (the service's default)
    assert project.created_by == admin_user
    assert list(project.members.all()) == [member]
    created = ProjectEvent.objects.get(project=project)
    assert (created.kind, created.to_stage, created.actor) == (ProjectEventKind.CREATED, Stage.INITIATION, admin_user)


@pytest.mark.django_db
def test_editing_a_project_in_the_admin_records_the_change_and_the_members(staff, project, member, viewer):
    data = form_data(staff.get(change_url(project)), Project)
    data.update(name="CRM roll-out, phase 1", members=[member.pk, viewer.pk])

    staff.post(change_url(project), data, follow=True)

    project.refresh_from_db()
    assert project.name == "CRM roll-out, phase 1"
    assert project.version == 2
    updated = ProjectEvent.objects.get(project=project, kind=ProjectEventKind.UPDATED)
    assert updated.changes == {"name": ["CRM roll-out", "CRM roll-out, phase 1"]}
    added = ProjectEvent.objects.get(project=project, kind=ProjectEventKind.MEMBER_ADDED)
    assert added.changes == {"user": "viewer"}


@pytest.mark.django_db
def test_an_edit_the_service_refuses_is_shown_on_the_form_and_changes_nothing(staff, handover, lead):
    """GIVEN a project with a planned handover (its receiving team is then locked)
    WHEN an administrator changes the receiving team and the name in the admin
    THEN the form comes back with the service's message, and neither change nor any history is written."""
    project = handover.project
    other_team = type(project.receiving_team).objects.create(name="Facilities", lead=lead)
    events_before = ProjectEvent.objects.filter(project=project).count()
    data = form_data(staff.get(change_url(project)), Project)
    data.update(receiving_team=other_team.pk, name="Renamed")

    response = staff.post(change_url(project), data)

    assert response.status_code == 200  # the form again, not a redirect and not a 500
    assert "The receiving team cannot change while a handover is planned" in response.content.decode()
    assert response.context["adminform"].form.errors
    project.refresh_from_db()
    assert (project.name, project.receiving_team_id) == ("CRM roll-out", handover.receiving_team_id)
    assert ProjectEvent.objects.filter(project=project).count() == events_before


@pytest.mark.django_db
def test_move_to_next_stage_calls_the_service_and_writes_the_stage_history(staff, admin_user, project):
    response = action(staff, Project, "move_to_next_stage", [project])

    project.refresh_from_db()
    assert project.stage == Stage.PLANNING
    move = ProjectEvent.objects.get(project=project, kind=ProjectEventKind.STAGE_CHANGED)
    assert (move.from_stage, move.to_stage, move.actor) == (Stage.INITIATION, Stage.PLANNING, admin_user)
    assert ("success", f"{project}: moved to planning.") in shown(response)


@pytest.mark.django_db
def test_move_refused_by_a_gate_shows_the_service_message_and_changes_nothing(staff, project, planning_project):
    """Leaving planning needs a handover plan; the project has none."""
    events_before = ProjectEvent.objects.filter(project=project).count()

    response = action(staff, Project, "move_to_next_stage", [project])

    assert response.status_code == 200
    project.refresh_from_db()
    assert project.stage == Stage.PLANNING
    assert ProjectEvent.objects.filter(project=project).count() == events_before
    (level, text), *_ = shown(response)
    assert level == "error"
    assert "Leaving planning needs a handover plan" in text


@pytest.mark.django_db
def test_each_selected_project_is_reported_on_its_own(staff, project, manager):
    """One refusal does not stop the others: each project gets its own message."""
    blocked = ps.project_create(by=manager, code="NO-TEAM", name="No receiving team yet")

    response = action(staff, Project, "move_to_next_stage", [project, blocked])

    project.refresh_from_db()
    blocked.refresh_from_db()
    assert (project.stage, blocked.stage) == (Stage.PLANNING, Stage.INITIATION)
    levels = {text.split(":")[0]: level for level, text in shown(response)}
    assert levels == {str(project): "success", str(blocked): "error"}


@pytest.mark.django_db
def test_a_final_project_has_no_next_stage(staff, project, manager):
    ps.project_transition(project=project, to=Stage.CANCELLED, by=manager, reason="Stopped.")

    response = action(staff, Project, "move_to_next_stage", [project])

    assert shown(response) == [("error", f"{project}: The project is cancelled; it cannot move any more.")]


@pytest.mark.django_db
def test_cancel_asks_for_a_reason_then_stores_it_in_the_history(staff, project):
    page = action(staff, Project, "cancel_projects", [project])
    assert page.status_code == 200
    assert "reason" in page.content.decode().lower()
    project.refresh_from_db()
    assert project.stage == Stage.INITIATION  # nothing happens before the reason is given

    empty = confirm(staff, Project, "cancel_projects", [project], reason="  ")
    assert "This field is required" in empty.content.decode()

    confirm(staff, Project, "cancel_projects", [project], reason="Budget moved to the ERP programme.")

    project.refresh_from_db()
    assert project.stage == Stage.CANCELLED
    move = ProjectEvent.objects.get(project=project, kind=ProjectEventKind.STAGE_CHANGED)
    assert move.reason == "Budget moved to the ERP programme."


@pytest.mark.django_db
def test_stage_is_never_an_editable_field(staff, project):
    form = staff.get(change_url(project)).context["adminform"].form
    assert "stage" not in form.fields
    assert not {"actual_handover", "has_handover_plan", "version"} & set(form.fields)


@pytest.mark.django_db
def test_project_history_is_read_only(staff, project, manager):
    ps.project_transition(project=project, to=Stage.PLANNING, by=manager)
    event = ProjectEvent.objects.get(project=project)

    assert staff.get(change_url(event)).status_code == 200  # a view page
    assert staff.post(change_url(event), {"reason": "rewritten"}).status_code == 403
    assert staff.get(reverse("admin:projects_projectevent_add")).status_code == 403
    assert staff.get(reverse("admin:projects_projectevent_delete", args=[event.pk])).status_code == 403
