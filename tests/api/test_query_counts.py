"""Every list endpoint answers in the same number of queries whether it returns one row or fifty.

Every list (top-level, and those under an object: a handover's items, an item's evidence, ...) is paginated and is
read at ``page_size=1`` and ``page_size=50`` over 51 rows. Each row carries the relations the serializers show
(members, evidence, authors, conditions, readings), so a missing ``select_related`` / ``prefetch_related`` shows up
as a count that grows. The exact count is pinned too, so that a regression (or an improvement) is a visible change
to this file. The lists are found in the schema generated from the URL conf: a new list without a builder here fails.

Requests are authenticated with ``force_authenticate`` as a non-staff participant: a token would add a lookup and,
once a minute, an update of ``last_used_at``, which is not what these tests are about.
"""

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from handover import saved_views
from handover import services as hs
from handover.choices import (
    Channel,
    ConditionStatus,
    DecisionKind,
    DeliveryStatus,
    EventType,
    ItemStatus,
    NotificationKind,
    Risk,
    Side,
    StallRule,
)
from handover.models import (
    ChecklistItem,
    Comment,
    Condition,
    Decision,
    Event,
    Evidence,
    Notification,
    StallFlag,
    WebhookDelivery,
    WebhookSubscription,
)
from handover.tokens import services as tokens
from operations.models import KpiReading
from projects.choices import ProjectEventKind, Stage
from projects.models import ProjectEvent
from tests.factories import (
    KpiFactory,
    ProjectFactory,
    ServiceFactory,
    TeamFactory,
    TemplateFactory,
    UserFactory,
)

BIG = 50

# The pinned number of queries for each list (the same at one row and at fifty).
EXPECTED = {
    "/api/v1/projects/": 3,
    "/api/v1/projects/{id}/history/": 3,
    "/api/v1/teams/": 3,
    "/api/v1/services/": 2,
    "/api/v1/services/{id}/kpis/": 3,
    "/api/v1/kpis/": 2,
    "/api/v1/kpis/{id}/readings/": 3,
    "/api/v1/templates/": 3,
    "/api/v1/handovers/": 2,  # readiness is stored on the handover: no item is read
    "/api/v1/handovers/{id}/items/": 4,
    "/api/v1/handovers/{id}/activity/": 3,
    "/api/v1/handovers/{id}/decisions/": 4,
    "/api/v1/handovers/{id}/comments/": 3,
    "/api/v1/handovers/{id}/conditions/": 3,
    "/api/v1/items/": 3,
    "/api/v1/items/{id}/comments/": 3,
    "/api/v1/items/{id}/evidence/": 3,
    "/api/v1/conditions/": 2,
    "/api/v1/tokens/": 2,
    "/api/v1/saved-views/": 2,
    "/api/v1/stalls/": 2,
    "/api/v1/notifications/": 2,
    "/api/v1/webhooks/": 2,
    "/api/v1/webhooks/{id}/deliveries/": 3,
}
# The lists that also page by cursor (?paginate=cursor): no count, so one query fewer than by page number.
CURSOR_EXPECTED = {
    "/api/v1/projects/": 2,
    "/api/v1/handovers/": 1,
    "/api/v1/items/": 2,
}

# ------------------------------------------------------------------------------------------------ builders


def _now():
    return timezone.now()


def _paged(url: str) -> tuple[str, str, int]:
    return f"{url}?page_size=1", f"{url}?page_size={BIG}", BIG


def _team(user=None) -> object:
    """A receiving team with a lead and two members; ``user`` joins it when given."""
    members = UserFactory.create_batch(2)
    if user is not None:
        members.append(user)
    return TeamFactory(members=members)


def _handover(manager, *, template=None, team=None):
    """A preparing handover of a fresh project managed by ``manager``, built through the service."""
    team = team or _team()
    project = ProjectFactory(manager=manager, receiving_team=team, members=UserFactory.create_batch(2))
    service = ServiceFactory(team=team)
    return hs.handover_create(
        project=project,
        template=template or TemplateFactory(with_items=False),
        operations_owner=team.lead,
        target_date=timezone.localdate() + dt.timedelta(days=30),
        service=service,
        by=manager,
    )


def _items(handover, count: int, *, evidence: int = 2) -> list[ChecklistItem]:
    """Items in every state that shows people (assignee, done by, verified by, waiver), each with evidence."""
    people = UserFactory.create_batch(4)
    now = _now()
    statuses = [ItemStatus.OPEN, ItemStatus.DONE, ItemStatus.VERIFIED, ItemStatus.WAIVED]
    items = ChecklistItem.objects.bulk_create(
        ChecklistItem(
            handover=handover,
            title=f"Item {n}",
            risk=list(Risk)[n % 3],
            side=list(Side)[n % 2],
            position=100 + n,
            assignee=people[n % 4],
            status=statuses[n % 4],
            done_by=people[(n + 1) % 4] if n % 4 else None,
            done_at=now if n % 4 else None,
            verified_by=people[(n + 2) % 4] if n % 4 == 2 else None,
            verified_at=now if n % 4 == 2 else None,
            waiver_requested_by=people[0] if n % 4 == 3 else None,
            waiver_approved_by=people[1] if n % 4 == 3 else None,
            waiver_justification="Not needed" if n % 4 == 3 else "",
        )
        for n in range(count)
    )
    Evidence.objects.bulk_create(
        Evidence(item=item, url=f"https://wiki.example.com/{item.pk}/{k}", added_by=people[k % 4], added_at=now)
        for item in items
        for k in range(evidence)
    )
    return items


def _comments(handover, count: int, *, item=None) -> None:
    authors = UserFactory.create_batch(3)
    now = _now()
    Comment.objects.bulk_create(
        Comment(handover=handover, item=item, author=authors[n % 3], body=f"Remark {n}", created_at=now)
        for n in range(count)
    )


def _conditions(handover, count: int, *, decisions: int = 1) -> None:
    """``decisions`` decisions sharing ``count`` conditions, half of them met."""
    people = UserFactory.create_batch(3)
    now = _now()
    made = Decision.objects.bulk_create(
        Decision(
            handover=handover,
            kind=DecisionKind.ACCEPTED_WITH_CONDITIONS,
            decided_by=people[n % 3],
            decided_at=now,
            reason=f"Decision {n}",
            snapshot={"items": []},
        )
        for n in range(decisions)
    )
    Condition.objects.bulk_create(
        Condition(
            handover=handover,
            decision=made[n % decisions],
            text=f"Condition {n}",
            owner=people[n % 3],
            due_date=timezone.localdate() + dt.timedelta(days=n),
            status=ConditionStatus.MET if n % 2 else ConditionStatus.OPEN,
            met_by=people[(n + 1) % 3] if n % 2 else None,
            met_at=now if n % 2 else None,
        )
        for n in range(count)
    )


def build_projects(user):
    team = _team(user)
    for n in range(BIG + 1):
        ProjectFactory(
            manager=user if n % 2 else UserFactory(),
            receiving_team=team,
            members=UserFactory.create_batch(2),
            confidential=bool(n % 3 == 0),
        )
    return _paged("/api/v1/projects/")


def build_project_history(user):
    project = ProjectFactory(manager=user, receiving_team=_team())
    actors = UserFactory.create_batch(3)
    ProjectEvent.objects.bulk_create(
        ProjectEvent(
            project=project,
            kind=ProjectEventKind.STAGE_CHANGED,
            from_stage=Stage.INITIATION,
            to_stage=Stage.PLANNING,
            actor=actors[n % 3],
            created_at=_now(),
        )
        for n in range(BIG + 1)
    )
    return _paged(f"/api/v1/projects/{project.pk}/history/")


def build_teams(user):
    for _ in range(BIG + 1):
        _team()
    return _paged("/api/v1/teams/")


def build_services(user):
    teams = [_team() for _ in range(3)]
    for n in range(BIG + 1):
        ServiceFactory(team=teams[n % 3])
    return _paged("/api/v1/services/")


def _kpis(service, count: int) -> None:
    recorder = UserFactory()
    for n in range(count):
        kpi = KpiFactory(service=service, baseline=Decimal("1.5"), review_date=timezone.localdate())
        KpiReading.objects.bulk_create(
            KpiReading(kpi=kpi, value=Decimal(n + k), measured_at=_now(), recorded_by=recorder) for k in range(2)
        )


def build_service_kpis(user):
    service = ServiceFactory()
    _kpis(service, BIG + 1)
    return _paged(f"/api/v1/services/{service.pk}/kpis/")


def build_kpis(user):
    _kpis(ServiceFactory(), BIG + 1)
    return _paged("/api/v1/kpis/")


def build_kpi_readings(user):
    kpi = KpiFactory()
    recorders = UserFactory.create_batch(3)
    KpiReading.objects.bulk_create(
        KpiReading(kpi=kpi, value=Decimal(n), measured_at=_now(), recorded_by=recorders[n % 3], note=f"n{n}")
        for n in range(BIG + 1)
    )
    return _paged(f"/api/v1/kpis/{kpi.pk}/readings/")


def build_templates(user):
    for _ in range(BIG + 1):
        TemplateFactory()
    return _paged("/api/v1/templates/")


def build_handovers(user):
    template = TemplateFactory()
    team = _team()
    for _ in range(BIG + 1):
        handover = _handover(user, template=template, team=team)
    _items(handover, 4)
    return _paged("/api/v1/handovers/")


def build_handover_items(user):
    handover = _handover(user)
    _items(handover, BIG + 1)
    return _paged(f"/api/v1/handovers/{handover.pk}/items/")


def build_handover_activity(user):
    handover = _handover(user)
    for n in range(BIG + 1):
        hs.comment_add(handover=handover, by=user, body=f"Note {n}")
    return _paged(f"/api/v1/handovers/{handover.pk}/activity/")


def build_handover_decisions(user):
    handover = _handover(user)
    _conditions(handover, 2 * (BIG + 1), decisions=BIG + 1)
    return _paged(f"/api/v1/handovers/{handover.pk}/decisions/")


def build_handover_comments(user):
    handover = _handover(user)
    item = _items(handover, 1)[0]
    _comments(handover, BIG // 2)
    _comments(handover, BIG // 2 + 1, item=item)
    return _paged(f"/api/v1/handovers/{handover.pk}/comments/")


def build_handover_conditions(user):
    handover = _handover(user)
    _conditions(handover, BIG + 1, decisions=2)
    return _paged(f"/api/v1/handovers/{handover.pk}/conditions/")


def build_items(user):
    team = _team()
    for _ in range(3):
        _items(_handover(user, team=team), BIG // 2)
    return _paged("/api/v1/items/")


def build_item_comments(user):
    handover = _handover(user)
    item = _items(handover, 1)[0]
    _comments(handover, 2)  # on the handover, not the item: not listed
    _comments(handover, BIG + 1, item=item)
    return _paged(f"/api/v1/items/{item.pk}/comments/")


def build_item_evidence(user):
    handover = _handover(user)
    _items(handover, 1, evidence=3)  # another item's evidence: not listed
    item = _items(handover, 1, evidence=BIG + 1)[0]
    return _paged(f"/api/v1/items/{item.pk}/evidence/")


def build_conditions(user):
    team = _team()
    for _ in range(2):
        _conditions(_handover(user, team=team), BIG // 2 + 1, decisions=2)
    return _paged("/api/v1/conditions/")


def build_tokens(user):
    for n in range(BIG + 1):
        tokens.token_create(by=user, name=f"tool {n}", read_only=bool(n % 2))
    tokens.token_create(by=UserFactory(), name="someone else's")
    return _paged("/api/v1/tokens/")


def build_saved_views(user):
    for n in range(BIG + 1):
        page = ("handovers", "projects")[n % 2]  # at most 50 of one page per person
        saved_views.saved_view_create(user=user, page=page, name=f"view {n}", filters={"overdue": "true"})
    saved_views.saved_view_create(user=UserFactory(), page="portfolio", name="someone else's", filters={})
    return _paged("/api/v1/saved-views/")


def _flags(handover, count: int) -> list[StallFlag]:
    """Resolved episodes of every rule, acknowledged and snoozed by different people, and one still open."""
    people = UserFactory.create_batch(3)
    now = _now()
    rules = list(StallRule)
    return StallFlag.objects.bulk_create(
        StallFlag(
            handover=handover,
            rule=rules[n % len(rules)],
            opened_at=now,
            resolved_at=now if n else None,
            acknowledged_by=people[n % 3],
            acknowledged_at=now,
            acknowledge_note="On it",
            snoozed_by=people[(n + 1) % 3],
            snoozed_until=now,
            snooze_reason="Waiting for the vendor",
            detail={"days": n},
        )
        for n in range(count)
    )


def build_stalls(user):
    team = _team()
    for _ in range(2):
        _flags(_handover(user, team=team), BIG // 2 + 1)
    return _paged("/api/v1/stalls/")


def build_notifications(user):
    flags = _flags(_handover(user), BIG + 1)
    now = _now()
    Notification.objects.bulk_create(
        Notification(
            recipient=user,
            channel=Channel.IN_APP,
            flag=flag,
            kind=NotificationKind.OPENED,
            next_attempt_at=now,
            subject=f"Stalled: {flag.rule}",
            body="Nothing moved for a week.",
            created_at=now,
        )
        for flag in flags
    )
    return _paged("/api/v1/notifications/")


def _subscriptions(user, count: int) -> list[WebhookSubscription]:
    return WebhookSubscription.objects.bulk_create(
        WebhookSubscription(owner=user, url=f"https://hooks.example.com/{n}", events=[EventType.HANDOVER_CREATED])
        for n in range(count)
    )


def build_webhooks(user):
    user.is_staff = True  # webhooks are for administrators
    user.save()
    _subscriptions(user, BIG + 1)
    return _paged("/api/v1/webhooks/")


def build_webhook_deliveries(user):
    user.is_staff = True
    user.save()
    subscription = _subscriptions(user, 1)[0]
    now = _now()
    events = Event.objects.bulk_create(
        Event(type=EventType.HANDOVER_SUBMITTED, payload={"n": n}, created_at=now) for n in range(BIG + 1)
    )
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event=event,
            subscription=subscription,
            status=DeliveryStatus.SENT,
            attempts=1,
            next_attempt_at=now,
            delivered_at=now,
            last_status_code=204,
            created_at=now,
        )
        for event in events
    )
    return _paged(f"/api/v1/webhooks/{subscription.pk}/deliveries/")


BUILDERS: dict[str, Callable] = {
    "/api/v1/projects/": build_projects,
    "/api/v1/projects/{id}/history/": build_project_history,
    "/api/v1/teams/": build_teams,
    "/api/v1/services/": build_services,
    "/api/v1/services/{id}/kpis/": build_service_kpis,
    "/api/v1/kpis/": build_kpis,
    "/api/v1/kpis/{id}/readings/": build_kpi_readings,
    "/api/v1/templates/": build_templates,
    "/api/v1/handovers/": build_handovers,
    "/api/v1/handovers/{id}/items/": build_handover_items,
    "/api/v1/handovers/{id}/activity/": build_handover_activity,
    "/api/v1/handovers/{id}/decisions/": build_handover_decisions,
    "/api/v1/handovers/{id}/comments/": build_handover_comments,
    "/api/v1/handovers/{id}/conditions/": build_handover_conditions,
    "/api/v1/items/": build_items,
    "/api/v1/items/{id}/comments/": build_item_comments,
    "/api/v1/items/{id}/evidence/": build_item_evidence,
    "/api/v1/conditions/": build_conditions,
    "/api/v1/tokens/": build_tokens,
    "/api/v1/saved-views/": build_saved_views,
    "/api/v1/stalls/": build_stalls,
    "/api/v1/notifications/": build_notifications,
    "/api/v1/webhooks/": build_webhooks,
    "/api/v1/webhooks/{id}/deliveries/": build_webhook_deliveries,
}

# ------------------------------------------------------------------------------------------------- tests


def _rows(response) -> list:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"count", "count_exact", "next", "previous", "results"}, "every list is paginated"
    return body["results"]


def _list_endpoints() -> set[str]:
    """Every GET of the URL conf that answers a list (paginated or not), as the schema generator finds them."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    lists = set()
    for path, item in schema["paths"].items():
        ok = item.get("get", {}).get("responses", {}).get("200", {})
        body = ok.get("content", {}).get("application/json", {}).get("schema", {})
        if body.get("type") == "array" or body.get("$ref", "").startswith("#/components/schemas/Paginated"):
            lists.add(path)
    return lists


def test_every_list_endpoint_is_covered():
    """A list endpoint added to the URL conf without a builder (and a pinned count) here fails."""
    lists = _list_endpoints()
    assert len(lists) >= 23
    assert lists == set(BUILDERS)
    assert set(BUILDERS) == set(EXPECTED)


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(BUILDERS), ids=lambda path: path.removeprefix("/api/v1/"))
def test_list_query_count_does_not_grow_with_the_number_of_rows(name, django_assert_num_queries):
    """GIVEN a list with at least fifty rows, each with the relations it shows
    WHEN it is read one row at a time and fifty rows at a time
    THEN both take the same, pinned, number of queries."""
    user = UserFactory(username="reader")
    small_url, large_url, size = BUILDERS[name](user)
    client = APIClient()
    client.force_authenticate(user)

    with CaptureQueriesContext(connection) as small:
        assert len(_rows(client.get(small_url))) == 1
    with CaptureQueriesContext(connection) as large:
        assert len(_rows(client.get(large_url))) == size

    assert len(small) == len(large), "\n".join(q["sql"] for q in large.captured_queries)
    with django_assert_num_queries(EXPECTED[name]):
        client.get(large_url)
    if name in CURSOR_EXPECTED:
        _assert_cursor_query_count(client, name)


def _assert_cursor_query_count(client: APIClient, url: str) -> None:
    """The same list by cursor (?paginate=cursor): one row, fifty rows and the following page each take the same,
    pinned, number of queries, none of them a count."""
    reads = []
    for params in ({"page_size": 1}, {"page_size": BIG}):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url, {"paginate": "cursor", **params})
        assert page.status_code == 200, page.content
        assert set(page.json()) == {"next", "previous", "results"}
        assert len(page.json()["results"]) == params["page_size"]
        reads.append(queries)
    with CaptureQueriesContext(connection) as following:
        assert client.get(page.json()["next"]).json()["results"]
    reads.append(following)
    assert [len(queries) for queries in reads] == [CURSOR_EXPECTED[url]] * 3
    assert not any("COUNT(" in q["sql"] for queries in reads for q in queries.captured_queries)


# ------------------------------------------------------------------------------------------------ actions

# The pinned number of queries of a move (the same for a handover of one item and of thirty), and how many of them
# read the checklist: the gate's own read for submit (the answer's readiness is stored on the handover). The lookup
# that finds the handover or item (404 when not visible) reads only its row.
ACTION_EXPECTED = {
    "handovers/submit": (10, 1),
    "handovers/cancel": (11, 0),
    "items/complete": (17, 3),
}


def _done_items(handover, count: int) -> list[ChecklistItem]:
    people = UserFactory.create_batch(2)
    return ChecklistItem.objects.bulk_create(
        ChecklistItem(
            handover=handover,
            title=f"Item {n}",
            risk=list(Risk)[n % 3],
            side=Side.PROJECT,
            position=100 + n,
            mandatory=True,
            status=ItemStatus.DONE,
            done_by=people[n % 2],
            done_at=_now(),
        )
        for n in range(count)
    )


def _move(move: str, handover) -> tuple[str, dict]:
    """The URL and body of ``move`` on ``handover`` (or on its first item, reopened for the occasion)."""
    if move == "items/complete":
        item = handover.items.order_by("id").first()
        ChecklistItem.objects.filter(pk=item.pk).update(status=ItemStatus.OPEN, done_by=None, done_at=None)
        return f"/api/v1/items/{item.pk}/complete/", {"evidence": {"text": "Runbook reviewed"}}
    resource, action = move.split("/")
    return f"/api/v1/{resource}/{handover.pk}/{action}/", {"reason": "Descoped"} if action == "cancel" else {}


@pytest.mark.django_db
@pytest.mark.parametrize("move", list(ACTION_EXPECTED))
def test_action_query_count_does_not_grow_with_the_checklist(move):
    """GIVEN a handover of one checklist item and another of thirty
    WHEN the same move is made on each
    THEN both take the same, pinned, number of queries, and only the reads that need the checklist read it."""
    manager = UserFactory()
    client = APIClient()
    client.force_authenticate(manager)
    counts = []
    for size in (1, 30):
        handover = _handover(manager)
        _done_items(handover, size)
        url, body = _move(move, handover)
        with CaptureQueriesContext(connection) as queries:
            response = client.post(url, body)
        assert response.status_code == 200, response.content
        on_items = [q["sql"] for q in queries.captured_queries if 'FROM "handover_checklistitem"' in q["sql"]]
        counts.append((len(queries), len(on_items)))
    assert counts[0] == counts[1] == ACTION_EXPECTED[move], "\n".join(q["sql"] for q in queries.captured_queries)
