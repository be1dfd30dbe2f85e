"""Serializer building blocks shared by the apps' APIs."""

from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth import get_user_model
from django.core.validators import MaxLengthValidator, MinLengthValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.relations import MANY_RELATION_KWARGS

User = get_user_model()

# Input lists are bounded: a request naming thousands of users or items is a mistake or an attack, and each entry
# costs work (a lookup, an audit row).
MAX_USERS = 500


class UserSummarySerializer(serializers.ModelSerializer):
    """A user as other objects show them."""

    name = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "name"]
        read_only_fields = fields

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()


class ActiveUsersField(serializers.ManyRelatedField):
    """Users given by id (at most ``max_length``), looked up in one query.

    DRF's ``many=True`` looks each id up on its own and takes any number of them.
    """

    child_relation: "ActiveUserField"  # only built by ``ActiveUserField.many_init``

    def __init__(self, *, max_length: int = MAX_USERS, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)
        self.validators = [*self.validators, MaxLengthValidator(max_length)]  # documents maxItems

    def to_internal_value(self, data):
        if isinstance(data, str | dict) or not hasattr(data, "__iter__"):
            self.fail("not_a_list", input_type=type(data).__name__)
        data = list(data)
        if not self.allow_empty and not data:
            self.fail("empty")
        if len(data) > self.max_length:
            raise serializers.ValidationError(f"Give at most {self.max_length} users.", code="max_length")
        child = self.child_relation
        ids = [_as_id(child, value) for value in data]
        found = child.get_queryset().in_bulk([pk for pk in ids if 0 < pk < 2**63])  # wider ids overflow the column
        missing = next((pk for pk in ids if pk not in found), None)
        if missing is not None:
            child.fail("does_not_exist", pk_value=missing)
        return [found[pk] for pk in dict.fromkeys(ids)]


def _as_id(field: serializers.RelatedField, value) -> int:
    """An id as a JSON integer or a string of digits; DRF's own field would take ``5.9`` as 5, ``true`` as 1."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        field.fail("incorrect_type", data_type=type(value).__name__)
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) < 20):
        field.fail("incorrect_type", data_type="str")
    return int(value)


@extend_schema_field(OpenApiTypes.INT)
class IdField(serializers.PrimaryKeyRelatedField):
    """An object given by its id: an integer, never a fraction or a boolean; an id no column can hold is unknown."""

    def to_internal_value(self, data):
        pk = _as_id(self, data)
        if not 0 < pk < 2**63:
            self.fail("does_not_exist", pk_value=pk)
        return super().to_internal_value(pk)


@extend_schema_field(OpenApiTypes.INT)
class ActiveUserField(IdField):
    """A user given by id; only active users can be chosen. With ``many=True``: ``ActiveUsersField``."""

    def get_queryset(self):
        return User.objects.filter(is_active=True)

    @classmethod
    def many_init(cls, *args, max_length: int = MAX_USERS, **kwargs):
        many_kwargs = {key: value for key, value in kwargs.items() if key in MANY_RELATION_KWARGS}
        return ActiveUsersField(child_relation=cls(*args, **kwargs), max_length=max_length, **many_kwargs)


class BoundedListSerializer(serializers.ListSerializer):
    """``many=True`` with a ``max_length``, which DRF checks before validating any entry; as a validator too, so
    that the bound reaches the schema (``maxItems``, and ``minItems`` when the list may not be empty)."""

    max_length: int | None  # set by ``ListSerializer.__init__``; the stubs do not declare it

    def get_validators(self):
        validators = super().get_validators()
        if not self.allow_empty:
            validators = [*validators, MinLengthValidator(1)]  # documents minItems; DRF refuses [] itself
        if self.max_length is None:
            return validators
        return [*validators, MaxLengthValidator(self.max_length)]


def many_at_most(serializer_class, limit: int, **kwargs) -> BoundedListSerializer:
    """``serializer_class(many=True, **kwargs)``, refusing more than ``limit`` entries."""
    return BoundedListSerializer(child=serializer_class(), max_length=limit, **kwargs)


class VersionField(serializers.IntegerField):
    """``version`` in a write's body: the version the client read, as an alternative to ``If-Match``.

    A JSON integer only: DRF's ``IntegerField`` would also take ``"7"`` and ``7.0``.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**31 - 1)
        kwargs.setdefault(
            "help_text",
            "The version you read (the ETag's number): if the object changed since, the request is refused with "
            "412 and nothing is written. Or send it as If-Match.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


if TYPE_CHECKING:
    # What the mixin is always combined with, so that its ``super()`` calls and ``self.fields`` type-check.
    _SerializerBase = serializers.Serializer[Any]
else:
    _SerializerBase = object


class StrictSerializerMixin(_SerializerBase):
    """Refuse fields the client may not send (unknown or read-only) instead of silently ignoring them.

    ``version`` is no exception: a write that compares versions declares a ``VersionField``; elsewhere a version
    sent would be ignored while the client believes itself protected against lost updates.

    A model serializer's relations take ids as ``IdField`` does: integers, not ``5.9`` read as 5.
    """

    serializer_related_field: ClassVar[type[serializers.RelatedField]] = IdField

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: [_unknown_message(name)] for name in unknown})
            # DRF's CharField takes a number as its text; the schema says a string, and a client sending 5 for a
            # reason has a bug to learn about. A decimal is a string too, as the schema says and as the API
            # answers it: a JSON number would pass through a float and could lose digits on the way.
            numbers = {
                name: 'A decimal is sent as a string, for example "12.5".'
                if isinstance(self.fields.get(name), serializers.DecimalField)
                else "Not a valid string."
                for name, value in data.items()
                if isinstance(value, int | float)
                and isinstance(self.fields.get(name), serializers.CharField | serializers.DecimalField)
                and not self.fields[name].read_only
            }
            if numbers:
                raise serializers.ValidationError({name: [message] for name, message in sorted(numbers.items())})
        return super().to_internal_value(data)


def _unknown_message(name: str) -> str:
    if name == "version":
        return "This endpoint does not compare versions; leave version out."
    return "This field is unknown or read-only."


class NoNulCharField(serializers.CharField):
    """DRF already refuses NUL characters in CharField; this keeps lengths bounded by default too."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 10_000)
        super().__init__(**kwargs)
