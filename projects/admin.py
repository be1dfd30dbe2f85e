"""Admin for projects and their history. Every write goes through ``projects.services``."""

from django.contrib import admin

from operations.admin import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ServiceBackedAdmin,
    adopt,
    call_service,
    changes_from,
    report_each,
    with_reason,
)

from . import services
from .choices import STAGE_TRANSITIONS, MoveKind, Stage
from .models import Project, ProjectEvent

RECORD_FIELDS = (
    "stage",
    "stage_changed_at",
    "has_handover_plan",
    "actual_handover",
    "version",
    "created_by",
    "created_at",
    "updated_at",
)


def next_stage(stage: str) -> Stage | None:
    """The forward move the lifecycle table lists from ``stage``, if any."""
    return next((to for to, kind in STAGE_TRANSITIONS[Stage(stage)].items() if kind == MoveKind.FORWARD), None)


class ProjectEventInline(ReadOnlyInline):
    model = ProjectEvent
    fields = ("created_at", "kind", "from_stage", "to_stage", "actor", "reason", "changes")
    ordering = ("-created_at", "-id")
    verbose_name_plural = "History"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


@admin.register(Project)
class ProjectAdmin(ServiceBackedAdmin):
    list_display = (
        "code",
        "name",
        "stage",
        "manager",
        "receiving_team",
        "planned_handover",
        "actual_handover",
        "confidential",
        "stage_changed_at",
    )
    list_display_links = ("code", "name")
    list_filter = ("stage", "confidential", "receiving_team")
    list_select_related = ("manager", "receiving_team")
    search_fields = ("code", "name", "sponsor", "manager__username", "manager__first_name", "manager__last_name")
    date_hierarchy = "planned_handover"
    autocomplete_fields = ("manager", "members", "receiving_team")
    fieldsets = (
        (None, {"fields": ("code", "name", "description", "sponsor", "confidential")}),
        ("People", {"fields": ("manager", "members", "receiving_team")}),
        ("Dates", {"fields": ("planned_start", "planned_handover")}),
        ("Lifecycle", {"fields": RECORD_FIELDS}),
    )
    actions = ("move_to_next_stage", "cancel_projects")

    def get_fieldsets(self, request, obj=None):
        # The lifecycle block is filled in by the services; on the add form there is nothing to show yet.
        return self.fieldsets if obj else self.fieldsets[:3]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_final:
            # A closed or cancelled project cannot be edited (``project_update`` refuses); show it as it is.
            return (*services.EDITABLE_FIELDS, "members", *RECORD_FIELDS)
        return RECORD_FIELDS

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs.setdefault("help_texts", {})["manager"] = "Leave empty to manage the project yourself."
        return super().get_form(request, obj, change, **kwargs)

    def get_inlines(self, request, obj):
        return (ProjectEventInline,) if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False  # a project is cancelled, never deleted: its history stays

    # ------------------------------------------------------------------------------------------------ saves

    def save_model(self, request, obj, form, change):
        if change:
            changes = changes_from(form, services.EDITABLE_FIELDS)
            if "members" in form.changed_data:  # one change, one new version, with the details
                changes["members"] = form.cleaned_data["members"]
            project = call_service(services.project_update, project=obj, by=request.user, **changes)
            obj.version = project.version
            return
        data = form.cleaned_data
        # Empty fields are left out so that the service's defaults apply (the creator manages the project).
        fields = {
            name: data[name]
            for name in services.EDITABLE_FIELDS
            if name not in ("code", "name") and data.get(name) not in (None, "")
        }
        project = call_service(
            services.project_create,
            by=request.user,
            code=data["code"],
            name=data["name"],
            members=list(data.get("members") or ()),
            **fields,
        )
        adopt(obj, project)

    # ---------------------------------------------------------------------------------------------- actions

    @admin.action(description="Move to next stage")
    def move_to_next_stage(self, request, queryset):
        def move(project):
            # A closed or cancelled project has no next stage; asking for its own stage lets the service say so.
            to = next_stage(project.stage) or project.stage
            return services.project_transition(project=project, to=to, by=request.user)

        report_each(self, request, queryset, move, lambda project: f"moved to {project.stage}.")

    @admin.action(description="Cancel the project (asks for a reason)")
    def cancel_projects(self, request, queryset):
        return with_reason(
            self,
            request,
            queryset,
            action="cancel_projects",
            title="Cancel projects",
            intro="Cancelling is final. The reason is stored in each project's history.",
            perform=lambda p, reason: services.project_transition(
                project=p, to=Stage.CANCELLED, by=request.user, reason=reason
            ),
            done="cancelled.",
        )


@admin.register(ProjectEvent)
class ProjectEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "project", "kind", "from_stage", "to_stage", "actor", "reason")
    list_filter = ("kind", "to_stage")
    list_select_related = ("project", "actor")
    search_fields = ("project__code", "project__name", "reason")
    date_hierarchy = "created_at"
