"""``manage.py create_token USERNAME --name NAME [--read-only] [--expires-in-days N]``: an API token for a user.

For the first token of a tool or service account; afterwards tokens are managed at /api/v1/tokens/.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.errors import DomainError
from handover.tokens.services import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for, e.g. 'service desk sync'.")
        parser.add_argument("--read-only", action="store_true", help="The token may only read.")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, username, name, read_only, expires_in_days, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"username: no user called {username!r}.") from None
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            # The command runs with the operator's authority; the token acts as the named user.
            _, raw = token_create(by=user, name=name, read_only=read_only, expires_at=expires_at)
        except DomainError as error:
            raise CommandError(f"{error.field or 'token'}: {error.message}") from error
        self.stdout.write(raw)
