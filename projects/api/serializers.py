from rest_framework import serializers

from config.api_fields import ActiveUserField, IdField, StrictSerializerMixin, UserSummarySerializer, VersionField
from operations.models import OperationsTeam

from ..choices import Stage
from ..models import Project, ProjectEvent


class TeamSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = OperationsTeam
        fields = ["id", "name"]
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    manager = UserSummarySerializer(read_only=True, allow_null=True)
    members = UserSummarySerializer(many=True, read_only=True)
    receiving_team = TeamSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "code",
            "name",
            "description",
            "sponsor",
            "manager",
            "members",
            "receiving_team",
            "planned_start",
            "planned_handover",
            "actual_handover",
            "confidential",
            "stage",
            "stage_changed_at",
            "has_handover_plan",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProjectWriteSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    # The model's rule (projects.models.project_code_validator), as the client may send it: in any case, since the
    # service stores it in capitals. Here it also reaches the schema as a pattern.
    code = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9-]{1,29}\Z",
        max_length=30,
        help_text="2 to 30 letters, digits or hyphens, not starting with a hyphen; stored in capitals (crm-2026 is "
        "CRM-2026). Unique across all projects.",
        error_messages={"invalid": "Use 2 to 30 letters, digits or hyphens, for example CRM-2026."},
    )
    manager = ActiveUserField(required=False, allow_null=True)
    members = ActiveUserField(many=True, required=False)
    receiving_team = IdField(queryset=OperationsTeam.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Project
        fields = [
            "code",
            "name",
            "description",
            "sponsor",
            "manager",
            "members",
            "receiving_team",
            "planned_start",
            "planned_handover",
            "confidential",
        ]
        # Uniqueness of the code is reported by the service, naming the field. TextFields have no length of their
        # own: bound them so that a client cannot store megabytes.
        extra_kwargs = {"description": {"max_length": 10_000}}


class ProjectUpdateSerializer(ProjectWriteSerializer):
    version = VersionField()

    class Meta(ProjectWriteSerializer.Meta):
        fields = [*ProjectWriteSerializer.Meta.fields, "version"]


class TransitionSerializer(StrictSerializerMixin, serializers.Serializer):
    to = serializers.ChoiceField(choices=Stage.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    version = VersionField()


class ProjectEventSerializer(serializers.ModelSerializer):
    actor = UserSummarySerializer(read_only=True, allow_null=True)
    # Blank for events that are not stage moves (an edit of the project's fields).
    from_stage = serializers.ChoiceField(choices=Stage.choices, allow_blank=True, read_only=True)
    to_stage = serializers.ChoiceField(choices=Stage.choices, allow_blank=True, read_only=True)

    class Meta:
        model = ProjectEvent
        fields = ["id", "kind", "from_stage", "to_stage", "reason", "changes", "actor", "created_at"]
        read_only_fields = fields
