"""The cheap "nothing was written" check (``table_fingerprints`` in tests/conftest.py) sees every kind of write."""

import pytest

from operations.models import OperationsTeam
from projects.models import Project

from .conftest import table_fingerprints
from .factories import ProjectFactory, TeamFactory

pytestmark = pytest.mark.django_db


def test_a_fingerprint_moves_with_any_insert_change_or_delete_and_only_then():
    team = TeamFactory(name="Service desk")
    ProjectFactory(code="CRM-2026", receiving_team=team)
    models = [OperationsTeam, Project]
    before = table_fingerprints(models)
    assert set(before) == {"operations.OperationsTeam", "projects.Project"}
    assert before["operations.OperationsTeam"][0] == 1
    assert table_fingerprints(models) == before

    OperationsTeam.objects.filter(pk=team.pk).update(description="Staffed 24/7")
    changed = table_fingerprints(models)
    assert changed["operations.OperationsTeam"] != before["operations.OperationsTeam"]
    assert changed["projects.Project"] == before["projects.Project"]

    OperationsTeam.objects.filter(pk=team.pk).update(description=team.description)  # the instance kept the old one
    assert table_fingerprints(models) == before  # changed back: the same rows again

    extra = TeamFactory(name="Field service")
    assert table_fingerprints(models)["operations.OperationsTeam"] != before["operations.OperationsTeam"]
    extra.delete()
    assert table_fingerprints(models) == before

    Project.objects.filter(code="CRM-2026").delete()
    assert table_fingerprints(models)["projects.Project"][0] == 0
