"""No page's query count grows with the rows it shows: each page is read with few rows and with many, and the two
counts must be equal (and are pinned, so that a change is a visible decision). The list pages, the handover page per
item, the project and team pages are in test_views.py; these are the rest."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from handover import services as hs
from handover.choices import StallRule
from handover.models import Handover
from tests.factories import ProjectFactory, ServiceFactory, TeamFactory, TemplateFactory, UserFactory

from .conftest import complete_all, item_of, verify_all
from .test_views import count_queries, flag, notify, url

pytestmark = pytest.mark.django_db

EXPECTED = {
    "plan": 7,
    "project-create": 5,
    "project-edit": 7,
    "password-change": 3,
    "login": 0,
    "stall-flag-page": 10,
    "home-lead": 13,
    "home-ops-member": 12,
    "home-owner-deciding": 11,
    "home-viewer": 8,
    "handover-decisions": 14,
}


def same_at_few_and_many(measure, grow, *, few: int = 2, many: int = 10) -> int:
    """``measure()`` after ``grow(few)`` and again after ``grow(many - few)`` more rows; asserts equality."""
    grow(few)
    at_few = measure()
    grow(many - few)
    at_many = measure()
    assert at_few == at_many, f"{at_few} queries with {few} rows, {at_many} with {many}"
    return at_many


def _more_people(team, count: int) -> None:
    """``count`` more people on ``team``: more operations owners to choose from."""
    for _ in range(count):
        person = UserFactory()
        team.members.add(person)


def test_the_plan_handover_page_does_not_query_per_template_owner_or_service(client_for, manager, planning_project):
    team = planning_project.receiving_team

    def grow(n: int) -> None:
        _more_people(team, n)
        for _ in range(n):
            TemplateFactory()
            ServiceFactory(team=team)

    client = client_for(manager)
    count = same_at_few_and_many(lambda: count_queries(client, url("handover:plan", planning_project.pk)), grow)
    assert count == EXPECTED["plan"]


def test_the_project_forms_do_not_query_per_person_or_team(client_for, manager, project):
    def grow(n: int) -> None:
        UserFactory.create_batch(n)
        TeamFactory.create_batch(n)
        project.members.add(*UserFactory.create_batch(n))

    client = client_for(manager)
    create = same_at_few_and_many(lambda: count_queries(client, reverse("projects:create")), grow)
    edit = same_at_few_and_many(lambda: count_queries(client, url("projects:edit", project.pk)), grow)
    assert (create, edit) == (EXPECTED["project-create"], EXPECTED["project-edit"])


def test_the_sign_in_and_password_pages_do_not_query_per_notification(client, client_for, manager, handover):
    def grow(n: int) -> None:
        for _ in range(n):
            notify(manager, flag(handover, StallRule.IDLE, resolved_at=timezone.now()))

    signed_in = client_for(manager)
    password = same_at_few_and_many(lambda: count_queries(signed_in, reverse("password_change")), grow)
    login = same_at_few_and_many(lambda: count_queries(client, reverse("login")), grow)
    assert (password, login) == (EXPECTED["password-change"], EXPECTED["login"])


def test_the_stall_flag_page_does_not_query_per_flag_or_notification(client_for, owner, manager, submitted_handover):
    """The page a stall action without htmx answers with when its form is refused."""
    stall = flag(submitted_handover, StallRule.REVIEW_OVERDUE)

    def grow(n: int) -> None:
        for _ in range(n):
            notify(owner, flag(submitted_handover, StallRule.IDLE, resolved_at=timezone.now()))
            hs.comment_add(handover=submitted_handover, by=manager, body="Any news?")

    client = client_for(owner)

    def measure() -> int:
        with CaptureQueriesContext(connection) as context:
            response = client.post(url("handover:stall-action", stall.pk, "acknowledge"), {f"f{stall.pk}-ack-note": ""})
        assert response.status_code == 400
        return len(context.captured_queries)

    assert same_at_few_and_many(measure, grow) == EXPECTED["stall-flag-page"]


def _handovers_to(team, *, manager, owner, template, count: int) -> None:
    """``count`` handovers to ``team``, each with a done item to verify and an open flag, notified to its people."""
    for _ in range(count):
        handover = hs.handover_create(
            project=ProjectFactory(manager=manager, receiving_team=team),
            template=template,
            operations_owner=owner,
            target_date=timezone.localdate() + dt.timedelta(days=20),
            by=manager,
        )
        hs.item_complete(item=item_of(handover), by=manager, evidence_text="Done.")
        stall = flag(handover, StallRule.VERIFICATION_WAITING)
        for person in (team.lead, owner):
            notify(person, stall)


@pytest.mark.parametrize("who", ["lead", "ops_member", "viewer"])
def test_home_does_not_query_per_row_for_a_lead_a_member_or_a_viewer(
    request, client_for, who, manager, owner, team, template
):
    client = client_for(request.getfixturevalue(who))

    def grow(n: int) -> None:
        _handovers_to(team, manager=manager, owner=owner, template=template, count=n)

    count = same_at_few_and_many(lambda: count_queries(client, reverse("home")), grow)
    assert count == EXPECTED[{"lead": "home-lead", "ops_member": "home-ops-member", "viewer": "home-viewer"}[who]]


def test_home_does_not_query_per_handover_waiting_for_the_owners_decision(
    client_for, manager, owner, ops_member, team, template
):
    """The owner (not the lead) deciding: whether they may still decide asks about their seat on the team, which
    the page reads once for every row."""

    def grow(n: int) -> None:
        for _ in range(n):
            handover = hs.handover_create(
                project=ProjectFactory(manager=manager, receiving_team=team),
                template=template,
                operations_owner=owner,
                target_date=timezone.localdate() + dt.timedelta(days=20),
                by=manager,
            )
            complete_all(handover, manager, ops_member)
            verify_all(handover, owner)
            hs.handover_submit(handover=handover, by=manager)

    client = client_for(owner)
    count = same_at_few_and_many(lambda: count_queries(client, reverse("home")), grow)
    assert count == EXPECTED["home-owner-deciding"]


def test_the_handover_page_does_not_query_per_decision(client_for, manager, owner, ops_member, handover):
    """GIVEN a handover returned and resubmitted again and again, each decision with its frozen snapshot and what it
    sent back WHEN the page is read after 2 and after 6 decisions THEN the same number of queries."""
    complete_all(handover, manager, ops_member)
    verify_all(handover, owner)
    sent = item_of(handover)

    def grow(n: int) -> None:
        for _ in range(n):
            hs.handover_submit(handover=Handover.objects.get(pk=handover.pk), by=manager)
            hs.handover_return(
                handover=Handover.objects.get(pk=handover.pk), by=owner, reason="Once more.", items=[sent]
            )
            hs.item_complete(item=sent, by=manager, evidence_text="Again.")
            hs.item_verify(item=sent, by=owner)

    client = client_for(owner)
    count = same_at_few_and_many(lambda: count_queries(client, url("handover:detail", handover.pk)), grow, many=6)
    assert handover.decisions.count() == 6
    assert count == EXPECTED["handover-decisions"]
