"""Forms of the handover pages. They parse input (a date is a date); the services decide what is acceptable.

Fields the services require (a reason, a justification, evidence...) are optional here on purpose: left empty,
the service refuses and its message is shown next to the field, worded the same as in the API.
"""

from typing import Any, cast

from django import forms
from django.db.models import Case, QuerySet, Value, When

from config.web import PersonChoiceField, ServiceForm, YesNoField
from operations.models import OperationsTeam, Service

from .choices import HandoverStatus, Risk
from .models import Handover, StallFlag
from .readiness import SHARE_FIELDS
from .selectors import handover_overdue_q

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _text(label: str, *, rows: int = 2, help_text: str = "", placeholder: str = "") -> forms.CharField:
    attrs: dict[str, Any] = {"rows": rows}
    if placeholder:
        attrs["placeholder"] = placeholder
    return forms.CharField(label=label, required=False, help_text=help_text, widget=forms.Textarea(attrs=attrs))


class ItemForm(ServiceForm):
    """A move on one checklist item; ``version`` is the item's version the page showed (lost updates are refused)."""

    version = forms.IntegerField(required=False, widget=forms.HiddenInput)


class CompleteForm(ItemForm):
    url = forms.CharField(
        label="Evidence link", required=False, widget=forms.URLInput(attrs={"placeholder": "https://"})
    )
    text = _text("Evidence note", help_text="A link, a note, or both.")
    field_aliases = {"evidence": "url", "evidence_url": "url", "evidence_text": "text"}


class EvidenceForm(ServiceForm):
    url = forms.CharField(label="Link", required=False, widget=forms.URLInput(attrs={"placeholder": "https://"}))
    text = _text("Note")


class VerifyForm(ItemForm):
    compact = True  # shown inline next to its button: the label is for screen readers, the placeholder for eyes
    note = forms.CharField(
        label="Verification note (optional)",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Note (optional)"}),
    )


class SendBackForm(ItemForm):
    reason = _text("What is missing?")


class WaiveForm(ItemForm):
    justification = _text("Justification")


class ApproveWaiverForm(ItemForm):
    pass


class NotApplicableForm(ItemForm):
    reason = _text("Why it does not apply")


class ReopenForm(ItemForm):
    # Required when operations reopens done or verified work (item_reopen says so next to the field).
    reason = forms.CharField(label="Reason", required=False)


class CommentForm(ServiceForm):
    body = _text("Comment", rows=2)


# ------------------------------------------------------------------------------------------ handover moves


class SubmitForm(ServiceForm):
    pass


class AcceptForm(ServiceForm):
    note = _text("Note (optional)")


class ConditionForm(forms.Form):
    """One condition of a conditional acceptance; a row left entirely empty is ignored."""

    text = _text("Condition", rows=2)
    owner = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="Owner")
    due_date = forms.DateField(required=False, label="Due date", widget=DATE)

    def __init__(self, *args, owners=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The people are read once for the whole formset, not once per row.
        self.owners = {user.pk: user for user in owners}
        cast(forms.ChoiceField, self.fields["owner"]).choices = [("", "Choose…")] + [
            (user.pk, user.get_full_name() or user.get_username()) for user in owners
        ]

    @property
    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {}) or {}
        return not (data.get("text") or "").strip() and data.get("owner") is None and data.get("due_date") is None


# One empty row to start with; "Add another condition" brings one more each time, up to ten.
ConditionFormSet = forms.formset_factory(ConditionForm, extra=1, max_num=10, absolute_max=10)


class AcceptWithConditionsForm(ServiceForm):
    note = _text("Note (optional)")


class ReturnForm(ServiceForm):
    reason = _text("Why is it returned?", rows=3)
    items = forms.TypedMultipleChoiceField(
        label="Items to send back", required=False, coerce=int, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, items=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["items"]).choices = [(item.pk, item.title) for item in items]


class HypercareForm(ServiceForm):
    ends_on = forms.DateField(label="Hypercare ends on", required=False, widget=DATE)
    exit_criteria = _text("Exit criteria", rows=3, placeholder="For instance: fewer than 5 P2 incidents a week")


class CompleteHandoverForm(ServiceForm):
    note = _text("Note (optional)")


class CancelForm(ServiceForm):
    reason = _text("Why is it cancelled?")


# ------------------------------------------------------------------------------------------------ stalls


class AcknowledgeForm(ServiceForm):
    note = _text("What happens next?")


class SnoozeForm(ServiceForm):
    until = forms.DateTimeField(label="Snooze until", required=False, widget=DATETIME)
    reason = forms.CharField(label="Reason", required=False)


class ConditionMetForm(ServiceForm):
    note = forms.CharField(label="Note (optional)", required=False)


class SavedViewForm(ServiceForm):
    """Save the filters of the page it is on (its query string, ``query``) as a named view."""

    # The service checks them all, in its own words: the name next to its field, the page and the filters (hidden
    # fields) at the top of the form.
    field_aliases = {"page": "", "query": ""}

    name = forms.CharField(label="Save this view as", required=False, max_length=200)
    page = forms.CharField(widget=forms.HiddenInput, required=False)
    query = forms.CharField(widget=forms.HiddenInput, required=False)


# ------------------------------------------------------------------------------------------------ planning


class PlanHandoverForm(ServiceForm):
    # The choices are the constructor's.
    template: forms.ModelChoiceField = forms.ModelChoiceField(queryset=None, required=False, label="Checklist template")
    operations_owner = PersonChoiceField(queryset=None, required=False, label="Operations owner")
    target_date = forms.DateField(required=False, label="Target date", widget=DATE)
    service: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None, required=False, label="Receiving service (optional)"
    )
    deliverables = _text("Deliverables", rows=3, placeholder="What the project hands over")

    def __init__(self, *args, templates, owners, services, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (("template", templates), ("operations_owner", owners), ("service", services)):
            cast(forms.ModelChoiceField, self.fields[name]).queryset = queryset


# ------------------------------------------------------------------------------------------------ list pages


class HandoverListForm(forms.Form):
    """The filters of the handovers list page, named as the API list's (``GET /api/v1/handovers/``), and its order.

    Invalid values are the form's errors (a 400 page naming the field), never silently ignored: a link or a saved
    view that filters must not quietly show everything. ``project`` is an id (a link from a project's page), kept
    in a hidden field so that filtering further does not drop it.
    """

    ORDERINGS = {"target_date": "Target date", "readiness": "Readiness, least ready first", "status": "Status"}

    status = forms.MultipleChoiceField(
        label="Status", choices=HandoverStatus.choices, required=False, widget=forms.SelectMultiple(attrs={"size": 3})
    )
    team = forms.ModelChoiceField(
        label="Receiving team", queryset=OperationsTeam.objects.order_by("name"), required=False, empty_label="All"
    )
    operations_owner = PersonChoiceField(label="Operations owner", queryset=None, required=False, empty_label="Anyone")
    manager = PersonChoiceField(label="Project manager", queryset=None, required=False, empty_label="Anyone")
    service = forms.ModelChoiceField(
        label="Service", queryset=Service.objects.order_by("name"), required=False, empty_label="All"
    )
    has_open_stall = YesNoField(label="Open stall flag")
    overdue = YesNoField(label="Overdue")
    readiness_risk = forms.ChoiceField(
        label="Readiness of",
        choices=[("", "Any"), *Risk.choices, ("overall", "Overall")],
        required=False,
        help_text="With “below”: the share verified.",
    )
    readiness_below = forms.FloatField(
        label="below (0 to 1)", min_value=0, max_value=1, required=False, widget=forms.NumberInput(attrs={"step": 0.05})
    )
    project: forms.ModelChoiceField = forms.ModelChoiceField(
        label="Project", queryset=None, required=False, widget=forms.HiddenInput
    )
    ordering = forms.ChoiceField(label="Order by", choices=list(ORDERINGS.items()), required=False)

    def __init__(self, *args, projects, owners, managers, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (("project", projects), ("operations_owner", owners), ("manager", managers)):
            cast(forms.ModelChoiceField, self.fields[name]).queryset = queryset

    def clean(self):
        cleaned = super().clean() or {}
        given = {name for name in ("readiness_risk", "readiness_below") if cleaned.get(name) not in (None, "")}
        if len(given) == 1:
            (missing,) = {"readiness_risk", "readiness_below"} - given
            if missing not in self.errors:
                self.add_error(
                    missing, "readiness_risk and readiness_below go together (readiness_risk=overall for all risks)."
                )
        return cleaned

    def filter(self, handovers: QuerySet[Handover]) -> QuerySet[Handover]:
        """``handovers`` filtered and ordered as the (valid) form says; readiness from the stored shares."""
        data = self.cleaned_data
        for name, lookup in (
            ("team", "receiving_team"),
            ("operations_owner", "operations_owner"),
            ("manager", "project__manager"),
            ("service", "service"),
            ("project", "project"),
        ):
            if data[name] is not None:
                handovers = handovers.filter(**{lookup: data[name]})
        if data["status"]:
            handovers = handovers.filter(status__in=data["status"])
        if data["has_open_stall"] is not None:
            flagged = StallFlag.objects.filter(resolved_at__isnull=True).values("handover_id")
            handovers = (
                handovers.filter(pk__in=flagged) if data["has_open_stall"] else handovers.exclude(pk__in=flagged)
            )
        if data["overdue"] is not None:
            overdue = handover_overdue_q()
            handovers = handovers.filter(overdue) if data["overdue"] else handovers.exclude(overdue)
        if data["readiness_risk"] and data["readiness_below"] is not None:
            handovers = handovers.filter(**{f"{SHARE_FIELDS[data['readiness_risk']]}__lt": data["readiness_below"]})
        ordering = data["ordering"] or "target_date"
        if ordering == "readiness":
            return handovers.order_by("readiness_share", "target_date", "id")
        if ordering == "status":
            workflow = Case(*(When(status=s, then=Value(i)) for i, s in enumerate(HandoverStatus)), default=Value(99))
            return handovers.alias(_step=workflow).order_by("_step", "target_date", "id")
        return handovers.order_by("target_date", "id")
