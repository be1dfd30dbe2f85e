"""Pages stay bounded whatever the organisation's size: the home page shows the first rows of each section, the most
urgent first, with the section's total and links to the full filtered lists; the team page pages its handovers; the
handover page loads older activity and each decision's frozen checklist on demand, to those who may see it."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from handover import services as hs
from handover import views
from handover.choices import HandoverStatus, ItemStatus, Side, StallRule
from tests.factories import ChecklistItemFactory, HandoverFactory, ProjectFactory, UserFactory

from .test_views import body, count_queries, flag, notify, tid, url

pytestmark = pytest.mark.django_db


def _handovers(count: int, *, manager, team, owner, status=HandoverStatus.SUBMITTED, target_in: int = 20) -> list:
    """``count`` bare handovers of ``manager``'s projects to ``team``, each flagged, with a done operations item to
    verify, an item sent back and a notification to the people on both sides."""
    made = []
    for n in range(count):
        handover = HandoverFactory(
            project=ProjectFactory(manager=manager, receiving_team=team),
            operations_owner=owner,
            status=status,
            target_date=timezone.localdate() + dt.timedelta(days=target_in + n),
        )
        ChecklistItemFactory(handover=handover, side=Side.OPERATIONS, status=ItemStatus.DONE, done_at=timezone.now())
        ChecklistItemFactory(handover=handover, status=ItemStatus.OPEN, sent_back_reason="Missing the runbook.")
        stall = flag(handover, StallRule.IDLE)
        for person in (manager, owner, team.lead):
            notify(person, stall)
        made.append(handover)
    return made


def _hrefs(html: str) -> list[str]:
    return [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)" data-testid="all-link"', html)]


def test_home_sections_show_their_first_rows_their_total_and_links_to_the_full_lists(
    monkeypatch, client_for, manager, lead, owner, team
):
    """GIVEN three submitted and three returned handovers, each flagged, and sections of two rows WHEN each role
    reads home THEN every section shows two rows, its total, and "all n" links to the lists filtered the same way."""
    monkeypatch.setattr(views, "HOME_ROWS", 2)
    _handovers(3, manager=manager, team=team, owner=owner)
    _handovers(3, manager=manager, team=team, owner=owner, status=HandoverStatus.RETURNED)

    as_manager = body(client_for(manager).get(reverse("home")))
    as_lead = body(client_for(lead).get(reverse("home")))
    as_owner = body(client_for(owner).get(reverse("home")))

    assert as_manager.count(tid("my-project")) == 2
    assert as_manager.count(tid("sent-back-item")) == 2
    assert re.search(r"Your projects <span[^>]*>\(6\)</span>", as_manager)
    assert "Showing 2 of 6" in as_manager
    assert "Showing 2 of 3" in as_manager
    assert _hrefs(as_manager) == [
        f"/projects/?manager={manager.pk}",
        f"/handovers/?manager={manager.pk}&status=returned",
        f"/handovers/?manager={manager.pk}&status=returned",
        f"/handovers/?manager={manager.pk}&has_open_stall=true",
    ]
    assert as_lead.count(tid("incoming-handover")) == 2
    assert re.search(r"Coming to your teams <span[^>]*>\(6\)</span>", as_lead)
    live = "&".join(f"status={status}" for status in views.LIVE_STATUSES)
    assert _hrefs(as_lead) == [
        f"/handovers/?team={team.pk}&{live}",
        f"/handovers/?team={team.pk}&status=submitted",
        f"/handovers/?team={team.pk}&has_open_stall=true",
    ]
    # The owner decides their own handovers (not the team's): the full list is theirs as operations owner.
    assert as_owner.count(tid("to-decide-handover")) == 2
    assert f"/handovers/?operations_owner={owner.pk}&status=submitted" in _hrefs(as_owner)
    assert as_owner.count(tid("stall-flag")) == 2
    listed = body(client_for(owner).get(f"/handovers/?operations_owner={owner.pk}&status=submitted"))
    assert listed.count('data-testid="handover-row"') == 3


def test_home_reads_the_same_number_of_queries_at_1_and_at_50_live_handovers(client_for, manager, lead, owner, team):
    clients = {who: client_for(person) for who, person in (("manager", manager), ("lead", lead), ("owner", owner))}

    def measure() -> dict[str, int]:
        return {who: count_queries(client, reverse("home")) for who, client in clients.items()}

    _handovers(1, manager=manager, team=team, owner=owner)
    at_one = measure()
    _handovers(25, manager=manager, team=team, owner=owner)
    _handovers(24, manager=manager, team=team, owner=owner, status=HandoverStatus.RETURNED, target_in=-5)

    assert measure() == at_one == {"manager": 13, "lead": 13, "owner": 13}


def test_the_team_page_pages_its_handovers_and_keeps_the_other_parameters(
    monkeypatch, client_for, viewer, manager, owner, team
):
    monkeypatch.setattr(views, "TEAM_PAGE_SIZE", 2)
    _handovers(5, manager=manager, team=team, owner=owner)
    client = client_for(viewer)

    second = body(client.get(url("operations:team", team.pk) + "?view=mine&page=2"))
    odd = client.get(url("operations:team", team.pk) + "?page=x")

    assert second.count(tid("team-handover")) == 2
    assert "Page 2 of 3" in second
    assert 'href="?view=mine&amp;page=3#team-handovers"' in second
    assert 'href="?view=mine&amp;page=1#team-handovers"' in second
    assert f'href="/handovers/?team={team.pk}&amp;status=' in second
    assert odd.status_code == 200
    assert body(odd).count(tid("team-handover")) == 2


@pytest.fixture
def secret(manager, team, owner, template):
    """A confidential project's handover, returned once: a decision with its frozen checklist."""
    project = ProjectFactory(code="SECRET-9", manager=manager, receiving_team=team, confidential=True)
    handover = hs.handover_create(
        project=project,
        template=template,
        operations_owner=owner,
        target_date=timezone.localdate() + dt.timedelta(days=30),
        by=manager,
    )
    return handover


def test_older_activity_and_a_decisions_snapshot_are_404_to_whoever_may_not_see_the_handover(
    client_for, manager, owner, secret, handover
):
    outsider = UserFactory()
    hs.comment_add(handover=secret, by=manager, body="Confidential note")
    entry = secret.activity.order_by("-id").first()
    decision = secret.decisions.create(kind="returned", decided_by=owner, decided_at=timezone.now(), snapshot={})
    activity = url("handover:activity", secret.pk) + f"?before={entry.pk}"
    snapshot = url("handover:decision", secret.pk, decision.pk)

    assert client_for(outsider).get(activity).status_code == 404
    assert client_for(outsider, htmx=True).get(snapshot).status_code == 404
    assert client_for(manager).get(url("handover:decision", handover.pk, decision.pk)).status_code == 404
    shown = client_for(manager, htmx=True).get(snapshot)
    assert shown.status_code == 200
    assert tid("snapshot") in body(shown)
    assert "<html" not in body(shown)
    assert client_for(manager).get(activity).status_code == 200


@pytest.mark.parametrize("before", ["x", "-1", "²", "9" * 40, "999999999"])
def test_a_bad_activity_position_is_a_400_naming_it(client_for, manager, handover, before):
    response = client_for(manager, htmx=True).get(url("handover:activity", handover.pk) + f"?before={before}")

    assert response.status_code == 400
    assert "before" in body(response)


def test_the_handover_page_shows_the_latest_comments_of_each_thread_and_pages_the_rest(
    monkeypatch, client_for, manager, handover, secret
):
    monkeypatch.setattr(views, "COMMENTS_SHOWN", 2)
    monkeypatch.setattr(views, "COMMENTS_PAGE", 2)
    item = handover.items.order_by("position").first()
    for n in range(3):
        hs.comment_add(handover=handover, by=manager, body=f"On the whole {n}")
        hs.comment_add(handover=handover, by=manager, body=f"On the item {n}", item=item)
    client = client_for(manager)

    html = body(client.get(url("handover:detail", handover.pk))).split('id="activity"')[0]  # not the log
    thread = body(client.get(url("handover:comments", handover.pk) + f"?item={item.pk}&page=2"))

    assert "On the whole 2" in html
    assert "On the whole 0" not in html
    assert "On the item 1" in html
    assert "On the item 0" not in html
    assert html.count(tid("earlier-comments")) == 2
    assert f'href="/handovers/{handover.pk}/comments/?item={item.pk}"' in html
    assert "On the item 0" in thread
    assert "On the whole" not in thread
    assert client.get(url("handover:comments", handover.pk) + "?page=x").status_code == 200
    assert client.get(url("handover:comments", handover.pk) + "?item=x").status_code == 400
    other = secret.items.first().pk
    assert client.get(url("handover:comments", handover.pk) + f"?item={other}").status_code == 400
    assert client_for(UserFactory()).get(url("handover:comments", secret.pk)).status_code == 404
