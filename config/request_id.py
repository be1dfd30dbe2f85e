"""The reference of the request being served: set by ``config.middleware.RequestIdMiddleware``, written on every log
line by ``RequestIdFilter``, and shown on the 500 page, so that a person can quote it and an operator can find the
traceback. Kept free of Django imports: the logging configuration loads it before the apps are ready."""

import logging
import secrets
from contextvars import ContextVar

_current: ContextVar[str] = ContextVar("request_id", default="-")


def new_request_id() -> str:
    """Twelve hex digits: short enough to read out over the phone, enough to tell a day's requests apart."""
    return secrets.token_hex(6)


def current_request_id() -> str:
    """The reference of the request this thread serves, ``-`` outside a request (a worker, a command)."""
    return _current.get()


def set_request_id(value: str):
    return _current.set(value)


def reset_request_id(token) -> None:
    _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record, for the formatter's ``%(request_id)s``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True
