"""API authentication: the bearer tokens of ``handover.tokens`` acting as their user, optionally read-only.

DRF imports these classes by the dotted paths in ``REST_FRAMEWORK`` while it is itself being imported, so this
module reads the tokens' service only when a request is authenticated.

Failed authentications are counted per address (``config.throttling.AuthFailureThrottle``): they happen before
DRF's throttles run, so beyond the ``auth_failure`` rate every bearer token from that address is answered 429 with
``Retry-After`` until the window has passed, without being looked at.
"""

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission

from config.throttling import AuthFailureThrottle

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from rest_framework.request import Request
    from rest_framework.views import APIView

    from handover.models import ApiToken


class TokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer hov_...``: an API token that acts as its user, optionally read-only."""

    keyword = "Bearer"

    def authenticate(self, request: "Request") -> "tuple[AbstractBaseUser, ApiToken] | None":
        header = get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"bearer", b"token"):
            return None
        throttle = AuthFailureThrottle()
        wait = throttle.seconds_to_wait(request)
        if wait is not None:
            raise exceptions.Throttled(wait, "Too many failed authentications from your address.")
        try:
            return self._authenticate(header)
        except exceptions.AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def _authenticate(self, header: list[bytes]) -> "tuple[AbstractBaseUser, ApiToken]":
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        from .services import token_authenticate

        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token contains invalid characters.") from None
        token = token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is invalid, expired or revoked.")
        return token.user, token

    def authenticate_header(self, request: "Request") -> str:
        return f'{self.keyword} realm="api"'


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "handover.tokens.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token created at /api/v1/tokens/."}


class ReadOnlyTokenPermission(BasePermission):
    """A read-only token may only read."""

    message = "This API token is read-only."

    def has_permission(self, request: "Request", view: "APIView") -> bool:
        token = getattr(request, "auth", None)
        return request.method in SAFE_METHODS or not getattr(token, "read_only", False)
