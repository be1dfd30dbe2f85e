"""Forms of the project pages. They parse input; ``projects.services`` decides what is acceptable."""

from typing import cast

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import F, QuerySet

from config.web import PeopleChoiceField, PersonChoiceField, ServiceForm, YesNoField
from operations.models import OperationsTeam

from .choices import Stage
from .models import Project
from .selectors import overdue_q

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class MoveForm(ServiceForm):
    """A stage move; back and cancel moves ask for a reason (the service says so if it is missing)."""

    reason = forms.CharField(label="Reason", required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ProjectForm(ServiceForm):
    """The project's details; the stage moves only through the stage buttons."""

    code = forms.CharField(label="Code", required=False, help_text="2 to 30 capital letters, digits or hyphens.")
    name = forms.CharField(label="Name", required=False)
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    sponsor = forms.CharField(label="Sponsor", required=False, help_text="The accountable executive.")
    # The choices are the constructor's.
    manager = PersonChoiceField(queryset=None, label="Project manager", required=False)
    receiving_team: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None, label="Receiving operations team", required=False
    )
    members = PeopleChoiceField(
        queryset=None, label="Members", required=False, widget=forms.SelectMultiple(attrs={"size": 6})
    )
    planned_start = forms.DateField(label="Planned start", required=False, widget=DATE)
    planned_handover = forms.DateField(label="Planned handover", required=False, widget=DATE)
    confidential = forms.BooleanField(
        label="Confidential",
        required=False,
        help_text="Visible only to its manager, members, the receiving team and administrators.",
    )

    def __init__(self, *args, may_choose_manager: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        people = get_user_model().objects.filter(is_active=True).order_by("first_name", "last_name", "username")
        for name in ("manager", "members"):
            cast(forms.ModelChoiceField, self.fields[name]).queryset = people
        cast(forms.ModelChoiceField, self.fields["receiving_team"]).queryset = OperationsTeam.objects.order_by("name")
        if not may_choose_manager:
            # Only an administrator names another manager (project_create / project_update say so too).
            del self.fields["manager"]


class ProjectListForm(forms.Form):
    """The filters of the projects list page, named as the API list's (``GET /api/v1/projects/``), and its order.

    Invalid values are the form's errors (a 400 page naming the field), never silently ignored: a link or a saved
    view that filters must not quietly show everything.
    """

    ORDERINGS = {
        "planned_handover": "Planned handover",
        "-stage_changed_at": "Stage changed, latest first",
        "code": "Code",
    }

    stage = forms.MultipleChoiceField(
        label="Stage", choices=Stage.choices, required=False, widget=forms.SelectMultiple(attrs={"size": 3})
    )
    team = forms.ModelChoiceField(
        label="Receiving team", queryset=OperationsTeam.objects.order_by("name"), required=False, empty_label="All"
    )
    manager = PersonChoiceField(label="Project manager", queryset=None, required=False, empty_label="Anyone")
    overdue = YesNoField(label="Overdue")
    ordering = forms.ChoiceField(label="Order by", choices=list(ORDERINGS.items()), required=False)

    def __init__(self, *args, managers, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["manager"]).queryset = managers

    def filter(self, projects: QuerySet[Project]) -> QuerySet[Project]:
        """``projects`` filtered and ordered as the (valid) form says."""
        data = self.cleaned_data
        if data["stage"]:
            projects = projects.filter(stage__in=data["stage"])
        if data["team"]:
            projects = projects.filter(receiving_team=data["team"])
        if data["manager"]:
            projects = projects.filter(manager=data["manager"])
        if data["overdue"] is not None:
            overdue = overdue_q()
            projects = projects.filter(overdue) if data["overdue"] else projects.exclude(overdue)
        ordering = data["ordering"] or "planned_handover"
        if ordering == "planned_handover":
            return projects.order_by(F("planned_handover").asc(nulls_last=True), "code")
        if ordering == "-stage_changed_at":
            return projects.order_by(F("stage_changed_at").desc(nulls_last=True), "code")
        return projects.order_by("code")
