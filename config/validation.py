"""Turning Django's model validation into the domain error type, so every service reports bad input alike."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models

from .errors import InvalidInput


def clean_or_raise(instance: models.Model, *, exclude: Iterable[str] | None = None) -> None:
    """Run ``full_clean`` and raise ``InvalidInput`` naming the first field at fault."""
    try:
        instance.full_clean(exclude=list(exclude) if exclude else None)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        if field == "__all__":
            field = _unique_field(error) or field
        # The message is Django's own, without the field's name: ``field`` carries it, and whoever shows the
        # refusal puts the two together (the API, the forms, ``create_token``), so it is never named twice.
        raise InvalidInput(
            " ".join(messages), rule="invalid_field", field=None if field == "__all__" else field
        ) from error


def _unique_field(error: ValidationError) -> str | None:
    """For a unique-together violation, the field a person would change: the last one of the constraint."""
    for item in error.error_dict.get("__all__", []):
        check = (item.params or {}).get("unique_check")
        if check:
            return check[-1]
    return None


# Free text a person types (reasons, notes, comments, evidence notes): long enough for anything written by hand,
# bounded so that one request cannot store megabytes in an audit row.
MAX_TEXT = 10_000


def require_text(value: str | None, *, field: str, rule: str, what: str) -> str:
    """Strip ``value`` and refuse it when empty or longer than ``MAX_TEXT``; ``what`` names it for a person
    ("A reason for snoozing")."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{what} is required.", rule=rule, field=field)
    return bounded_text(text, field=field, what=what)


def bounded_text(value: str | None, *, field: str, what: str) -> str:
    """Strip optional free text (``None``: empty) and refuse it when longer than ``MAX_TEXT``."""
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            f"{what} is longer than {MAX_TEXT:,} characters ({len(text):,}).", rule="too_long", field=field
        )
    return text


def apply_changes(instance: models.Model, changes: dict, *, allowed: Iterable[str]) -> dict[str, list]:
    """Set ``changes`` on ``instance`` and return ``{field: [old, new]}`` for what really changed.

    Unknown or protected fields are refused rather than silently ignored.
    """
    allowed = set(allowed)
    diff: dict[str, list] = {}
    for name, value in changes.items():
        if name not in allowed:
            raise InvalidInput(f"{name} cannot be changed here.", rule="field_not_editable", field=name)
        field = instance._meta.get_field(name)
        if not isinstance(field, models.Field):  # a reverse relation is no field of this row
            raise InvalidInput(f"{name} cannot be changed here.", rule="field_not_editable", field=name)
        attname = field.attname
        old = getattr(instance, attname)
        new = value.pk if isinstance(value, models.Model) else value
        if old != new:
            setattr(instance, attname, new)
            diff[name] = [_plain(old), _plain(new)]
    return diff


def _plain(value):
    """A JSON-friendly form of a field value for audit rows."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
