"""Fixtures for the projects tests: projects parked at any stage, and a handover ready for operations' decision."""

import pytest
from django.utils import timezone

from handover import services as handover_services
from handover.choices import Side
from projects.choices import Stage
from tests.factories import ProjectFactory

PAST_PLANNING = frozenset({Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE, Stage.CLOSED})


@pytest.fixture
def project_at(db, manager, member, team):
    """Build a project of ``manager`` (receiving team ``team``, member ``member``) already at ``stage``.

    The project is as far along as its stage implies: past planning it has a handover plan, and at closure or
    closed its handover was accepted today, so every gate on the way out of ``stage`` is open. Keyword arguments
    override any field, which is how a test closes one gate.
    """

    def build(stage: Stage, **overrides):
        fields = {
            "manager": manager,
            "receiving_team": team,
            "members": [member],
            "stage": stage,
            "has_handover_plan": stage in PAST_PLANNING or stage == Stage.PLANNING,
            "actual_handover": timezone.localdate() if stage in (Stage.CLOSURE, Stage.CLOSED) else None,
        }
        fields.update(overrides)
        return ProjectFactory(**fields)

    return build


@pytest.fixture
def submitted_handover(handover, manager, owner, lead):
    """The ``handover`` fixture with every item done and verified, submitted to operations by the manager."""
    for item in handover.items.all():
        if item.side == Side.PROJECT:
            handover_services.item_complete(item=item, by=manager, evidence_url="https://wiki.example.com/runbook")
        else:
            handover_services.item_complete(item=item, by=owner, evidence_text="Rota published.")
    for item in handover.items.all():
        # Nobody verifies their own work: the lead checks what the owner completed.
        handover_services.item_verify(item=item, by=lead if item.done_by_id == owner.pk else owner)
    return handover_services.handover_submit(handover=handover, by=manager)
