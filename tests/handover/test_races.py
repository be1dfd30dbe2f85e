"""Races, on PostgreSQL with two real connections (STYLE.md "Tests"): two people act on the same handover at the
same moment, and the row lock in the services lets exactly one of them through.

Each competitor runs in its own thread, so on its own database connection; a barrier releases both calls together.
The rows they race on are committed first (``transaction=True``), as they would be in production.
"""

import datetime as dt
import threading
from collections.abc import Callable

import pytest
from django.utils import timezone

from config.errors import IllegalTransition
from handover import services as hs
from handover.choices import ActivityVerb, DecisionKind, HandoverStatus
from handover.models import Activity, ChecklistItem, Decision, Handover
from projects import services as ps
from projects.choices import ProjectEventKind, Stage
from projects.models import ProjectEvent
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 5


def run_together(*calls: Callable[[], object]) -> list[tuple[str, object]]:
    """Run each call in its own thread and connection, released at the same moment; ``[("ok", result) |
    ("error", exception), ...]`` in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, object]] = [("not run", None)] * len(calls)

    def compete(index: int, call: Callable[[], object]) -> None:
        from django.db import connection

        try:
            connection.ensure_connection()  # connect before the barrier, so that only the calls race
            barrier.wait(timeout=10)
            outcomes[index] = ("ok", call())
        except Exception as error:
            outcomes[index] = ("error", error)
        finally:
            connection.close()

    threads = [threading.Thread(target=compete, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a competitor is stuck (deadlock?)"
    return outcomes


def one_winner(outcomes: list[tuple[str, object]], *, rule: str) -> int:
    """The index of the one call that succeeded; the other must have been refused with ``rule``."""
    winners = [i for i, (kind, _) in enumerate(outcomes) if kind == "ok"]
    losers = [value for kind, value in outcomes if kind != "ok"]
    assert len(winners) == 1, outcomes
    assert len(losers) == 1
    assert isinstance(losers[0], IllegalTransition), repr(losers[0])
    assert losers[0].rule == rule
    return winners[0]


def new_planning_project(round_: int, people, team):
    project = ProjectFactory(code=f"RACE-{round_}", manager=people.manager, receiving_team=team)
    return ps.project_transition(project=project, to=Stage.PLANNING, by=people.manager)


def test_accept_and_return_at_once_let_exactly_one_decide(people, team, template, drive_to_submitted):
    """GIVEN a submitted handover WHEN the operations owner accepts while the team lead returns it, at the same
    moment THEN exactly one decides: one decision, one move out of submitted, and the other is refused."""
    for round_ in range(ROUNDS):
        project = new_planning_project(round_, people, team)
        handover = hs.handover_create(
            project=project,
            template=template,
            operations_owner=people.owner,
            target_date=timezone.localdate() + dt.timedelta(days=30),
            by=people.manager,
        )
        handover = drive_to_submitted(handover)

        outcomes = run_together(
            lambda h=handover: hs.handover_accept(handover=h, by=people.owner, note="Looks good."),
            lambda h=handover: hs.handover_return(handover=h, by=people.lead, reason="Runbooks are drafts."),
        )

        winner = one_winner(outcomes, rule="not_submitted")
        handover.refresh_from_db()
        project.refresh_from_db()
        decisions = list(Decision.objects.filter(handover=handover).values_list("kind", flat=True))
        moves_out = Activity.objects.filter(
            handover=handover, verb=ActivityVerb.STATUS_CHANGED, from_state=HandoverStatus.SUBMITTED
        )
        assert moves_out.count() == 1, f"round {round_}"
        if winner == 0:
            assert decisions == [DecisionKind.ACCEPTED]
            assert (handover.status, handover.return_count) == (HandoverStatus.ACCEPTED, 0)
            assert project.actual_handover is not None
        else:
            assert decisions == [DecisionKind.RETURNED]
            assert (handover.status, handover.return_count) == (HandoverStatus.RETURNED, 1)
            assert project.actual_handover is None
        assert moves_out.get().to_state == handover.status


def test_two_managers_creating_at_once_make_one_handover(people, team, template):
    """GIVEN a project without a handover WHEN its manager and an administrator both create one at the same moment
    THEN exactly one handover (with one checklist) exists and the other call is refused."""
    for round_ in range(ROUNDS):
        project = new_planning_project(round_, people, team)

        def create(by, project=project):
            return hs.handover_create(
                project=project,
                template=template,
                operations_owner=people.owner,
                target_date=timezone.localdate() + dt.timedelta(days=30),
                by=by,
            )

        outcomes = run_together(lambda: create(people.manager), lambda: create(people.admin))

        winner = one_winner(outcomes, rule="one_active_handover")
        handover = Handover.objects.get(project=project)
        assert handover.pk == outcomes[winner][1].pk
        assert handover.created_by == (people.manager, people.admin)[winner]
        assert ChecklistItem.objects.filter(handover__project=project).count() == template.items.count()
        assert Activity.objects.filter(handover__project=project, verb=ActivityVerb.CREATED).count() == 1
        planned = ProjectEvent.objects.filter(project=project, kind=ProjectEventKind.HANDOVER_PLANNED)
        assert planned.count() == 1
