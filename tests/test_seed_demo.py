"""``manage.py seed_demo`` builds a believable organisation through the services, once."""

import io
from collections.abc import Iterator

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from handover.choices import ActivityVerb, HandoverStatus
from handover.models import Decision, Handover
from handover.stalls.services import detect_stalls
from operations.choices import StallRule
from operations.models import OperationsTeam
from projects.choices import STAGE_ORDER, ProjectEventKind, Stage
from projects.models import Project
from tests.conftest import rolled_back_after

User = get_user_model()


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


@pytest.fixture(scope="class")
def _seeded_once(django_db_setup, django_db_blocker) -> Iterator[str]:
    with rolled_back_after(django_db_blocker):
        yield seed()


@pytest.fixture
def seeded(_seeded_once, db) -> str:
    """The demo organisation, seeded once for ``TestTheSeededOrganisation`` (the seed takes seconds)."""
    return _seeded_once


class TestTheSeededOrganisation:
    """Read the one seeded organisation; each test's own writes are rolled back after it."""

    @pytest.mark.django_db
    def test_every_page_answers_its_people(self, seeded, client):
        """GIVEN the demo organisation and a stall detection pass WHEN each kind of user opens every page THEN each
        answers 200, except a confidential project's pages for those outside it (404)."""
        detect_stalls()
        handovers = list(Handover.objects.select_related("project"))
        # The pages a handover page loads on demand: each decision's frozen checklist, its older activity.
        decisions = list(Decision.objects.values_list("handover_id", "pk", "handover__project_id"))
        pages = [
            reverse("home"),
            reverse("handover:board"),
            reverse("handover:board") + "?closed=all",
            reverse("handover:list"),
            reverse("projects:list"),
            reverse("handover:search") + "?q=CRM",
            reverse("handover:notifications"),
            reverse("operations:team-list"),
            *[reverse("operations:team", args=[pk]) for pk in OperationsTeam.objects.values_list("pk", flat=True)],
        ]
        for username in ("priya.shah", "nina.berg", "grace.lindqvist", "raj.patel", "mia.jensen", "admin"):
            user = User.objects.get(username=username)
            client.force_login(user)
            visible = set(Project.objects.visible_to(user).values_list("pk", flat=True))
            for page in pages:
                assert client.get(page).status_code == 200, (username, page)
            for project in Project.objects.all():
                expected = 200 if project.pk in visible else 404
                response = client.get(reverse("projects:detail", args=[project.pk]))
                assert response.status_code == expected, (username, project.code)
            for handover in handovers:
                expected = 200 if handover.project_id in visible else 404
                response = client.get(reverse("handover:detail", args=[handover.pk]))
                assert response.status_code == expected, (username, handover.pk)
            for handover_id, decision_id, project_id in decisions:
                expected = 200 if project_id in visible else 404
                path = reverse("handover:decision", args=[handover_id, decision_id])
                assert client.get(path).status_code == expected, (username, path)
            for handover_id, project_id in {(h, p) for h, _, p in decisions}:
                expected = 200 if project_id in visible else 404
                path = reverse("handover:activity", args=[handover_id])
                assert client.get(path).status_code == expected, (username, path)
        client.force_login(User.objects.get(username="nina.berg"))
        # The seeded adoption flag on CRM-2026 is hers to acknowledge.
        assert 'data-testid="stall-acknowledge"' in client.get(reverse("home")).content.decode()

    @pytest.mark.django_db
    def test_projects_in_every_stage_and_handovers_in_every_status(self, seeded):
        assert set(Project.objects.values_list("stage", flat=True)) == set(Stage.values)
        assert set(Handover.objects.values_list("status", flat=True)) == set(HandoverStatus.values)
        assert Project.objects.filter(confidential=True).count() == 1
        assert "Projects: initiation 1," in seeded

    @pytest.mark.django_db
    def test_a_second_run_changes_nothing_and_says_so(self, seeded):
        before = row_counts()

        output = seed()

        assert "already present" in output
        assert "Sign in at /admin/ as admin / handover-demo" in output
        assert row_counts() == before

    @pytest.mark.django_db
    def test_every_stage_move_is_in_the_project_history(self, seeded):
        for project in Project.objects.all():
            moves = list(project.events.filter(kind=ProjectEventKind.STAGE_CHANGED).order_by("created_at", "id"))
            created = project.events.get(kind=ProjectEventKind.CREATED)
            path = [created.to_stage] + [move.to_stage for move in moves]
            assert path[-1] == project.stage, project.code
            for move, previous in zip(moves, path, strict=False):
                assert move.from_stage == previous, project.code
                assert move.actor_id == project.manager_id, project.code
            forward = [stage for stage in path if stage != Stage.CANCELLED]
            assert forward == STAGE_ORDER[: len(forward)], project.code  # one stage at a time, from initiation
            if moves:
                assert project.stage_changed_at == moves[-1].created_at, project.code
            if project.stage == Stage.CANCELLED:
                assert moves[-1].reason

    @pytest.mark.django_db
    def test_backdated_handover_history_stays_consistent(self, seeded):
        """The ages are moved after the fact; the history must still read in order and agree with the handover."""
        for handover in Handover.objects.select_related("project"):
            entries = list(handover.activity.order_by("id"))
            times = [entry.created_at for entry in entries]
            assert times == sorted(times), handover.project.code
            assert handover.last_activity_at == max(times), handover.project.code
            assert handover.created_at == times[0], handover.project.code
            moves = [entry for entry in entries if entry.verb == ActivityVerb.STATUS_CHANGED]
            if moves:
                assert moves[-1].to_state == handover.status, handover.project.code
                assert handover.status_changed_at == moves[-1].created_at, handover.project.code

    @pytest.mark.django_db
    def test_the_ages_give_stall_detection_something_to_find(self, seeded):
        result = detect_stalls()

        opened = {(flag.handover.project.code, flag.rule) for flag in result.opened}
        assert {rule for _code, rule in opened} == set(StallRule.values)
        assert ("FC14-LAUNCH", StallRule.REVIEW_OVERDUE) in opened
        assert ("EXPENSES-APP", StallRule.IDLE) in opened
        assert ("RC2-SORTER", StallRule.PAST_TARGET) in opened
        assert not {code for code, _rule in opened} & {"DESK-BOOKING"}  # the fresh one is not stalled


@pytest.mark.django_db
def test_the_printed_admin_login_works(client):
    output = seed("--password", "correct-horse-battery")

    assert "admin / correct-horse-battery" in output
    # Through the sign-in form: the lockout's backend needs the request (client.login gives authenticate none).
    for username in ("admin", "priya.shah"):
        response = client.post(reverse("login"), {"username": username, "password": "correct-horse-battery"})
        assert response.status_code == 302, username


@pytest.mark.django_db
def test_a_refused_service_call_leaves_nothing_half_seeded():
    OperationsTeam.objects.create(name="IT Service Desk")
    users_before = User.objects.count()

    with pytest.raises(CommandError, match=r"already exists"):
        seed()

    assert not Project.objects.exists()
    assert User.objects.count() == users_before
