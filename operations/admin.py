"""Admin for operations teams, services and KPIs, and the helpers every app's admin shares.

The admin never writes a domain row itself: forms, inlines and actions call the services, so the same rules and
the same audit rows apply as in the API and the web UI. The shared helpers live here because ``operations`` is the
app the others depend on (``projects`` and ``handover`` import it, never the reverse).
"""

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpResponse
from django.template import engines
from django.utils import timezone

from config.errors import DomainError

from . import services
from .models import Kpi, KpiReading, OperationsEvent, OperationsTeam, Service

# ------------------------------------------------------------------------------------------- shared helpers


class ServiceRefused(Exception):
    """Carries a service's refusal out of ``save_model``/``save_related`` so the admin's transaction rolls back."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.error = error


def call_service(function: Callable, /, **kwargs):
    """Call a service from a form save; a refusal becomes ``ServiceRefused`` (shown on the form, never a 500)."""
    try:
        return function(**kwargs)
    except DomainError as error:
        raise ServiceRefused(error) from error


def _form_with_refusal(form_class: type[forms.ModelForm], error: DomainError) -> type[forms.ModelForm]:
    class RefusedForm(form_class):  # type: ignore[misc, valid-type]
        def clean(self):
            cleaned = super().clean()
            self.add_error(error.field if error.field in self.fields else None, error.message)
            return cleaned

    RefusedForm.__name__ = form_class.__name__
    return RefusedForm


class ServiceBackedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves go through services.

    ``save_model``/``save_related``/``save_formset`` call the services through ``call_service``. When a service
    refuses, the admin's transaction is rolled back (nothing half-saved, no log entry) and the same form is shown
    again, with the user's input and the service's message as a form error.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            request._service_refusal = refused.error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, "_service_refusal", None)
        return form if error is None else _form_with_refusal(form, error)

    def save_related(self, request, form, formsets, change):
        # Many-to-many fields are saved by the services (``save_model``/``save_members``), not by ``save_m2m``.
        self.save_members(request, form.instance, form, change)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_members(self, request, obj, form, change) -> None:
        """Save many-to-many changes through the services; the default model forms here have none."""

    def save_formset(self, request, form, formset, change):
        # ``save(commit=False)`` fills new/changed/deleted_objects for the change message and writes nothing;
        # the admin subclass writes through its services in ``save_inline``.
        formset.save(commit=False)
        for obj in formset.new_objects:
            self.save_inline(request, form.instance, obj, None)
        for obj, changed in formset.changed_objects:
            self.save_inline(request, form.instance, obj, changed)

    def save_inline(self, request, parent, obj, changed: list[str] | None) -> None:
        """Write one inline row through a service (``changed`` is None for a new row)."""
        raise NotImplementedError(f"{type(self).__name__} has an editable inline but no save_inline")


def changes_from(form: forms.ModelForm, allowed: Iterable[str]) -> dict:
    """The fields the user changed on ``form`` that a service accepts, with their new values."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}


def adopt(target, created) -> None:
    """Make the admin's unsaved instance stand for the row a service created (for the log entry and redirect)."""
    target.pk = created.pk
    target._state.adding = False
    target._state.db = created._state.db


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and records written only by services: an administrator reads them, never adds or edits."""

    # The (unused) form is still built to lay out the page; this keeps Django 6's URLField change quiet.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


_Obj = TypeVar("_Obj")  # a selected object
_Result = TypeVar("_Result")  # what the service returned for it


def report_each(
    modeladmin,
    request,
    objects: Iterable[_Obj],
    call: Callable[[_Obj], _Result | None],
    done: Callable[[_Obj | _Result], str] | str,
    *,
    label: Callable[[_Obj], str] = str,
) -> None:
    """Run a service for each selected object, each in its own transaction, and say what happened to each.

    One refusal does not stop the others; it is reported with the service's own message.
    """
    for obj in objects:
        name = label(obj)
        try:
            result = call(obj)
        except DomainError as error:
            modeladmin.message_user(request, f"{name}: {error.message}", messages.ERROR)
        else:
            text = done(result if result is not None else obj) if callable(done) else done
            modeladmin.message_user(request, f"{name}: {text}", messages.SUCCESS)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), max_length=10_000)

    def __init__(self, *args, label: str = "Reason", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = label


_REASON_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}{% load admin_urls %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; {{ title }}</div>{% endblock %}
{% block content %}
<form method="post">{% csrf_token %}
<p>{{ intro }}</p>
<ul>{% for obj in objects %}<li>{{ obj }}</li>{% endfor %}</ul>
{{ form.as_p }}
{% for obj in objects %}<input type="hidden" name="_selected_action" value="{{ obj.pk }}">{% endfor %}
<input type="hidden" name="action" value="{{ action }}">
<input type="hidden" name="confirm" value="yes">
<input type="submit" value="{{ title }}">
<a href="" class="button cancel-link">No, take me back</a>
</form>
{% endblock %}"""
)


def with_reason(
    modeladmin,
    request,
    queryset: Iterable[_Obj],
    *,
    action: str,
    title: str,
    intro: str,
    perform: Callable[[_Obj, str], object],
    done: Callable[[Any], str] | str,
    label: str = "Reason",
):
    """An admin action that needs a reason: first a page asking for it, then ``perform(obj, reason)`` per object."""
    return with_form(
        modeladmin,
        request,
        queryset,
        form=ReasonForm(request.POST if "confirm" in request.POST else None, label=label),
        action=action,
        title=title,
        intro=intro,
        perform=lambda obj, data: perform(obj, data["reason"]),
        done=done,
    )


def with_form(
    modeladmin,
    request,
    queryset: Iterable[_Obj],
    *,
    form: forms.Form,
    action: str,
    title: str,
    intro: str,
    perform: Callable[[_Obj, dict[str, Any]], object],
    done: Callable[[Any], str] | str,
):
    """An admin action that needs input: a page with ``form`` (bound once confirmed), then ``perform(obj, data)``
    for each selected object, through ``report_each``. An invalid form is shown again with its errors."""
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        report_each(modeladmin, request, queryset, lambda obj: perform(obj, data), done)
        return None  # back to the change list, where the messages are shown
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "opts": modeladmin.model._meta,
        "objects": list(queryset),
        "form": form,
        "action": action,
    }
    return HttpResponse(_REASON_PAGE.render(context, request))


# ----------------------------------------------------------------------------------------- operations admin

THRESHOLD_FIELDS = tuple(name for name in services.TEAM_FIELDS if name.endswith("_days"))


class ServiceInline(admin.TabularInline):
    model = Service
    fields = ("name", "description", "is_active")
    extra = 0
    can_delete = False
    show_change_link = True
    formfield_overrides = {
        # A one-line description keeps the inline a table.
        models.TextField: {"widget": forms.TextInput(attrs={"size": 60})},
    }


@admin.register(OperationsTeam)
class OperationsTeamAdmin(ServiceBackedAdmin):
    list_display = ("name", "lead", "member_count", "service_count", "idle_days", "escalation_days")
    list_select_related = ("lead",)
    search_fields = ("name", "description", "lead__username", "lead__first_name", "lead__last_name")
    autocomplete_fields = ("lead", "members")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "lead", "members")}),
        (
            "Stall thresholds",
            {
                "description": "Days before each stall rule fires for this team; empty uses the default.",
                "fields": (*THRESHOLD_FIELDS,),
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (ServiceInline,)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_members=Count("members", distinct=True), _services=Count("services", distinct=True))
        )

    @admin.display(description="members", ordering="_members")
    def member_count(self, team):
        return team._members

    @admin.display(description="services", ordering="_services")
    def service_count(self, team):
        return team._services

    def has_delete_permission(self, request, obj=None):
        return False  # teams carry audit history and handovers; there is no service to remove one

    def save_model(self, request, obj, form, change):
        if change:
            call_service(services.team_update, team=obj, by=request.user, **changes_from(form, services.TEAM_FIELDS))
            return
        data = form.cleaned_data
        team = call_service(
            services.team_create,
            by=request.user,
            name=data["name"],
            lead=data.get("lead"),
            description=data.get("description", ""),
            members=list(data.get("members") or ()),
            **{name: data.get(name) for name in THRESHOLD_FIELDS},
        )
        adopt(obj, team)

    def save_members(self, request, obj, form, change):
        if change and "members" in form.changed_data:
            call_service(services.team_set_members, team=obj, by=request.user, members=form.cleaned_data["members"])

    def save_inline(self, request, parent, obj, changed):
        if changed is None:
            service = call_service(
                services.service_create, team=parent, by=request.user, name=obj.name, description=obj.description
            )
            if not obj.is_active:
                call_service(services.service_update, service=service, by=request.user, is_active=False)
            adopt(obj, service)
        else:
            changes = {name: getattr(obj, name) for name in changed if name in services.SERVICE_FIELDS}
            call_service(services.service_update, service=obj, by=request.user, **changes)


class KpiInline(ReadOnlyInline):
    model = Kpi
    fields = ("name", "unit", "direction", "baseline", "target", "review_date", "is_adoption")
    show_change_link = True


@admin.register(Service)
class ServiceAdmin(ServiceBackedAdmin):
    list_display = ("name", "team", "is_active", "kpi_count", "created_at")
    list_filter = ("is_active", "team")
    list_select_related = ("team",)
    search_fields = ("name", "description", "team__name")
    autocomplete_fields = ("team",)
    inlines = (KpiInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_kpis=Count("kpis"))

    @admin.display(description="KPIs", ordering="_kpis")
    def kpi_count(self, service):
        return service._kpis

    def get_readonly_fields(self, request, obj=None):
        # A service stays with the team it was created for; the service layer has no move between teams.
        return ("team", "created_at") if obj else ("created_at",)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            changes = changes_from(form, services.SERVICE_FIELDS)
            call_service(services.service_update, service=obj, by=request.user, **changes)
            return
        data = form.cleaned_data
        service = call_service(
            services.service_create,
            team=data["team"],
            by=request.user,
            name=data["name"],
            description=data.get("description", ""),
        )
        if not data.get("is_active", True):
            call_service(services.service_update, service=service, by=request.user, is_active=False)
        adopt(obj, service)


RECENT_READINGS = 20


class RecentReadingsFormSet(forms.BaseInlineFormSet):
    """Only the latest readings: a KPI posted by a tool may have thousands."""

    def get_queryset(self):
        if not hasattr(self, "_recent"):
            queryset = super().get_queryset().select_related("recorded_by")
            recent = list(queryset.order_by("-measured_at", "-id").values_list("pk", flat=True)[:RECENT_READINGS])
            self._recent = queryset.filter(pk__in=recent).order_by("-measured_at", "-id")
        return self._recent


class KpiReadingInline(admin.TabularInline):
    """The latest readings, and a row to post a new one; a posted reading is never edited."""

    model = KpiReading
    formset = RecentReadingsFormSet
    verbose_name_plural = f"Readings (latest {RECENT_READINGS})"
    fields = ("measured_at", "value", "note", "recorded_by")
    readonly_fields = ("recorded_by",)
    extra = 1
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Kpi)
class KpiAdmin(ServiceBackedAdmin):
    list_display = (
        "name",
        "service",
        "team",
        "direction",
        "baseline",
        "target",
        "latest_value",
        "review_date",
        "is_adoption",
    )
    list_filter = ("is_adoption", "direction", "service__team")
    list_select_related = ("service__team",)
    search_fields = ("name", "service__name", "service__team__name")
    autocomplete_fields = ("service",)
    date_hierarchy = "review_date"
    inlines = (KpiReadingInline,)

    def get_queryset(self, request):
        latest = KpiReading.objects.filter(kpi=OuterRef("pk")).order_by("-measured_at", "-id").values("value")[:1]
        return super().get_queryset(request).annotate(_latest=Subquery(latest))

    @admin.display(description="team", ordering="service__team__name")
    def team(self, kpi):
        return kpi.service.team

    @admin.display(description="latest reading")
    def latest_value(self, kpi):
        return kpi._latest

    def get_readonly_fields(self, request, obj=None):
        return ("service", "created_at") if obj else ("created_at",)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            call_service(services.kpi_update, kpi=obj, by=request.user, **changes_from(form, services.KPI_FIELDS))
            return
        data = form.cleaned_data
        fields = {name: data.get(name) for name in services.KPI_FIELDS if name not in ("name", "target")}
        kpi = call_service(
            services.kpi_create,
            service=data["service"],
            by=request.user,
            name=data["name"],
            target=data["target"],
            **fields,
        )
        adopt(obj, kpi)

    def save_inline(self, request, parent, obj, changed):
        if changed is None:
            reading = call_service(
                services.kpi_reading_add,
                kpi=parent,
                by=request.user,
                value=obj.value,
                measured_at=obj.measured_at,
                note=obj.note,
            )
            adopt(obj, reading)


@admin.register(KpiReading)
class KpiReadingAdmin(ServiceBackedAdmin):
    """Readings are posted (here or by tools over the API) and never edited."""

    list_display = ("kpi", "value", "measured_at", "recorded_by", "note")
    list_filter = ("kpi__is_adoption", "kpi__service__team")
    list_select_related = ("kpi__service", "recorded_by")
    search_fields = ("kpi__name", "kpi__service__name", "note")
    date_hierarchy = "measured_at"
    autocomplete_fields = ("kpi",)
    fields = ("kpi", "value", "measured_at", "note")

    def get_changeform_initial_data(self, request):
        return {"measured_at": timezone.now(), **super().get_changeform_initial_data(request)}

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        reading = call_service(
            services.kpi_reading_add,
            kpi=data["kpi"],
            by=request.user,
            value=data["value"],
            measured_at=data["measured_at"],
            note=data.get("note", ""),
        )
        adopt(obj, reading)


@admin.register(OperationsEvent)
class OperationsEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "team", "kind", "subject", "actor")
    list_filter = ("kind", "team")
    list_select_related = ("team", "actor")
    search_fields = ("subject", "team__name", "actor__username")
    date_hierarchy = "created_at"
