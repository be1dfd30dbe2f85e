"""Forms of the handover pages. They parse input (a date is a date); the services decide what is acceptable.

Fields the services require (a reason, a justification, evidence...) are optional here on purpose: left empty,
the service refuses and its message is shown next to the field, worded the same as in the API.
"""

from typing import Any, cast

from django import forms

from config.web import PersonChoiceField, ServiceForm

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
