"""Forms of the project pages. They parse input; ``projects.services`` decides what is acceptable."""

from typing import cast

from django import forms
from django.contrib.auth import get_user_model

from config.web import PeopleChoiceField, PersonChoiceField, ServiceForm
from operations.models import OperationsTeam

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
