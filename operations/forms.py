"""Forms of the operations pages; ``operations.services`` decides what is acceptable."""

from django import forms

from config.web import ServiceForm


class ReadingForm(ServiceForm):
    """A KPI reading: the value as typed (the service says if it is not a number), when it was measured, a note."""

    value = forms.CharField(label="Value", required=False, widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    measured_at = forms.DateTimeField(
        label="Measured at (optional)",
        required=False,
        help_text="Empty: now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    note = forms.CharField(label="Note (optional)", required=False)
