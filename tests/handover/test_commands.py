import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from handover.choices import DetectionSource, StallRule
from handover.models import ApiToken, DetectionRun, Handover


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


@pytest.mark.django_db
def test_detect_stalls_prints_what_it_opened_and_records_a_command_pass(handover, capsys):
    """GIVEN a handover idle past its threshold WHEN ``manage.py detect_stalls`` runs (twice) THEN the first run
    prints the flag it opened, the second nothing new; both passes are recorded as the command's, not beat's."""
    days = handover.receiving_team.stall_threshold(StallRule.IDLE) + 1
    Handover.objects.filter(pk=handover.pk).update(last_activity_at=timezone.now() - dt.timedelta(days=days))

    call_command("detect_stalls")
    first = capsys.readouterr().out
    call_command("detect_stalls")
    second = capsys.readouterr().out

    assert first.splitlines() == [
        "opened 1, escalated 0, reminded 0, resolved 0",
        f"  opened    {handover.project.code:<14} idle",
    ]
    assert second.splitlines() == ["opened 0, escalated 0, reminded 0, resolved 0"]
    assert list(DetectionRun.objects.values_list("source", "opened")) == [
        (DetectionSource.COMMAND, 0),
        (DetectionSource.COMMAND, 1),
    ]
