"""What comes to operations people (home page): the same rows whether the caller passes the user's teams or not."""

import pytest
from django.utils import timezone

from handover.choices import HandoverStatus, ItemStatus, Side
from handover.selectors import items_awaiting_verification_by, operations_handovers, teams_of
from tests.factories import ChecklistItemFactory, HandoverFactory, ProjectFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_operations_handovers_and_items_to_verify_are_the_teams_and_the_owned_ones_with_or_without_team_ids():
    """GIVEN someone who leads team A, belongs to team B and owns a handover to team C they are not on, and an
    outsider who owns one handover and is on no team WHEN their live handovers and items to verify are read, with
    their team ids and without THEN both give A's and B's live handovers and the owned one, never team D's, a
    completed one or a confidential one they may not see; items only of the teams, not their own."""
    user, other, outsider = UserFactory(), UserFactory(), UserFactory()
    team_a, team_b = TeamFactory(lead=user), TeamFactory(members=[user])
    team_c, team_d = TeamFactory(lead=other), TeamFactory(lead=other)

    def handover(team, **fields):
        return HandoverFactory(project=ProjectFactory(receiving_team=team), **fields)

    to_a, to_b = handover(team_a), handover(team_b, status=HandoverStatus.SUBMITTED)
    owned_on_c = handover(team_c, operations_owner=user)
    handover(team_d)
    handover(team_a, status=HandoverStatus.COMPLETED)
    hidden = HandoverFactory(
        project=ProjectFactory(receiving_team=team_d, confidential=True), operations_owner=outsider
    )
    outsiders = handover(team_d, operations_owner=outsider)

    def done(on, **fields):
        return ChecklistItemFactory(handover=on, status=ItemStatus.DONE, done_at=timezone.now(), **fields)

    to_verify = [done(to_a, done_by=other), done(to_b, side=Side.OPERATIONS, done_by=other)]
    done(to_b, side=Side.PROJECT, done_by=other)  # a member (not the owner) verifies only the operations side
    done(to_a, done_by=user)  # four eyes: not their own
    done(owned_on_c, done_by=other)  # an owner who is not on the team does not verify

    ids = [team.pk for team in teams_of(user)]
    assert sorted(ids) == sorted([team_a.pk, team_b.pk])
    expected = {to_a.pk, to_b.pk, owned_on_c.pk}
    assert set(operations_handovers(user, ids).values_list("pk", flat=True)) == expected
    assert set(operations_handovers(user).values_list("pk", flat=True)) == expected
    items = {item.pk for item in to_verify}
    assert set(items_awaiting_verification_by(user, ids).values_list("pk", flat=True)) == items
    assert set(items_awaiting_verification_by(user).values_list("pk", flat=True)) == items

    assert list(teams_of(outsider)) == []
    assert set(operations_handovers(outsider, []).values_list("pk", flat=True)) == {outsiders.pk}
    assert set(operations_handovers(outsider).values_list("pk", flat=True)) == {outsiders.pk}
    assert hidden.pk not in set(operations_handovers(outsider).values_list("pk", flat=True))
    assert not items_awaiting_verification_by(outsider, []).exists()
