import pytest

from handover import services as hs
from handover.choices import HandoverStatus, ItemStatus, Side
from projects import services as ps
from projects.choices import Stage


@pytest.mark.django_db
def test_project_carried_from_initiation_to_closed(handover, manager, owner, lead):
    project = handover.project
    for item in handover.items.all():
        if item.side == Side.PROJECT:
            hs.item_complete(item=item, by=manager, evidence_url="https://wiki.example.com/x")
        else:
            hs.item_complete(item=item, by=owner, evidence_text="done")
    for item in handover.items.filter(side=Side.PROJECT):
        hs.item_verify(item=item, by=owner)
    for item in handover.items.filter(side=Side.OPERATIONS):
        hs.item_verify(item=item, by=lead)
    handover = hs.handover_submit(handover=handover, by=manager)
    handover = hs.handover_accept(handover=handover, by=owner)
    assert handover.status == HandoverStatus.ACCEPTED
    for to in (Stage.EXECUTION, Stage.MONITORING, Stage.CLOSURE, Stage.CLOSED):
        project = ps.project_transition(project=project, to=to, by=manager)
    assert project.stage == Stage.CLOSED
    assert handover.items.filter(status=ItemStatus.VERIFIED).count() == 7
