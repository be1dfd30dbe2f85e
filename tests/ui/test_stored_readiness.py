"""The handover page shows its items, but its readiness meters come from the counters stored on the handover:
they must agree with the items after moves through the services."""

import pytest
from django.urls import reverse

from handover import services as hs
from handover.readiness import readiness_from_items

from .conftest import item_of

pytestmark = pytest.mark.django_db


def test_the_handover_pages_meters_are_stored_and_agree_with_its_items(client_for, handover, manager, owner):
    item = item_of(handover)
    hs.item_complete(item=item, by=manager, evidence_url="https://wiki.example.com/runbook")
    hs.item_verify(item=item, by=owner)
    hs.item_waive(item=item_of(handover, "adoption"), by=manager, justification="Covered by the intranet")

    response = client_for(manager).get(reverse("handover:detail", args=[handover.pk]))
    assert response.status_code == 200
    shown = response.context["readiness"]
    assert shown == readiness_from_items(handover.items.all())
    assert (shown.by_risk["failure"].verified, shown.overall.waived_pending, shown.overall.done) == (1, 1, 2)
