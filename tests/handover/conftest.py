"""Fixtures for the handover tests.

Handovers are driven to each state through the services themselves (never by setting ``status``), and two checks
are shared by every service test:

* ``refused``: the call raises the expected error, naming its rule (and field), and writes nothing at all;
* ``records``: the call runs at a known moment and writes exactly the expected activity rows, moving
  ``Handover.last_activity_at`` to that moment.
"""

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import time_machine
from django.apps import apps
from django.db.models import Max
from django.utils import timezone

from handover import services as hs
from handover.choices import HandoverStatus, ItemStatus, Risk, Side
from handover.models import Activity, ChecklistItem, Handover
from tests.conftest import table_fingerprints

EVIDENCE_URL = "https://wiki.example.com/crm/runbook"


# ------------------------------------------------------------------------------------------------- people


@pytest.fixture
def people(manager, member, viewer, lead, owner, ops_member, admin_user) -> SimpleNamespace:
    """Everyone of docs/domain.md "People and roles", by role, for tables of actions."""
    return SimpleNamespace(
        manager=manager,
        member=member,
        viewer=viewer,
        lead=lead,
        owner=owner,
        ops_member=ops_member,
        admin=admin_user,
    )


# ----------------------------------------------------------------------------------------- checklist items


def item_of(handover: Handover, risk: Risk = Risk.FAILURE, side: Side = Side.PROJECT) -> ChecklistItem:
    """The mandatory item of ``risk`` and ``side`` (the small template has one of each)."""
    return handover.items.get(risk=risk, side=side, mandatory=True)


def optional_item(handover: Handover) -> ChecklistItem:
    """The small template's one optional item (project side, adoption)."""
    return handover.items.get(template_item__key="optional")


def complete_items(handover: Handover, people: SimpleNamespace, items=None) -> None:
    """Complete ``items`` (default: every open mandatory item) by their responsible side, with evidence.

    Project-side items are completed by the manager and operations-side items by an operations member, so that
    the operations owner may verify all of them (four eyes).
    """
    if items is None:
        items = handover.items.filter(mandatory=True, status=ItemStatus.OPEN)
    for item in items:
        by = people.manager if item.side == Side.PROJECT else people.ops_member
        hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL)


def verify_items(handover: Handover, people: SimpleNamespace, items=None) -> None:
    """The operations owner verifies ``items`` (default: every done mandatory item)."""
    if items is None:
        items = handover.items.filter(mandatory=True, status=ItemStatus.DONE)
    for item in items:
        hs.item_verify(item=item, by=people.owner)


@pytest.fixture
def drive_to_submitted(people) -> Callable[..., Handover]:
    """Complete and verify every mandatory item, then let the manager submit.

    ``optional_done=True`` also completes (but does not verify) the optional item, for tests that need a done
    item on a submitted or accepted handover.
    """

    def drive(handover: Handover, *, optional_done: bool = False) -> Handover:
        complete_items(handover, people)
        verify_items(handover, people)
        if optional_done:
            complete_items(handover, people, [optional_item(handover)])
        return hs.handover_submit(handover=handover, by=people.manager)

    return drive


# ------------------------------------------------------------------------------------ handovers by state


@pytest.fixture
def ready_handover(handover, people) -> Handover:
    """Preparing, every mandatory item verified, the optional item still open."""
    complete_items(handover, people)
    verify_items(handover, people)
    handover.refresh_from_db()
    return handover


@pytest.fixture
def submitted_handover(handover, drive_to_submitted) -> Handover:
    """Submitted with every mandatory item verified; the optional item still open."""
    return drive_to_submitted(handover)


@pytest.fixture
def returned_handover(submitted_handover, people) -> Handover:
    """Returned by the operations owner, the project-side failure item sent back to open."""
    returned = hs.handover_return(
        handover=submitted_handover,
        by=people.owner,
        reason="The restore test evidence is missing.",
        items=[item_of(submitted_handover)],
    )
    returned.refresh_from_db()
    return returned


@pytest.fixture
def accepted_handover(submitted_handover, people) -> Handover:
    return hs.handover_accept(handover=submitted_handover, by=people.owner, note="Ready to run.")


@pytest.fixture
def conditional_handover(submitted_handover, people) -> Handover:
    """Accepted with one condition, owned by the operations member and due in two weeks."""
    return hs.handover_accept_with_conditions(
        handover=submitted_handover,
        by=people.owner,
        conditions=[
            hs.ConditionInput(
                text="Run a restore drill with the night shift.",
                owner=people.ops_member,
                due_date=timezone.localdate() + dt.timedelta(days=14),
            )
        ],
    )


@pytest.fixture
def hypercare_handover(accepted_handover, people) -> Handover:
    return hs.handover_start_hypercare(
        handover=accepted_handover,
        by=people.owner,
        ends_on=timezone.localdate() + dt.timedelta(days=30),
        exit_criteria="Fewer than 5 P2 incidents a week; 80% of agents logged in daily.",
    )


@pytest.fixture
def completed_handover(hypercare_handover, people) -> Handover:
    return hs.handover_complete(handover=hypercare_handover, by=people.owner)


@pytest.fixture
def cancelled_handover(handover, people) -> Handover:
    return hs.handover_cancel(handover=handover, by=people.manager, reason="Project re-scoped.")


FIXTURE_FOR_STATUS = {
    HandoverStatus.PREPARING: "handover",
    HandoverStatus.SUBMITTED: "submitted_handover",
    HandoverStatus.RETURNED: "returned_handover",
    HandoverStatus.ACCEPTED: "accepted_handover",
    HandoverStatus.ACCEPTED_WITH_CONDITIONS: "conditional_handover",
    HandoverStatus.HYPERCARE: "hypercare_handover",
    HandoverStatus.COMPLETED: "completed_handover",
    HandoverStatus.CANCELLED: "cancelled_handover",
}


@pytest.fixture
def handover_in(request) -> Callable[[str], Handover]:
    """``handover_in("hypercare")``: the CRM handover driven to that state (one state per test)."""

    def get(status: str) -> Handover:
        handover = request.getfixturevalue(FIXTURE_FOR_STATUS[HandoverStatus(status)])
        handover.refresh_from_db()
        assert handover.status == status
        return handover

    return get


# ------------------------------------------------------------------------------------------ assertions

# Every table a handover service may write to, directly, through projects.services or through the outbox of
# notifications and webhook events: all models of the three apps.
_APPS = ("projects", "operations", "handover")


def db_state() -> dict[str, tuple[int, str]]:
    """Per table, its row count and a digest of all its rows (``table_fingerprints``: one query)."""
    return table_fingerprints(model for app in _APPS for model in apps.get_app_config(app).get_models())


_UNCHECKED = object()


@pytest.fixture
def refused():
    """``with refused(NotPermitted, rule="owner_only", watch=[handover, item]):`` the call is refused and nothing
    at all was written: every row of the projects, operations and handover apps (handovers, items, activity,
    decisions, conditions, evidence, comments, project events, the outbox of events and notifications...) is as
    before, and the watched objects keep their status and version after ``refresh_from_db``."""

    @contextmanager
    def check(
        error: type[Exception],
        *,
        rule: str,
        field: object = _UNCHECKED,
        says: str | None = None,
        watch=(),
    ) -> Iterator[pytest.ExceptionInfo]:
        before = db_state()
        watched = [(obj, type(obj).objects.values_list("status", "version").get(pk=obj.pk)) for obj in watch]
        with pytest.raises(error) as info:
            yield info
        assert info.value.rule == rule, info.value.message
        if field is not _UNCHECKED:
            assert info.value.field == field
        if says is not None:
            assert says in info.value.message
        after = db_state()
        for name in before:
            assert after[name] == before[name], f"a refused call changed {name} rows"
        for obj, (status, version) in watched:
            obj.refresh_from_db()
            assert (obj.status, obj.version) == (status, version)

    return check


def _plain_row(row: tuple) -> tuple:
    """(username, verb, from_state, to_state[, item pk]) with plain strings, for readable diffs."""
    actor, verb, from_state, to_state, *item = row
    return (
        getattr(actor, "username", actor),
        str(verb),
        str(from_state),
        str(to_state),
        *(getattr(i, "pk", i) for i in item),
    )


@pytest.fixture
def records():
    """``with records(handover, (who, verb, from_state, to_state), ...) as moment:`` runs the body with the clock
    frozen at ``moment`` (a new day, later than any activity so far) and then asserts that exactly these activity
    rows were written, all by then, and that the handover's ``last_activity_at`` moved to ``moment``.

    A row may name the item as a fifth element. ``handover=None`` (creation) checks whichever handover the rows
    belong to.
    """

    @contextmanager
    def check(handover: Handover | None, *expected: tuple) -> Iterator[dt.datetime]:
        latest = max([timezone.now(), *Handover.objects.values_list("last_activity_at", flat=True)])
        moment = (latest + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
        mark = Activity.objects.aggregate(last=Max("pk"))["last"] or 0
        with time_machine.travel(moment, tick=False):
            yield moment
        rows = list(Activity.objects.filter(pk__gt=mark).select_related("actor").order_by("pk"))
        written = [_plain_row((row.actor, row.verb, row.from_state, row.to_state, row.item_id)) for row in rows]
        wanted = [_plain_row(row) for row in expected]
        # Rows that name no item are compared without it.
        trimmed = [row[: len(wanted[i])] if i < len(wanted) else row for i, row in enumerate(written)]
        assert trimmed == wanted
        assert {row.created_at for row in rows} == {moment}
        touched = {row.handover_id for row in rows}
        if handover is not None:
            assert touched == {handover.pk}
        for pk in touched:
            assert Handover.objects.get(pk=pk).last_activity_at == moment

    return check
