import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from handover.models import ApiToken


@pytest.mark.django_db
def test_create_token_prints_a_secret_that_authenticates_as_the_user(manager, capsys):
    call_command("create_token", "manager", "--name", "sync", "--read-only")
    raw = capsys.readouterr().out.strip()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    me = client.get("/api/v1/me/").json()
    assert me["username"] == "manager"
    assert me["token_read_only"] is True
    assert ApiToken.objects.get().key_hash != raw  # only the hash is stored


@pytest.mark.django_db
def test_create_token_for_unknown_user_names_the_field_and_writes_nothing():
    with pytest.raises(CommandError, match="username"):
        call_command("create_token", "nobody", "--name", "sync")
    assert not ApiToken.objects.exists()
