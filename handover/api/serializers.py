from typing import Any, cast

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api_fields import (
    ActiveUserField,
    IdField,
    StrictSerializerMixin,
    UserSummarySerializer,
    VersionField,
    many_at_most,
)
from operations.models import OperationsTeam, Service
from projects.models import Project

from ..choices import EventType, Risk, Side, TemplateKind
from ..models import (
    Activity,
    ApiToken,
    ChecklistItem,
    ChecklistTemplate,
    Comment,
    Condition,
    Decision,
    Evidence,
    Handover,
    Notification,
    StallFlag,
    TemplateItem,
    WebhookDelivery,
    WebhookSubscription,
)
from ..readiness import stored_readiness

# Bounds of the lists a request may carry (a 400 naming the field beyond them).
MAX_TEMPLATE_ITEMS = 200
MAX_CONDITIONS = 50
MAX_RETURNED_ITEMS = 500

# ------------------------------------------------------------------------------------------------ shared


class RiskReadinessSerializer(serializers.Serializer):
    mandatory = serializers.IntegerField()
    applicable = serializers.IntegerField()
    not_applicable = serializers.IntegerField()
    done = serializers.IntegerField()
    verified = serializers.IntegerField()
    waived_pending = serializers.IntegerField()
    done_ratio = serializers.FloatField(allow_null=True)
    verified_ratio = serializers.FloatField(allow_null=True)


class ReadinessSerializer(serializers.Serializer):
    """Readiness per risk and overall; not-applicable items are counted apart and left out of the ratios."""

    overall = RiskReadinessSerializer()
    inefficiency = RiskReadinessSerializer()
    failure = RiskReadinessSerializer()
    adoption = RiskReadinessSerializer()


class ProjectSummarySerializer(serializers.ModelSerializer):
    manager = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Project
        fields = ["id", "code", "name", "stage", "manager", "confidential"]
        read_only_fields = fields


class ProjectRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "code", "name"]
        read_only_fields = fields


class NamedSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


# --------------------------------------------------------------------------------------------- templates


class TemplateItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = TemplateItem
        fields = ["key", "title", "guidance", "risk", "mandatory", "side", "position"]
        read_only_fields = ["position"]


class TemplateSerializer(serializers.ModelSerializer):
    items = TemplateItemSerializer(many=True, read_only=True)

    class Meta:
        model = ChecklistTemplate
        fields = ["id", "kind", "name", "version", "description", "is_active", "items", "created_at"]
        read_only_fields = fields


class TemplateItemWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    key = serializers.SlugField(max_length=80)
    title = serializers.CharField(max_length=200)
    guidance = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    risk = serializers.ChoiceField(choices=Risk.choices)
    mandatory = serializers.BooleanField(default=True)
    side = serializers.ChoiceField(choices=Side.choices, default=Side.PROJECT)


class TemplateWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    kind = serializers.ChoiceField(choices=TemplateKind.choices)
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    items = many_at_most(TemplateItemWriteSerializer, MAX_TEMPLATE_ITEMS, allow_empty=False)


class TemplateUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    items = many_at_most(TemplateItemWriteSerializer, MAX_TEMPLATE_ITEMS, allow_empty=False, required=False)


# --------------------------------------------------------------------------------------------- checklist


class EvidenceSerializer(serializers.ModelSerializer):
    added_by = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Evidence
        fields = ["id", "url", "text", "added_by", "added_at"]
        read_only_fields = ["id", "added_by", "added_at"]


class EvidenceWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    text = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if not (attrs.get("url") or attrs.get("text", "").strip()):
            raise serializers.ValidationError({"url": ["Give a link or a note as evidence."]})
        return attrs


class ItemSerializer(serializers.ModelSerializer):
    assignee = UserSummarySerializer(read_only=True, allow_null=True)
    done_by = UserSummarySerializer(read_only=True, allow_null=True)
    verified_by = UserSummarySerializer(read_only=True, allow_null=True)
    waiver_requested_by = UserSummarySerializer(read_only=True, allow_null=True)
    waiver_approved_by = UserSummarySerializer(read_only=True, allow_null=True)
    waiver_approved = serializers.BooleanField(read_only=True)
    evidence = EvidenceSerializer(many=True, read_only=True)

    class Meta:
        model = ChecklistItem
        fields = [
            "id",
            "handover",
            "title",
            "guidance",
            "risk",
            "mandatory",
            "side",
            "position",
            "assignee",
            "due_date",
            "status",
            "status_changed_at",
            "done_by",
            "done_at",
            "verified_by",
            "verified_at",
            "sent_back_reason",
            "waiver_justification",
            "waiver_requested_by",
            "waiver_approved_by",
            "waiver_approved_at",
            "waiver_approved",
            "not_applicable_reason",
            "evidence",
            "version",
        ]
        read_only_fields = fields


class ItemCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    title = serializers.CharField(max_length=200)
    risk = serializers.ChoiceField(choices=Risk.choices)
    side = serializers.ChoiceField(choices=Side.choices, default=Side.PROJECT)
    mandatory = serializers.BooleanField(default=True)
    guidance = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    assignee = ActiveUserField(required=False, allow_null=True, default=None)
    due_date = serializers.DateField(required=False, allow_null=True, default=None)


class ItemUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    guidance = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    risk = serializers.ChoiceField(choices=Risk.choices, required=False)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    mandatory = serializers.BooleanField(required=False)
    assignee = ActiveUserField(required=False, allow_null=True)
    due_date = serializers.DateField(required=False, allow_null=True)
    version = VersionField()


class CompleteSerializer(StrictSerializerMixin, serializers.Serializer):
    evidence = EvidenceWriteSerializer(required=False, help_text="Needed unless the item already has evidence.")
    version = VersionField()


class NoteSerializer(StrictSerializerMixin, serializers.Serializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    version = VersionField()


class ConditionMetSerializer(StrictSerializerMixin, serializers.Serializer):
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class EmptySerializer(StrictSerializerMixin, serializers.Serializer):
    """An action without input: any field sent is refused rather than silently ignored."""


class VersionSerializer(StrictSerializerMixin, serializers.Serializer):
    """A move whose only input is, optionally, the version the client read."""

    version = VersionField()


class ReasonSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=5000)
    version = VersionField()


class OptionalReasonSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    version = VersionField()


class JustificationSerializer(StrictSerializerMixin, serializers.Serializer):
    justification = serializers.CharField(max_length=5000)
    version = VersionField()


class CommentSerializer(serializers.ModelSerializer):
    author = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Comment
        fields = ["id", "handover", "item", "author", "body", "created_at"]
        read_only_fields = fields


class CommentWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    body = serializers.CharField(max_length=10_000)


# --------------------------------------------------------------------------------------------- handovers


class ConditionSerializer(serializers.ModelSerializer):
    owner = UserSummarySerializer(read_only=True)
    met_by = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Condition
        fields = ["id", "handover", "decision", "text", "owner", "due_date", "status", "met_by", "met_at", "met_note"]
        read_only_fields = fields


class HandoverSerializer(serializers.ModelSerializer):
    project = ProjectSummarySerializer(read_only=True)
    template = NamedSerializer(read_only=True, allow_null=True)
    receiving_team = NamedSerializer(read_only=True)
    service = NamedSerializer(read_only=True, allow_null=True)
    operations_owner = UserSummarySerializer(read_only=True)
    readiness = serializers.SerializerMethodField()

    class Meta:
        model = Handover
        fields = [
            "id",
            "project",
            "template",
            "template_version",
            "receiving_team",
            "service",
            "operations_owner",
            "deliverables",
            "target_date",
            "status",
            "status_changed_at",
            "submitted_at",
            "decided_at",
            "accepted_at",
            "return_count",
            "hypercare_started_at",
            "hypercare_ends_on",
            "hypercare_exit_criteria",
            "completed_at",
            "cancel_reason",
            "last_activity_at",
            "readiness",
            "version",
            "created_at",
        ]
        read_only_fields = fields

    @staticmethod
    @extend_schema_field(ReadinessSerializer)
    def get_readiness(handover) -> dict[str, Any]:
        # Stored on the handover (handover.readiness): no item is read, in a list or for one handover.
        return stored_readiness(handover).as_dict()


class HandoverCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    project = IdField(queryset=Project.objects.none())
    template = IdField(queryset=ChecklistTemplate.objects.filter(is_active=True))
    receiving_team = IdField(queryset=OperationsTeam.objects.all(), required=False, allow_null=True, default=None)
    operations_owner = ActiveUserField()
    target_date = serializers.DateField()
    service = IdField(queryset=Service.objects.all(), required=False, allow_null=True, default=None)
    deliverables = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Projects the caller cannot see do not exist for them: "Invalid pk", not a hint that it is confidential.
        if user is not None:
            # The stubs type ``queryset`` with ``Manager``, a descriptor: mypy checks an assignment as a ``__get__``.
            cast(IdField, self.fields["project"]).queryset = Project.objects.visible_to(user)  # type: ignore[arg-type]


class HandoverUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    deliverables = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    target_date = serializers.DateField(required=False)
    service = IdField(queryset=Service.objects.all(), required=False, allow_null=True)
    operations_owner = ActiveUserField(required=False)
    hypercare_ends_on = serializers.DateField(required=False, allow_null=True)
    hypercare_exit_criteria = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    version = VersionField()


class ConditionWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    text = serializers.CharField(max_length=5000)
    owner = ActiveUserField()
    due_date = serializers.DateField()


class AcceptWithConditionsSerializer(StrictSerializerMixin, serializers.Serializer):
    conditions = many_at_most(ConditionWriteSerializer, MAX_CONDITIONS, allow_empty=False)
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    version = VersionField()


class ReturnSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=5000)
    items = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),  # larger ids overflow the database
        required=False,
        default=list,
        max_length=MAX_RETURNED_ITEMS,
        help_text="Ids of checklist items to send back to the project (done or verified ones).",
    )
    version = VersionField()


class HypercareSerializer(StrictSerializerMixin, serializers.Serializer):
    ends_on = serializers.DateField()
    exit_criteria = serializers.CharField(max_length=10_000)
    version = VersionField()


class ActivitySerializer(serializers.ModelSerializer):
    actor = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Activity
        fields = ["id", "item", "verb", "actor", "from_state", "to_state", "message", "data", "created_at"]
        read_only_fields = fields


class DecisionSerializer(serializers.ModelSerializer):
    decided_by = UserSummarySerializer(read_only=True)
    conditions = ConditionSerializer(many=True, read_only=True)

    class Meta:
        model = Decision
        fields = ["id", "kind", "decided_by", "decided_at", "reason", "conditions", "snapshot"]
        read_only_fields = fields


# ------------------------------------------------------------------------------------------------ tokens


class TokenSerializer(serializers.ModelSerializer):
    user = UserSummarySerializer(read_only=True)
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "user",
            "read_only",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
            "revoked",
        ]
        read_only_fields = fields

    @staticmethod
    def get_revoked(token) -> bool:
        return token.revoked_at is not None


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret. Shown once; only its hash is stored.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    user = ActiveUserField(
        required=False, allow_null=True, default=None, help_text="Administrators only: create it for this user."
    )

    def get_fields(self):
        # ``read_only`` declared as a class attribute would shadow ``Field.read_only``; it goes second, after ``name``.
        fields = super().get_fields()
        return {"name": fields.pop("name"), "read_only": serializers.BooleanField(default=False), **fields}


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    is_admin = serializers.BooleanField()
    token_read_only = serializers.BooleanField(allow_null=True)
    teams = NamedSerializer(many=True)
    led_teams = NamedSerializer(many=True)
    managed_projects = serializers.IntegerField()
    owned_handovers = serializers.IntegerField()


# ------------------------------------------------------------------------------------ stalls and notifications


class StallFlagSerializer(serializers.ModelSerializer):
    project = serializers.SerializerMethodField()
    acknowledged_by = UserSummarySerializer(read_only=True, allow_null=True)
    snoozed_by = UserSummarySerializer(read_only=True, allow_null=True)
    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = StallFlag
        fields = [
            "id",
            "handover",
            "project",
            "rule",
            "opened_at",
            "resolved_at",
            "is_open",
            "acknowledged_by",
            "acknowledged_at",
            "acknowledge_note",
            "snoozed_until",
            "snooze_reason",
            "snoozed_by",
            "escalated_at",
            "detail",
        ]
        read_only_fields = fields

    @staticmethod
    @extend_schema_field(ProjectRefSerializer)
    def get_project(flag) -> dict[str, Any]:
        return ProjectRefSerializer(flag.handover.project).data


class AcknowledgeSerializer(StrictSerializerMixin, serializers.Serializer):
    note = serializers.CharField(max_length=5000)


class SnoozeSerializer(StrictSerializerMixin, serializers.Serializer):
    until = serializers.DateTimeField()
    reason = serializers.CharField(max_length=5000)


class NotificationSerializer(serializers.ModelSerializer):
    handover = serializers.IntegerField(source="flag.handover_id", read_only=True)
    rule = serializers.CharField(source="flag.rule", read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "kind", "subject", "body", "flag", "rule", "handover", "created_at", "read_at"]
        read_only_fields = fields


class MarkReadSerializer(StrictSerializerMixin, serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),  # larger ids overflow the database
        required=False,
        allow_null=True,
        default=None,
        max_length=1000,
        help_text="Notifications to mark read; all unread ones when omitted.",
    )


class MarkedSerializer(serializers.Serializer):
    marked = serializers.IntegerField()


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices), read_only=True)

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "description", "is_active", "include_confidential", "created_at"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Verifies the signatures. Shown only now.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


WEBHOOK_URL_HELP = "An http or https address (https only in production) whose host resolves to public addresses only."


class WebhookUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    url = serializers.URLField(max_length=500, required=False, help_text=WEBHOOK_URL_HELP)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        max_length=50,
        help_text="Event types to receive; empty for all.",
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    include_confidential = serializers.BooleanField(
        required=False, help_text="Also receive events about confidential projects (off unless asked for)."
    )


class WebhookCreateSerializer(WebhookUpdateSerializer):
    url = serializers.URLField(max_length=500, help_text=WEBHOOK_URL_HELP)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "created_at",
        ]
        read_only_fields = fields
