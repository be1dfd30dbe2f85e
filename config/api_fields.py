"""Serializer building blocks shared by the apps' APIs."""

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

User = get_user_model()


class UserSummarySerializer(serializers.ModelSerializer):
    """A user as other objects show them."""

    name = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "name"]
        read_only_fields = fields

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()


@extend_schema_field(OpenApiTypes.INT)
class ActiveUserField(serializers.PrimaryKeyRelatedField):
    """A user given by id; only active users can be chosen."""

    def get_queryset(self):
        return User.objects.filter(is_active=True)


class StrictSerializerMixin:
    """Refuse fields the client may not send (unknown or read-only) instead of silently ignoring them."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable - {"version"})
            if unknown:
                raise serializers.ValidationError({name: ["This field is unknown or read-only."] for name in unknown})
        return super().to_internal_value(data)


class NoNulCharField(serializers.CharField):
    """DRF already refuses NUL characters in CharField; this keeps lengths bounded by default too."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 10_000)
        super().__init__(**kwargs)
