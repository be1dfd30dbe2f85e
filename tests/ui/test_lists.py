"""The list pages (``/handovers/``, ``/projects/``) and the bounded portfolio board: paging keeps the filters, bad
paging or filter values are a 4xx naming the field, a confidential project is never listed to outsiders, the query
count does not grow with the rows, and the board caps its columns with "n more" into the filtered list."""

import datetime as dt
import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.web import paginate
from handover.choices import HandoverStatus, StallRule
from handover.models import Handover, StallFlag
from projects.choices import Stage
from projects.models import Project
from tests.factories import ProjectFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

HANDOVERS, PROJECTS, BOARD = "/handovers/", "/projects/", "/portfolio/"


def body(response) -> str:
    return response.content.decode()


def codes(html: str, row: str) -> list[str]:
    """The project codes of the rows (``data-testid=row``) of a list page, in order."""
    return re.findall(rf'data-testid="{row}" data-project="([^"]+)"', html)


def link(html: str, testid: str) -> str:
    return unescape(re.search(rf'href="([^"]+)"[^>]*data-testid="{testid}"', html)[1])


def projects(count: int, *, team, manager, stage=Stage.EXECUTION, prefix="P", **fields) -> list[Project]:
    """``count`` projects in one INSERT (no factory per row: these tests need rows, not their history)."""
    today = timezone.localdate()
    return Project.objects.bulk_create(
        Project(
            code=f"{prefix}-{n:03d}",
            name=f"Project {n}",
            manager=manager,
            receiving_team=team,
            stage=stage,
            stage_changed_at=timezone.now(),
            planned_handover=today + dt.timedelta(days=10 + n),
            **fields,
        )
        for n in range(count)
    )


def handovers(rows: list[Project], *, owner, status=HandoverStatus.PREPARING, flagged=True, **fields) -> list:
    """A handover per project (one INSERT), each with an open stall flag when ``flagged``."""
    now = timezone.now()
    made = Handover.objects.bulk_create(
        Handover(
            project=project,
            receiving_team_id=project.receiving_team_id,
            operations_owner=owner,
            target_date=project.planned_handover,
            status=status,
            status_changed_at=now,
            last_activity_at=now,
            created_at=now,
            **fields,
        )
        for project in rows
    )
    if flagged:
        StallFlag.objects.bulk_create(StallFlag(handover=h, rule=StallRule.IDLE, opened_at=now) for h in made)
    return made


def queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(path)
    assert response.status_code == 200, (path, body(response)[:500])
    return len(context.captured_queries)


# ------------------------------------------------------------------------------------------------- paging


def test_handover_list_pages_keep_every_filter(client_for, viewer, team, manager, owner):
    """GIVEN 60 preparing handovers to a team and others WHEN the list is filtered by team and status THEN page 1
    shows 50, its "next" link keeps team and status, and page 2 shows the other 10."""
    handovers(projects(60, team=team, manager=manager), owner=owner)
    handovers(projects(3, team=TeamFactory(), manager=manager, prefix="X"), owner=owner)
    client = client_for(viewer)

    first = body(client.get(HANDOVERS, {"team": team.pk, "status": "preparing", "ordering": "target_date"}))
    following = link(first, "page-next")
    second = body(client.get(HANDOVERS + following))

    assert len(codes(first, "handover-row")) == 50
    assert 'data-testid="saved-views"' in first  # "Save this view" of these filters, and the saved ones
    assert f"team={team.pk}" in following
    assert "status=preparing" in following
    assert "ordering=target_date" in following
    assert "page=2" in following
    assert codes(second, "handover-row") == [f"P-{n:03d}" for n in range(50, 60)]
    assert "51\u201360 of 60 handovers" in second
    assert "page=1" in link(second, "page-previous")
    assert f"team={team.pk}" in link(second, "page-previous")


def test_project_list_pages_keep_every_filter(client_for, viewer, team, manager):
    projects(55, team=team, manager=manager)
    projects(2, team=team, manager=manager, stage=Stage.PLANNING, prefix="PL")
    client = client_for(viewer)

    first = body(client.get(PROJECTS, {"team": team.pk, "stage": "execution"}))
    second = body(client.get(PROJECTS + link(first, "page-next")))

    assert len(codes(first, "project-row")) == 50
    assert 'data-testid="saved-views"' in first
    assert f"team={team.pk}" in link(first, "page-next")
    assert "stage=execution" in link(first, "page-next")
    assert codes(second, "project-row") == [f"P-{n:03d}" for n in range(50, 55)]


def test_a_count_past_the_cap_says_more_and_still_pages(db, team, manager):
    projects(12, team=team, manager=manager)
    rows = Project.objects.order_by("code")

    first = paginate(rows, "1", per_page=5, cap=7)
    third = paginate(rows, "3", per_page=5, cap=7)

    assert (first.count, first.capped, first.num_pages, first.has_next) == (7, True, None, True)
    assert [p.code for p in third.rows] == ["P-010", "P-011"]
    assert not third.has_next


BAD_PAGES = [("x", 200), ("-3", 200), ("1.5", 200), ("2", 404), ("99", 404), ("9" * 40, 404)]
BAD_FILTERS = [
    (HANDOVERS, {"team": "x"}, "team"),
    (HANDOVERS, {"status": "shipped"}, "status"),
    (HANDOVERS, {"manager": "9" * 25}, "manager"),
    (HANDOVERS, {"overdue": "maybe"}, "overdue"),
    (HANDOVERS, {"has_open_stall": "2"}, "has_open_stall"),
    (HANDOVERS, {"readiness_risk": "failure", "readiness_below": "1.5"}, "readiness_below"),
    (HANDOVERS, {"readiness_risk": "failure", "readiness_below": "nan"}, "readiness_below"),
    (HANDOVERS, {"readiness_below": "0.5"}, "readiness_risk"),
    (HANDOVERS, {"project": "abc"}, "project"),
    (HANDOVERS, {"ordering": "-id"}, "ordering"),
    (PROJECTS, {"stage": "done"}, "stage"),
    (PROJECTS, {"team": "99999999"}, "team"),
    (PROJECTS, {"ordering": "name;drop"}, "ordering"),
]


def test_a_bad_page_is_page_one_and_a_page_past_the_end_is_404(client_for, viewer, handover):
    client = client_for(viewer)

    for path in (HANDOVERS, PROJECTS):
        for page, status in BAD_PAGES:
            response = client.get(path, {"page": page})
            assert response.status_code == status, (path, page)
            assert status == 404 or "CRM-2026" in body(response)


def test_an_invalid_filter_is_a_400_naming_the_field(client_for, viewer, handover):
    client = client_for(viewer)

    for path, params, field in BAD_FILTERS:
        response = client.get(path, params)
        assert response.status_code == 400, (path, params)
        errors = body(response)[body(response).index('data-testid="filter-errors"') :]
        assert f"({field})" in errors[: errors.index("</div>")], (path, params)


def test_lists_accept_the_api_boolean_spellings(client_for, viewer, handover):
    flagged = client_for(viewer).get(HANDOVERS, {"has_open_stall": "0", "overdue": "False"})

    assert flagged.status_code == 200
    assert codes(body(flagged), "handover-row") == ["CRM-2026"]


# --------------------------------------------------------------------------------------------- visibility


def test_a_confidential_project_is_listed_only_to_its_participants(client_for, viewer, manager, team, owner):
    secret = ProjectFactory(code="SECRET-7", manager=manager, receiving_team=team, confidential=True)
    handovers([secret], owner=owner)
    outsider, insider = client_for(viewer), client_for(manager)

    for path in (HANDOVERS, PROJECTS, f"{PROJECTS}?stage=initiation", BOARD):
        assert "SECRET-7" not in body(outsider.get(path)), path
        assert "SECRET-7" in body(insider.get(path)), path
    # Its id is as unknown to an outsider as a missing one: a filter on it is refused, not answered empty.
    assert outsider.get(HANDOVERS, {"project": secret.pk}).status_code == 400
    assert codes(body(insider.get(HANDOVERS, {"project": secret.pk})), "handover-row") == ["SECRET-7"]


# -------------------------------------------------------------------------------------------- filters


def test_handover_filters_and_orderings_read_the_stored_readiness(client_for, viewer, team, manager, owner):
    rows = projects(3, team=team, manager=manager)
    ready, half, bare = handovers(rows, owner=owner, flagged=False)
    Handover.objects.filter(pk=ready.pk).update(failure_mandatory=2, failure_verified=2)
    Handover.objects.filter(pk=half.pk).update(failure_mandatory=2, failure_verified=1, failure_done=2)
    StallFlag.objects.create(handover=half, rule=StallRule.IDLE, opened_at=timezone.now())
    client = client_for(viewer)

    below = body(client.get(HANDOVERS, {"readiness_risk": "failure", "readiness_below": "0.6"}))
    by_readiness = body(client.get(HANDOVERS, {"ordering": "readiness"}))
    stalled = body(client.get(HANDOVERS, {"has_open_stall": "true"}))

    assert codes(below, "handover-row") == [half.project.code, bare.project.code]
    assert codes(by_readiness, "handover-row") == [bare.project.code, half.project.code, ready.project.code]
    assert codes(stalled, "handover-row") == [half.project.code]
    assert "1 open" in stalled
    assert "50%" in stalled  # the meter's verified share, from the stored counters


# ------------------------------------------------------------------------------------------ query counts

# session, user; the form's choices (teams, owners, managers, services for handovers; managers, teams for
# projects); the capped count and the page's rows; the person's saved views of the page; the unread notifications
# in the navigation. The board: teams, managers, the grouped counts, the ranked ids, their projects, their live
# handovers, the saved views, the unread notifications.
EXPECTED = {HANDOVERS: 10, PROJECTS: 8, BOARD: 10}


@pytest.mark.parametrize("path", [HANDOVERS, PROJECTS, BOARD])
def test_list_pages_take_the_same_queries_for_1_and_50_rows(
    client_for, viewer, team, manager, owner, django_assert_num_queries, path
):
    client = client_for(viewer)
    handovers(projects(1, team=team, manager=manager), owner=owner)
    one = queries(client, path)
    handovers(projects(49, team=team, manager=manager, prefix="Q"), owner=owner)

    with django_assert_num_queries(EXPECTED[path]):
        html = body(client.get(path))

    assert one == EXPECTED[path]
    assert len(codes(html, "handover-row") or codes(html, "project-row") or re.findall("board-card", html)) in (
        12,  # the board's column cap
        50,
    )


# ---------------------------------------------------------------------------------------------- the board


def test_board_columns_show_the_most_urgent_first_and_n_more_into_the_filtered_list(
    client_for, viewer, team, manager, owner, settings
):
    """GIVEN 5 projects in execution to a team (one overdue, one stalled) and the cap at 3 WHEN the board is filtered
    by the team THEN the column counts 5, shows the overdue one, the stalled one, then the earliest planned, and its
    "2 more" opens the projects list on execution and that team, where all 5 are."""
    settings.HANDOVER_BOARD_COLUMN_CAP = 3
    rows = projects(5, team=team, manager=manager)
    Project.objects.filter(pk=rows[4].pk).update(planned_handover=timezone.localdate() - dt.timedelta(days=1))
    handovers([rows[3]], owner=owner)
    projects(2, team=TeamFactory(), manager=manager, prefix="OTHER")
    client = client_for(viewer)

    html = body(client.get(BOARD, {"team": team.pk}))
    column = html[html.index('id="stage-execution"') : html.index('id="stage-monitoring"')]
    more = link(column, "column-more")
    listed = body(client.get(more))

    assert re.findall(r'data-project="([^"]+)"', column) == ["P-004", "P-003", "P-000"]
    assert 'data-testid="column-count">5<' in column
    assert ">2 more<" in column
    assert f"team={team.pk}" in more
    assert "stage=execution" in more
    assert len(codes(listed, "project-row")) == 5
    assert 'data-testid="board-summary">5 projects (filtered) · <span class="text-overdue">1 overdue' in html
    assert "1 stalled" in html


def test_board_shows_closed_projects_of_the_recent_window_unless_asked(client_for, viewer, team, manager):
    recent, old = projects(2, team=team, manager=manager, stage=Stage.CLOSED)
    Project.objects.filter(pk=old.pk).update(stage_changed_at=timezone.now() - dt.timedelta(days=200))
    client = client_for(viewer)

    html = body(client.get(BOARD))
    everything = body(client.get(BOARD, {"closed": "all"}))

    assert recent.code in html
    assert old.code not in html
    assert 'data-testid="column-older">1 older' in html
    assert "closed=all" in link(html, "board-older")
    assert old.code in everything
    assert recent.code in everything
    assert 'name="closed" value="all"' in everything  # filtering further keeps the choice


def test_board_managers_are_those_of_visible_projects(client_for, viewer, team):
    shown, hidden = UserFactory(first_name="Shown"), UserFactory(first_name="Hidden")
    projects(1, team=team, manager=shown)
    projects(1, team=team, manager=hidden, prefix="S", confidential=True)

    html = body(client_for(viewer).get(BOARD))

    assert "Shown" in html
    assert "Hidden" not in html
