from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from config.postgres import trigram_index
from operations.models import OperationsTeam

from .choices import FINAL_STAGES, ProjectEventKind, Stage

project_code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{1,29}$", "Use 2 to 30 capital letters, digits or hyphens, for example CRM-2026."
)


def visible_q(user, prefix: str = "") -> models.Q:
    """The condition for a project (or, with ``prefix`` such as ``"handover__project__"``, a row reached from one)
    to be visible to ``user``: not confidential, or ``user`` takes part in it. Administrators see everything.

    Written as a few cheap terms on the project's own columns, each membership an ``IN`` over a small indexed
    subquery of the user's own memberships (evaluated once per query, hashed), rather than an ``OR`` of joins: the
    database filters the rows as it walks the index of the list's ordering and stops at the page's end, instead of
    building and sorting the whole visible set first.
    """
    if user.is_staff:
        return models.Q()
    if not user.is_authenticated:
        return models.Q(**{f"{prefix}pk__in": []})
    led_teams = OperationsTeam.objects.filter(lead=user).values("pk")
    team_memberships = OperationsTeam.members.through.objects.filter(user=user).values("operationsteam_id")
    memberships = Project.members.through.objects.filter(user=user).values("project_id")
    return (
        models.Q(**{f"{prefix}confidential": False})
        | models.Q(**{f"{prefix}manager": user})
        | models.Q(**{f"{prefix}pk__in": memberships})
        | models.Q(**{f"{prefix}receiving_team__in": team_memberships})
        | models.Q(**{f"{prefix}receiving_team__in": led_teams})
    )


class ProjectQuerySet(models.QuerySet["Project"]):
    def visible_to(self, user) -> "ProjectQuerySet":
        """Projects ``user`` may see: all non-confidential ones, and confidential ones they take part in."""
        if user.is_staff:
            return self
        return self.filter(visible_q(user))


class Project(models.Model):
    """A temporary endeavour that creates change and hands its result over to an operations team."""

    code = models.CharField(max_length=30, unique=True, validators=[project_code_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    sponsor = models.CharField(max_length=200, blank=True, help_text="The accountable executive.")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="managed_projects", null=True, blank=True
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="projects", blank=True)
    receiving_team = models.ForeignKey(
        OperationsTeam, on_delete=models.PROTECT, related_name="incoming_projects", null=True, blank=True
    )
    planned_start = models.DateField(null=True, blank=True)
    planned_handover = models.DateField(null=True, blank=True)
    actual_handover = models.DateField(
        null=True, blank=True, editable=False, help_text="Set when operations accepts the handover."
    )
    confidential = models.BooleanField(
        default=False, help_text="Visible only to its manager, members, the receiving team and admins."
    )
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.INITIATION, editable=False)
    stage_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Kept by handover.services (handover depends on projects, never the reverse): whether the project has an
    # active handover plan, so that the planning gate can be checked without importing the handover app.
    has_handover_plan = models.BooleanField(default=False, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        indexes = [
            models.Index(fields=["stage", "planned_handover"], name="project_stage_planned"),
            # The project list's default order (ascending puts the undated last, as the list asks) and the board's
            # window of recently closed and cancelled projects.
            models.Index(fields=["planned_handover", "code"], name="project_planned_code"),
            models.Index(fields=["stage", "stage_changed_at"], name="project_stage_changed"),
            # Search (handover.search): codes and names by substring, on PostgreSQL (config.postgres).
            trigram_index("code", name="project_code_trgm"),
            trigram_index("name", name="project_name_trgm"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_final(self) -> bool:
        return self.stage in FINAL_STAGES

    def clean(self) -> None:
        if self.planned_start and self.planned_handover and self.planned_handover < self.planned_start:
            raise ValidationError({"planned_handover": "The planned handover cannot be before the planned start."})


class ProjectEvent(models.Model):
    """Append-only history of a project: stage moves (from, to, who, when, why) and other changes."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=ProjectEventKind.choices)
    from_stage = models.CharField(max_length=20, choices=Stage.choices, blank=True)
    to_stage = models.CharField(max_length=20, choices=Stage.choices, blank=True)
    reason = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["project", "created_at"], name="projectevent_project_time")]

    def __str__(self) -> str:
        if self.kind == ProjectEventKind.STAGE_CHANGED:
            return f"{self.project.code}: {self.from_stage} → {self.to_stage}"
        return f"{self.project.code}: {self.get_kind_display()}"
