"""The benchmark dataset (benchmarks/dataset.py) builds an organisation whose stored values are true."""

import pytest
from django.contrib.auth import get_user_model

from benchmarks import dataset
from handover.choices import HandoverStatus
from handover.models import ChecklistItem, Handover
from handover.readiness import drift
from projects.choices import Stage
from projects.models import Project

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_a_small_organisation_has_every_state_and_its_stored_values_true():
    who = dataset.build(20, password="bench-pw", seed=3, detect=False)

    assert Project.objects.count() == Handover.objects.count() == 20
    assert set(Handover.objects.values_list("status", flat=True)) == set(HandoverStatus.values)
    assert set(Project.objects.values_list("stage", flat=True)) == set(Stage.values)
    assert drift() == []
    # Accepted and later: every mandatory item verified, waived with approval or not applicable.
    assert (
        not ChecklistItem.objects.filter(
            handover__status__in=["accepted", "accepted_with_conditions", "hypercare", "completed"], mandatory=True
        )
        .exclude(status__in=["verified", "not_applicable"])
        .exclude(status="waived", waiver_approved_by__isnull=False)
    )
    # Verified items say who verified them, and that was not who did them.
    verified = ChecklistItem.objects.filter(status="verified")
    assert verified.exists()
    assert not verified.filter(verified_by=None).exists()
    assert not [i for i in verified if i.verified_by_id == i.done_by_id]
    for h in Handover.objects.all():
        assert h.version == 1 + h.activity.count()
        assert h.last_activity_at == max(a.created_at for a in h.activity.all())
    User = get_user_model()
    for role in ("manager", "operations_lead", "operations_owner", "viewer"):
        assert User.objects.get(username=who[role]).check_password("bench-pw")
