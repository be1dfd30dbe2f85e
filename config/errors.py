"""The one error type that every service raises when it refuses something.

A refusal names the rule it applied (``rule``, a stable identifier for tools, and ``message`` for people) and,
where the input was at fault, the ``field``. Subclasses say how serious the refusal is, so that the API can map
them to status codes without deciding anything itself:

* ``InvalidInput``: the request is malformed or incomplete (HTTP 400).
* ``NotPermitted``: the user does not hold the role the rule asks for (HTTP 403).
* ``IllegalTransition``: the object is not in a state that allows the move (HTTP 409).
* ``Conflict``: the object changed since the caller read it (HTTP 412).
"""


class DomainError(Exception):
    """A service refused to act; nothing was written."""

    default_rule = "domain_error"

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule or self.default_rule
        self.field = field

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, str | None]:
        return {"rule": self.rule, "message": self.message, "field": self.field}


class InvalidInput(DomainError):
    """The input breaks a rule about its content."""

    default_rule = "invalid_input"


class NotPermitted(DomainError):
    """The acting user does not hold the role the rule requires."""

    default_rule = "not_permitted"


class IllegalTransition(DomainError):
    """The move is not allowed from the object's current state, or a gate blocks it."""

    default_rule = "illegal_transition"


class Conflict(DomainError):
    """The object changed since the caller read it (lost update)."""

    default_rule = "conflict"
