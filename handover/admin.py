"""Admin for checklist templates, handovers, their checklists and their history.

Status fields are never editable here: a handover or an item changes state only through the actions below, each of
which calls the service that owns the move and reports, object by object, what it did or why it was refused.
"""

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from operations.admin import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ServiceBackedAdmin,
    adopt,
    call_service,
    changes_from,
    report_each,
    with_form,
    with_reason,
)

from . import services
from .choices import OPEN_STATUSES, EventType, HandoverStatus
from .models import (
    Activity,
    AdminEvent,
    ApiToken,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    DetectionRun,
    Event,
    Evidence,
    Handover,
    Notification,
    OutboxSweep,
    StallFlag,
    TemplateItem,
    WebhookDelivery,
    WebhookSubscription,
)
from .readiness import stored_readiness
from .stalls import services as stalls
from .tokens import services as tokens
from .webhooks import services as webhooks

# Typed as ``formfield_overrides`` is: a dict of one field class would not be accepted where any field class is.
FormfieldOverrides = Mapping[type[models.Field], Mapping[str, Any]]
ONE_LINE: FormfieldOverrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 50})}}
HTTPS: FormfieldOverrides = {models.URLField: {"assume_scheme": "https"}}  # a link typed without a scheme is https


def _item_label(item: ChecklistItem) -> str:
    """An item named with its project, since one action may cover items of several handovers."""
    return f"{item.handover.project.code} · {item.title}"


def _short(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# ------------------------------------------------------------------------------------------------ templates


class TemplateItemInline(admin.TabularInline):
    model = TemplateItem
    fields = ("position", "key", "title", "risk", "side", "mandatory", "guidance")
    extra = 0
    formfield_overrides = ONE_LINE


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(ServiceBackedAdmin):
    """A template and its items are one definition, saved together by ``template_create``/``template_update``.

    Changing the items or the description installs a new version and deactivates the old one; live handovers keep
    their own copy of the items (docs/domain.md "Checklist items"), so editing a template never rewrites one.
    """

    list_display = ("name", "version", "kind", "is_active", "item_count", "handover_count", "updated_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "description")
    fields = ("kind", "name", "description", "is_active", "version", "created_at", "updated_at")
    inlines = (TemplateItemInline,)
    actions = ("activate", "deactivate")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_items=models.Count("items", distinct=True), _handovers=models.Count("handovers", distinct=True))
        )

    @admin.display(description="items", ordering="_items")
    def item_count(self, template):
        return template._items

    @admin.display(description="handovers", ordering="_handovers")
    def handover_count(self, template):
        return template._handovers

    def get_readonly_fields(self, request, obj=None):
        # The service keeps a template's kind and name across versions; handovers record the version they used.
        return (
            ("kind", "name", "version", "created_at", "updated_at") if obj else ("version", "created_at", "updated_at")
        )

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: handovers point at the version they were built from

    def save_model(self, request, obj, form, change):
        """Nothing yet: the template is written with its items in ``save_related``."""

    def save_related(self, request, form, formsets, change):
        items = next((f for f in formsets if f.model is TemplateItem), None)
        specs = None
        if items is not None:
            items.save(commit=False)  # fills the lists the change message reads; writes nothing
            kept = [
                f
                for f in items.forms
                if f.cleaned_data and not f.cleaned_data.get("DELETE") and (f.instance.pk or f.has_changed())
            ]
            kept.sort(key=lambda f: f.cleaned_data.get("position") or 0)
            specs = [
                services.TemplateItemSpec(
                    key=f.cleaned_data["key"],
                    title=f.cleaned_data["title"],
                    risk=f.cleaned_data["risk"],
                    side=f.cleaned_data["side"],
                    mandatory=f.cleaned_data["mandatory"],
                    guidance=f.cleaned_data.get("guidance", ""),
                )
                for f in kept
            ]
        data, obj = form.cleaned_data, form.instance
        if change:
            before = obj.version
            # Only what the administrator changed: the service compares a definition with the template's latest
            # version, so re-sending an older version unchanged would install it again as a new one.
            template = call_service(
                services.template_update,
                template=obj,
                by=request.user,
                description=data.get("description", "") if "description" in form.changed_data else None,
                is_active=data.get("is_active") if "is_active" in form.changed_data else None,
                items=specs if items is not None and items.has_changed() else None,
            )
            if template.version != before:
                self.message_user(
                    request,
                    f"Saved as {template}; version {before} is now inactive. Live handovers keep their own items.",
                    messages.INFO,
                )
        else:
            template = call_service(
                services.template_create,
                by=request.user,
                kind=data["kind"],
                name=data["name"],
                description=data.get("description", ""),
                items=specs or [],
            )
            if not data.get("is_active", True):
                template = call_service(services.template_update, template=template, by=request.user, is_active=False)
        adopt(obj, template)
        obj.version = template.version

    @admin.action(description="Activate (may start new handovers)")
    def activate(self, request, queryset):
        report_each(
            self,
            request,
            queryset,
            lambda t: services.template_update(template=t, by=request.user, is_active=True),
            "active.",
        )

    @admin.action(description="Deactivate (no new handovers)")
    def deactivate(self, request, queryset):
        report_each(
            self,
            request,
            queryset,
            lambda t: services.template_update(template=t, by=request.user, is_active=False),
            "inactive.",
        )


# ------------------------------------------------------------------------------------------------ handovers


class ChecklistItemInline(admin.TabularInline):
    """The checklist: planning fields are edited here (through ``item_update``/``item_add``), states are not."""

    model = ChecklistItem
    fields = ("title", "risk", "side", "mandatory", "assignee", "due_date", "status", "done_at", "verified_by")
    status_fields = ("status", "done_at", "verified_by")
    autocomplete_fields = ("assignee",)
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("assignee", "verified_by")

    def _frozen(self, obj) -> bool:
        # After a decision to accept, the checklist is frozen; the services refuse edits, so don't offer them.
        return obj is not None and obj.status not in OPEN_STATUSES

    def get_readonly_fields(self, request, obj=None):
        return self.fields if self._frozen(obj) else self.status_fields

    def has_add_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_add_permission(request, obj)


class ConditionInline(ReadOnlyInline):
    model = Condition
    fields = ("text", "owner", "due_date", "status", "met_by", "met_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner", "met_by")


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = ("decided_at", "kind", "decided_by", "reason")
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("decided_by")


class CommentInline(admin.TabularInline):
    """Comments on the handover; an administrator may add one (through ``comment_add``), never edit one."""

    model = Comment
    fields = ("created_at", "author", "item", "body")
    readonly_fields = ("created_at", "author", "item")
    extra = 0
    can_delete = False
    formfield_overrides = ONE_LINE

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author", "item")

    def has_change_permission(self, request, obj=None):
        return False


PLAN_FIELDS = ("deliverables", "target_date", "service", "operations_owner")
HYPERCARE_FIELDS = ("hypercare_ends_on", "hypercare_exit_criteria")
HANDOVER_RECORD = (
    "status",
    "status_changed_at",
    "submitted_at",
    "decided_at",
    "accepted_at",
    "return_count",
    "hypercare_started_at",
    "completed_at",
    "cancel_reason",
    "last_activity_at",
    "version",
    "created_by",
    "created_at",
)


@admin.register(Handover)
class HandoverAdmin(ServiceBackedAdmin):
    list_display = (
        "__str__",
        "status",
        "receiving_team",
        "operations_owner",
        "target_date",
        "readiness",
        "last_activity_at",
    )
    list_filter = ("status", "receiving_team", "template__kind")
    list_select_related = ("project", "receiving_team", "operations_owner")
    search_fields = ("project__code", "project__name", "deliverables", "operations_owner__username")
    date_hierarchy = "target_date"
    autocomplete_fields = ("project", "operations_owner", "service")
    actions = (
        "submit",
        "accept",
        "accept_with_a_condition",
        "return_to_project",
        "start_hypercare",
        "complete_hypercare",
        "cancel",
    )

    @admin.display(description="readiness (mandatory)", ordering="readiness_share")
    def readiness(self, handover):
        # Stored on the handover (handover.readiness): the list reads no item.
        r = stored_readiness(handover).overall
        text = f"{r.verified}/{r.applicable} verified, {r.done}/{r.applicable} done"
        return text + (f", {r.not_applicable} n/a" if r.not_applicable else "")

    @admin.display(description="history")
    def activity_link(self, handover):
        url = reverse("admin:handover_activity_changelist") + f"?handover__id__exact={handover.pk}"
        return format_html('<a href="{}">All activity of this handover</a>', url)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (
                (
                    None,
                    {"fields": ("project", "template", "operations_owner", "target_date", "service", "deliverables")},
                ),
            )
        return (
            (None, {"fields": ("project", "receiving_team", "template", "template_version", *PLAN_FIELDS)}),
            ("Hypercare", {"fields": HYPERCARE_FIELDS}),
            ("Progress", {"fields": ("readiness", "activity_link", *HANDOVER_RECORD)}),
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        fixed = ("project", "receiving_team", "template", "template_version", "readiness", "activity_link")
        plan = () if obj.status in OPEN_STATUSES else PLAN_FIELDS
        hypercare = () if obj.status == HandoverStatus.HYPERCARE else HYPERCARE_FIELDS
        return (*fixed, *plan, *hypercare, *HANDOVER_RECORD)

    def get_inlines(self, request, obj):
        return (ChecklistItemInline, ConditionInline, DecisionInline, CommentInline) if obj else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "template":
            kwargs["queryset"] = ChecklistTemplate.objects.filter(is_active=True)
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False  # a handover is cancelled, never deleted: its decisions and activity stay

    # ------------------------------------------------------------------------------------------------ saves

    def save_model(self, request, obj, form, change):
        if change:
            changes = changes_from(form, services.HANDOVER_EDITABLE + services.HYPERCARE_EDITABLE)
            handover = call_service(services.handover_update, handover=obj, by=request.user, **changes)
            obj.version = handover.version
            return
        data = form.cleaned_data
        handover = call_service(
            services.handover_create,
            project=data["project"],
            template=data["template"],
            operations_owner=data["operations_owner"],
            target_date=data["target_date"],
            service=data.get("service"),
            deliverables=data.get("deliverables", ""),
            by=request.user,
        )
        adopt(obj, handover)

    def save_inline(self, request, parent, obj, changed):
        if isinstance(obj, ChecklistItem):
            if changed is None:
                item = call_service(
                    services.item_add,
                    handover=parent,
                    by=request.user,
                    title=obj.title,
                    risk=obj.risk,
                    side=obj.side,
                    mandatory=obj.mandatory,
                    assignee=obj.assignee,
                    due_date=obj.due_date,
                )
                adopt(obj, item)
            else:
                changes = {name: getattr(obj, name) for name in changed if name in services.ITEM_EDITABLE}
                call_service(services.item_update, item=obj, by=request.user, **changes)
        elif isinstance(obj, Comment) and changed is None:
            comment = call_service(services.comment_add, handover=parent, by=request.user, body=obj.body)
            adopt(obj, comment)

    # ---------------------------------------------------------------------------------------------- actions

    @admin.action(description="Submit to operations")
    def submit(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("project"),
            lambda h: services.handover_submit(handover=h, by=request.user),
            "submitted to operations.",
        )

    @admin.action(description="Accept")
    def accept(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("project"),
            lambda h: services.handover_accept(handover=h, by=request.user, note="Accepted from the admin."),
            "accepted.",
        )

    @admin.action(description="Return to the project (asks for a reason)")
    def return_to_project(self, request, queryset):
        return with_reason(
            self,
            request,
            queryset.select_related("project"),
            action="return_to_project",
            title="Return handovers",
            intro="The reason is recorded with the decision and shown to the project.",
            perform=lambda h, reason: services.handover_return(handover=h, by=request.user, reason=reason),
            done="returned to the project.",
        )

    @admin.action(description="Accept with a condition (asks for it)")
    def accept_with_a_condition(self, request, queryset):
        def perform(handover, data):
            condition = services.ConditionInput(text=data["text"], owner=data["owner"], due_date=data["due_date"])
            return services.handover_accept_with_conditions(
                handover=handover, by=request.user, conditions=[condition], note=data["note"]
            )

        return with_form(
            self,
            request,
            queryset.select_related("project"),
            form=ConditionForm(request.POST if "confirm" in request.POST else None),
            action="accept_with_a_condition",
            title="Accept handovers with a condition",
            intro="The condition is attached to each selected handover's acceptance; it outlives the project as "
            "the operations side's follow-on action. (More conditions per decision: the handover's page.)",
            perform=perform,
            done="accepted with a condition.",
        )

    @admin.action(description="Start hypercare (asks for the window)")
    def start_hypercare(self, request, queryset):
        return with_form(
            self,
            request,
            queryset.select_related("project"),
            form=HypercareForm(request.POST if "confirm" in request.POST else None),
            action="start_hypercare",
            title="Start hypercare",
            intro="Early life support: the project team still supports until the end date and the exit criteria.",
            perform=lambda h, data: services.handover_start_hypercare(
                handover=h, by=request.user, ends_on=data["ends_on"], exit_criteria=data["exit_criteria"]
            ),
            done="in hypercare.",
        )

    @admin.action(description="Complete hypercare")
    def complete_hypercare(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("project"),
            lambda h: services.handover_complete(handover=h, by=request.user, note="Completed from the admin."),
            "completed.",
        )

    @admin.action(description="Cancel (asks for a reason)")
    def cancel(self, request, queryset):
        return with_reason(
            self,
            request,
            queryset.select_related("project"),
            action="cancel",
            title="Cancel handovers",
            intro="Cancelling withdraws the handover plan; the project may then plan a new one.",
            perform=lambda h, reason: services.handover_cancel(handover=h, by=request.user, reason=reason),
            done="cancelled.",
        )


class ConditionForm(forms.Form):
    text = forms.CharField(label="Condition", widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=10_000)
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"), label="Owner"
    )
    due_date = forms.DateField(label="Due date", widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(label="Note (optional)", required=False, max_length=10_000)


class HypercareForm(forms.Form):
    ends_on = forms.DateField(label="Ends on", widget=forms.DateInput(attrs={"type": "date"}))
    exit_criteria = forms.CharField(
        label="Exit criteria", widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=10_000
    )


class EvidenceForm(forms.Form):
    url = forms.URLField(label="Evidence link", required=False, assume_scheme="https", max_length=500)
    text = forms.CharField(label="Evidence note", required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if not (data.get("url") or data.get("text", "").strip()):
            raise forms.ValidationError("Completing an item needs evidence: a link or a note.")
        return data


# ------------------------------------------------------------------------------------------ checklist items


class EvidenceInline(admin.TabularInline):
    """Evidence is added (through ``evidence_add``), never edited."""

    model = Evidence
    fields = ("added_at", "added_by", "url", "text")
    readonly_fields = ("added_at", "added_by")
    extra = 0
    can_delete = False
    formfield_overrides = {**ONE_LINE, **HTTPS}

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("added_by")

    def has_change_permission(self, request, obj=None):
        return False


def _items(queryset):
    return queryset.select_related("handover__project", "handover__receiving_team")


@admin.register(ChecklistItem)
class ChecklistItemAdmin(ServiceBackedAdmin):
    list_display = ("title", "handover", "risk", "side", "mandatory", "status", "assignee", "due_date", "done_at")
    list_filter = ("status", "risk", "side", "mandatory", "handover__status", "handover__receiving_team")
    list_select_related = ("handover__project", "assignee")
    search_fields = ("title", "handover__project__code", "handover__project__name")
    date_hierarchy = "due_date"
    autocomplete_fields = ("assignee",)
    fieldsets = (
        (None, {"fields": ("handover", "title", "guidance", "risk", "side", "mandatory", "assignee", "due_date")}),
        ("Progress", {"fields": services.ITEM_STATE_FIELDS}),
    )
    inlines = (EvidenceInline,)
    actions = ("complete", "verify", "send_back", "waive", "approve_waiver", "mark_not_applicable", "reopen")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.handover.status not in OPEN_STATUSES:
            return ("handover", *services.ITEM_EDITABLE, *services.ITEM_STATE_FIELDS)
        return ("handover", *services.ITEM_STATE_FIELDS)

    def has_add_permission(self, request):
        return False  # items come from the template, or are added on the handover's checklist

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        changes = changes_from(form, services.ITEM_EDITABLE)
        call_service(services.item_update, item=obj, by=request.user, **changes)

    def save_inline(self, request, parent, obj, changed):
        if isinstance(obj, Evidence) and changed is None:
            evidence = call_service(services.evidence_add, item=parent, by=request.user, url=obj.url, text=obj.text)
            adopt(obj, evidence)

    @admin.action(description="Verify")
    def verify(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("handover__project"),
            lambda item: services.item_verify(item=item, by=request.user),
            "verified.",
            label=_item_label,
        )

    def _with_reason(self, request, queryset, *, action, title, intro, perform, done, label="Reason"):
        return with_reason(
            self,
            request,
            _items(queryset),
            action=action,
            title=title,
            intro=intro,
            perform=perform,
            done=done,
            label=label,
        )

    @admin.action(description="Complete (asks for evidence)")
    def complete(self, request, queryset):
        return with_form(
            self,
            request,
            _items(queryset),
            form=EvidenceForm(request.POST if "confirm" in request.POST else None),
            action="complete",
            title="Complete checklist items",
            intro="The evidence (a link or a note) is attached to each selected item.",
            perform=lambda item, data: services.item_complete(
                item=item, by=request.user, evidence_url=data["url"], evidence_text=data["text"]
            ),
            done="done.",
        )

    @admin.action(description="Send back (asks for a reason)")
    def send_back(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            action="send_back",
            title="Send items back",
            intro="Each item goes back to open with the reason, for the project side to fix.",
            perform=lambda item, reason: services.item_send_back(item=item, by=request.user, reason=reason),
            done="sent back.",
        )

    @admin.action(description="Waive (asks for a justification)")
    def waive(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            action="waive",
            title="Waive items",
            intro="Waived by the operations owner, a waiver is approved at once; asked for by the manager, it waits "
            "for the operations owner's approval.",
            label="Justification",
            perform=lambda item, why: services.item_waive(item=item, by=request.user, justification=why),
            done="waived.",
        )

    @admin.action(description="Not applicable (asks for a reason)")
    def mark_not_applicable(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            action="mark_not_applicable",
            title="Mark items not applicable",
            intro="Readiness shows not-applicable items apart; they never count as met.",
            perform=lambda item, reason: services.item_mark_not_applicable(item=item, by=request.user, reason=reason),
            done="not applicable.",
        )

    @admin.action(description="Reopen (asks for a reason)")
    def reopen(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            action="reopen",
            title="Reopen items",
            intro="Each item goes back to open.",
            perform=lambda item, reason: services.item_reopen(item=item, by=request.user, reason=reason),
            done="reopened.",
        )

    @admin.action(description="Approve waiver")
    def approve_waiver(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("handover__project"),
            lambda item: services.item_approve_waiver(item=item, by=request.user),
            "waiver approved.",
            label=_item_label,
        )


# --------------------------------------------------------------------------------------- records and history


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("decided_at", "handover", "kind", "decided_by", "short_reason")
    list_filter = ("kind", "handover__receiving_team")
    list_select_related = ("handover__project", "decided_by")
    search_fields = ("handover__project__code", "reason")
    date_hierarchy = "decided_at"
    fields = ("handover", "kind", "decided_by", "decided_at", "reason", "checklist")

    @admin.display(description="reason")
    def short_reason(self, decision):
        return _short(decision.reason)

    @admin.display(description="checklist at the decision")
    def checklist(self, decision):
        return format_html("<pre>{}</pre>", json.dumps(decision.snapshot, indent=2, ensure_ascii=False))

    def get_readonly_fields(self, request, obj=None):
        return self.fields


@admin.register(Condition)
class ConditionAdmin(ReadOnlyAdmin):
    """Conditions are set when operations accepts with conditions; here they can only be marked met."""

    list_display = ("short_text", "handover", "owner", "due_date", "status", "met_at")
    list_filter = ("status", "handover__receiving_team")
    list_select_related = ("handover__project", "owner")
    search_fields = ("text", "handover__project__code")
    date_hierarchy = "due_date"
    actions = ("mark_met",)

    @admin.display(description="condition")
    def short_text(self, condition):
        return _short(condition.text)

    @admin.action(description="Mark met")
    def mark_met(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("handover__project"),
            lambda c: services.condition_mark_met(condition=c, by=request.user, note="Marked met from the admin."),
            "marked met.",
        )


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "handover", "item", "verb", "from_state", "to_state", "actor", "short_message")
    list_filter = ("verb", "handover__receiving_team")
    list_select_related = ("handover__project", "item", "actor")
    search_fields = ("handover__project__code", "item__title", "message")
    date_hierarchy = "created_at"

    @admin.display(description="message")
    def short_message(self, activity):
        return _short(activity.message)


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ("added_at", "item", "handover", "url", "short_text", "added_by")
    list_select_related = ("item__handover__project", "added_by")
    search_fields = ("url", "text", "item__title", "item__handover__project__code")
    date_hierarchy = "added_at"

    @admin.display(description="handover", ordering="item__handover")
    def handover(self, evidence):
        return evidence.item.handover

    @admin.display(description="text")
    def short_text(self, evidence):
        return _short(evidence.text)


@admin.register(Comment)
class CommentAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "handover", "item", "author", "short_body")
    list_select_related = ("handover__project", "item", "author")
    search_fields = ("body", "handover__project__code")
    date_hierarchy = "created_at"

    @admin.display(description="comment")
    def short_body(self, comment):
        return _short(comment.body)


# ------------------------------------------------------------------------------------------ stalls and outbox


@admin.register(StallFlag)
class StallFlagAdmin(ReadOnlyAdmin):
    """Flags are opened and resolved by the detector; the operations side acknowledges or snoozes them."""

    list_display = ("handover", "rule", "opened_at", "resolved_at", "acknowledged_at", "snoozed_until", "escalated_at")
    list_filter = ("rule", ("resolved_at", admin.EmptyFieldListFilter), "handover__receiving_team")
    list_select_related = ("handover__project",)
    search_fields = ("handover__project__code", "acknowledge_note", "snooze_reason")
    date_hierarchy = "opened_at"
    actions = ("acknowledge", "snooze_a_week")

    @admin.action(description="Acknowledge (asks for a note)")
    def acknowledge(self, request, queryset):
        return with_reason(
            self,
            request,
            queryset.select_related("handover__project"),
            action="acknowledge",
            title="Acknowledge stall flags",
            intro="Say what happens next; an acknowledged flag is not escalated.",
            label="Note",
            perform=lambda f, note: stalls.stall_acknowledge(flag=f, by=request.user, note=note),
            done="acknowledged.",
        )

    @admin.action(description="Snooze for a week (asks for a reason)")
    def snooze_a_week(self, request, queryset):
        until = timezone.now() + timedelta(days=7)
        return with_reason(
            self,
            request,
            queryset.select_related("handover__project"),
            action="snooze_a_week",
            title="Snooze stall flags for a week",
            intro="A snoozed flag stays visible but sends nothing until the date.",
            perform=lambda f, reason: stalls.stall_snooze(flag=f, by=request.user, until=until, reason=reason),
            done=f"snoozed until {timezone.localtime(until):%Y-%m-%d %H:%M}.",
        )


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "recipient", "channel", "kind", "status", "attempts", "sent_at", "subject")
    list_filter = ("status", "channel", "kind")
    list_select_related = ("recipient",)
    search_fields = ("subject", "recipient__username")
    date_hierarchy = "created_at"


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "type", "handover")
    list_filter = ("type",)
    list_select_related = ("handover__project",)
    search_fields = ("type", "dedupe_key")
    date_hierarchy = "created_at"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event", "subscription", "status", "attempts", "last_status_code", "delivered_at")
    list_filter = ("status",)
    list_select_related = ("event", "subscription")
    search_fields = ("subscription__url", "last_error")
    date_hierarchy = "created_at"


@admin.register(DetectionRun)
class DetectionRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "source", "finished_at", "opened", "resolved", "escalated", "reminded", "queries")
    list_filter = ("source",)
    date_hierarchy = "started_at"


@admin.register(OutboxSweep)
class OutboxSweepAdmin(ReadOnlyAdmin):
    list_display = ("name", "finished_at", "freed")


@admin.register(AdminEvent)
class AdminEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "subject", "actor")
    list_filter = ("kind",)
    search_fields = ("subject", "actor__username")
    list_select_related = ("actor",)
    date_hierarchy = "created_at"


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=EventType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ("url", "description", "events", "is_active", "include_confidential")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceBackedAdmin):
    form = WebhookForm
    list_display = ("url", "description", "event_list", "is_active", "include_confidential", "owner", "created_at")
    list_filter = ("is_active", "include_confidential")
    list_select_related = ("owner",)
    search_fields = ("url", "description")

    @admin.display(description="events")
    def event_list(self, subscription):
        return ", ".join(subscription.events) or "all"

    def get_readonly_fields(self, request, obj=None):
        # Receivers verify signatures with the secret, so an administrator needs to read it.
        return ("secret", "owner", "created_at") if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            changes = changes_from(form, webhooks.WEBHOOK_FIELDS)
            call_service(webhooks.webhook_update, subscription=obj, by=request.user, **changes)
            return
        data = form.cleaned_data
        subscription = call_service(
            webhooks.webhook_create,
            by=request.user,
            url=data["url"],
            events=data.get("events") or (),
            description=data.get("description", ""),
            include_confidential=data.get("include_confidential", False),
        )
        if not data.get("is_active", True):
            call_service(webhooks.webhook_update, subscription=subscription, by=request.user, is_active=False)
        adopt(obj, subscription)

    def delete_model(self, request, obj):
        webhooks.webhook_delete(subscription=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for subscription in queryset:
            webhooks.webhook_delete(subscription=subscription, by=request.user)


_SECRET_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}{% load admin_urls %}
{% block content %}
<p>The token <strong>{{ token }}</strong> acts as <strong>{{ token.user }}</strong>
{% if token.read_only %}(read-only){% endif %}. Copy its secret now: only a hash is kept, and it is not shown again.</p>
<p><input type="text" readonly size="70" value="{{ secret }}" onclick="this.select()"></p>
<p><a class="button" href="{% url opts|admin_urlname:'changelist' %}">Done</a></p>
{% endblock %}"""
)


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name", "read_only", "expires_at")


@admin.register(ApiToken)
class ApiTokenAdmin(ServiceBackedAdmin):
    """Tokens are created (the secret is shown once) and revoked; never edited."""

    form = ApiTokenForm
    list_display = ("name", "prefix", "user", "read_only", "expires_at", "last_used_at", "revoked_at", "created_by")
    list_filter = ("read_only", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("user", "created_by")
    search_fields = ("name", "prefix", "user__username")
    autocomplete_fields = ("user",)
    actions = ("revoke",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        token, secret = call_service(
            tokens.token_create,
            by=request.user,
            user=data["user"],
            name=data["name"],
            read_only=data.get("read_only", False),
            expires_at=data.get("expires_at"),
        )
        adopt(obj, token)
        request._new_token_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        # The secret exists only in this response: not in a message (cookie or session), not in the log entry.
        context = {
            **self.admin_site.each_context(request),
            "title": "Token created",
            "opts": self.opts,
            "token": obj,
            "secret": request._new_token_secret,
        }
        return HttpResponse(_SECRET_PAGE.render(context, request))

    @admin.action(description="Revoke")
    def revoke(self, request, queryset):
        report_each(
            self,
            request,
            queryset,
            lambda t: tokens.token_revoke(token=t, by=request.user),
            "revoked.",
        )
