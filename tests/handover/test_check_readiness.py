"""``manage.py check_readiness``: drift between the stored readiness and the items is reported (exit status 1),
``--fix`` repairs it in one statement and audits it, and bad arguments are refused naming the option."""

import io

import pytest
from django.core.management import CommandError, call_command

from handover.choices import AdminEventKind
from handover.models import AdminEvent, Handover
from handover.readiness import drift, stored_readiness

pytestmark = pytest.mark.django_db


def check(*args) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("check_readiness", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        return int(exit.code or 0), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def test_no_drift_after_the_services(handover):
    assert check() == (0, "No drift: the stored readiness of every handover matches the items.\n")


def test_a_write_that_bypasses_the_services_is_reported_then_repaired_and_audited(handover):
    Handover.objects.filter(pk=handover.pk).update(failure_verified=2)  # raw, as a bad script would

    code, output = check()
    assert code == 1
    assert f"handover {handover.pk} CRM-2026: failure_verified stored 2, actual 0" in output
    assert not AdminEvent.objects.exists()  # reporting writes nothing

    code, output = check("--fix", "--handover", str(handover.pk))
    assert code == 0
    assert "Repaired the stored readiness of 1 handover(s) of 1 handover(s)." in output
    assert drift() == []
    fresh = Handover.objects.get(pk=handover.pk)
    assert stored_readiness(fresh).by_risk["failure"].verified == 0
    assert fresh.failure_share == 0.0
    [event] = AdminEvent.objects.all()
    assert (event.kind, event.actor, event.object_id) == (AdminEventKind.READINESS_REPAIRED, None, handover.pk)
    assert event.changes["via"] == "manage.py check_readiness --fix"
    assert event.changes["handovers"] == {str(handover.pk): {"project": "CRM-2026", "failure_verified": [2, 0]}}
    assert check() == (0, "No drift: the stored readiness of every handover matches the items.\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handover", "abc"], "--handover takes handover ids (positive whole numbers); not: abc."),
        (["--handover", "0", "-3"], "--handover takes handover ids (positive whole numbers); not: 0, -3."),
        (["--handover", "999999"], "--handover: no handover with id 999999."),
    ],
)
def test_bad_arguments_name_the_option(handover, args, message):
    with pytest.raises(CommandError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        call_command("check_readiness", *args, stdout=io.StringIO())
