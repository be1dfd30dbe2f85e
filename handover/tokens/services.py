"""API tokens: created by their user (or by an administrator for a service account), revoked, and authenticated.

Only a hash of the secret is stored; the secret is shown once, when the token is created. Creating and revoking are
recorded in the configuration audit (``AdminEvent``).
"""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import IllegalTransition, InvalidInput, NotPermitted
from config.validation import clean_or_raise, require_text
from handover.audit import admin_event
from handover.choices import AdminEventKind
from handover.models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TOKEN_PREFIX = "hov_"


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def token_create(
    *, by: "User", name: str, user: "User | None" = None, read_only: bool = False, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``by`` (or, for an administrator, for another user such as a service account).

    Returns the row and the secret; the secret is shown once and only its hash is kept.
    """
    user = user or by
    if user.pk != by.pk and not by.is_staff:
        raise NotPermitted("Only an administrator may create a token for another user.", rule="admin_only")
    if not user.is_active:
        raise InvalidInput("Tokens can only be created for active users.", rule="user_inactive", field="user")
    name = require_text(name, field="name", what="A token name", rule="name_required")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", rule="expiry_in_past", field="expires_at")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name,
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        key_hash=_hash_token(raw),
        read_only=read_only,
        expires_at=expires_at,
        created_by=by,
    )
    clean_or_raise(token, exclude=["user"])
    token.save()
    admin_event(
        AdminEventKind.TOKEN_CREATED,
        by=by,
        subject=f"{token} of {user.get_username()}",
        object_id=token.pk,
        changes={
            "user": user.get_username(),
            "read_only": read_only,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, by: "User") -> ApiToken:
    """Revoke a token; its owner or an administrator may. Revoking twice is refused."""
    if token.user_id != by.pk and not by.is_staff:
        raise NotPermitted("Only the token's owner or an administrator may revoke it.", rule="owner_only")
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if not updated:
        raise IllegalTransition("The token is already revoked.", rule="token_revoked")
    token.refresh_from_db()
    subject = f"{token} of {token.user.get_username()}"
    admin_event(AdminEventKind.TOKEN_REVOKED, by=by, subject=subject, object_id=token.pk)
    return token


# How often a token's last use is written: reading it on every request is free (it comes with the lookup), writing
# it on every request would make every API read a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_authenticate(raw: str) -> ApiToken | None:
    """The usable token for a presented secret, or ``None``; records when it was last used (at most once a minute).

    One query when the last use is recent: the token and its user, found by the unique index on the secret's hash.
    Otherwise a second, conditional ``UPDATE ... WHERE last_used_at < now - 60 s``: of concurrent requests with the
    same token, only the first of the minute writes, and none overwrites a later time with an earlier one.
    """
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_hash_token(raw)).first()
    now = timezone.now()
    if token is None or not token.is_usable(now) or not token.user.is_active:
        return None
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= stale:
        ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=token.pk).update(
            last_used_at=now
        )
        token.last_used_at = now
    return token
