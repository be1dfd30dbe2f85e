from typing import TYPE_CHECKING, Any

from rest_framework import serializers

from config.api_fields import ActiveUserField, StrictSerializerMixin, UserSummarySerializer

from ..models import Kpi, KpiReading, OperationsTeam, Service

if TYPE_CHECKING:
    from rest_framework.validators import Validator

THRESHOLD_FIELDS = [
    "idle_days",
    "review_overdue_days",
    "verification_waiting_days",
    "past_target_days",
    "conditions_overdue_days",
    "adoption_below_target_days",
    "escalation_days",
]


class TeamSerializer(serializers.ModelSerializer):
    lead = UserSummarySerializer(read_only=True, allow_null=True)
    members = UserSummarySerializer(many=True, read_only=True)

    class Meta:
        model = OperationsTeam
        fields = ["id", "name", "description", "lead", "members", *THRESHOLD_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class TeamWriteSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    lead = ActiveUserField(required=False, allow_null=True)
    members = ActiveUserField(many=True, required=False)

    class Meta:
        model = OperationsTeam
        fields = ["name", "description", "lead", "members", *THRESHOLD_FIELDS]
        extra_kwargs = {
            "name": {"validators": []},  # uniqueness is reported by the service, naming the field
            "description": {"max_length": 10_000},  # a TextField has no length of its own
        }


class ServiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Service
        fields = ["id", "team", "name", "description", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"team": {"queryset": OperationsTeam.objects.all()}}
        validators: "list[Validator[Any]]" = []  # the service reports a duplicate name, naming the field


class ServiceUpdateSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = Service
        fields = ["name", "description", "is_active"]
        extra_kwargs = {"description": {"max_length": 10_000}}


class ServiceCreateSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = Service
        fields = ["team", "name", "description"]
        extra_kwargs = {"description": {"max_length": 10_000}}
        validators: "list[Validator[Any]]" = []


class KpiSerializer(serializers.ModelSerializer):
    latest_value = serializers.DecimalField(max_digits=14, decimal_places=4, read_only=True, allow_null=True)

    class Meta:
        model = Kpi
        fields = [
            "id",
            "service",
            "name",
            "unit",
            "direction",
            "baseline",
            "target",
            "review_date",
            "is_adoption",
            "latest_value",
            "created_at",
        ]
        read_only_fields = ["id", "service", "latest_value", "created_at"]
        validators: "list[Validator[Any]]" = []


class KpiWriteSerializer(StrictSerializerMixin, KpiSerializer):
    pass


class KpiReadingSerializer(serializers.ModelSerializer):
    recorded_by = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = KpiReading
        fields = ["id", "kpi", "value", "measured_at", "note", "recorded_by", "created_at"]
        read_only_fields = ["id", "kpi", "recorded_by", "created_at"]
        extra_kwargs = {"measured_at": {"required": False}}


class KpiReadingWriteSerializer(StrictSerializerMixin, KpiReadingSerializer):
    pass
