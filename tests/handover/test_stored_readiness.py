"""Stored readiness (docs/domain.md "Readiness"): the counters on the handover equal what its items say after every
move the services make, refused moves included, and ``stored_readiness`` builds the same ``Readiness`` as
counting the items does."""

import random

import pytest

from config.errors import DomainError
from handover import services as hs
from handover.choices import HandoverStatus, ItemStatus, Risk, Side
from handover.models import Handover
from handover.readiness import COUNTER_FIELDS, drift, handover_readiness, recount, stored_readiness

from .conftest import EVIDENCE_URL

pytestmark = pytest.mark.django_db


def assert_stored_is_counted(handover: Handover) -> None:
    fresh = Handover.objects.get(pk=handover.pk)
    assert drift([handover.pk]) == []
    assert stored_readiness(fresh) == handover_readiness(fresh)


def test_a_planned_handover_is_born_counted(handover):
    readiness = stored_readiness(handover)  # the instance the service returned, no reload
    assert readiness == handover_readiness(handover)
    assert (readiness.overall.mandatory, readiness.by_risk[Risk.ADOPTION].mandatory) == (6, 2)
    fresh = Handover.objects.get(pk=handover.pk)
    assert (fresh.readiness_share, fresh.done_share, fresh.failure_share) == (0.0, 0.0, 0.0)


# Moves that need an item in one state mostly pick among such items, so that most moves are allowed.
_WANTS = {"verify": ItemStatus.DONE, "send_back": ItemStatus.DONE, "approve_waiver": ItemStatus.WAIVED}


def _move(handover: Handover, people, rng: random.Random):
    """One random move the services offer on a checklist, as (name, call), with a random item and actor."""
    [name] = rng.choices(list(MOVES), weights=list(MOVES.values()))
    items = list(handover.items.order_by("pk"))
    wanted = [i for i in items if i.status == _WANTS.get(name)]
    item = rng.choice(wanted if wanted and rng.random() < 0.8 else items)
    worker = people.manager if item.side == Side.PROJECT else people.ops_member
    planner = rng.choice([people.owner, people.manager])
    moves = [
        ("complete", lambda: hs.item_complete(item=item, by=worker, evidence_url=EVIDENCE_URL)),
        ("verify", lambda: hs.item_verify(item=item, by=people.owner)),
        ("send_back", lambda: hs.item_send_back(item=item, by=people.owner, reason="Not yet")),
        ("waive", lambda: hs.item_waive(item=item, by=planner, justification="Covered elsewhere")),
        ("approve_waiver", lambda: hs.item_approve_waiver(item=item, by=people.owner)),
        ("not_applicable", lambda: hs.item_mark_not_applicable(item=item, by=planner, reason="No such thing")),
        ("reopen", lambda: hs.item_reopen(item=item, by=rng.choice([people.owner, worker]), reason="Again")),
        ("mandatory", lambda: hs.item_update(item=item, by=people.owner, mandatory=not item.mandatory)),
        ("risk", lambda: hs.item_update(item=item, by=people.owner, risk=rng.choice(Risk.values))),
        (
            "add",
            lambda: hs.item_add(
                handover=handover,
                by=people.owner,
                title="Added",
                risk=rng.choice(Risk.values),
                side=rng.choice(Side.values),
                mandatory=rng.random() < 0.7,
            ),
        ),
        ("submit", lambda: hs.handover_submit(handover=handover, by=people.manager)),
        (
            "return",
            lambda: hs.handover_return(
                handover=handover,
                by=people.owner,
                reason="Back to you",
                items=list(handover.items.filter(status__in=(ItemStatus.DONE, ItemStatus.VERIFIED))[:3]),
            ),
        ),
    ]
    return name, dict(moves)[name]


# Each move and how often it comes: completing most, so that there is work to verify, send back and return.
MOVES = {
    "complete": 6,
    "verify": 3,
    "send_back": 1,
    "waive": 2,
    "approve_waiver": 2,
    "not_applicable": 2,
    "reopen": 2,
    "mandatory": 2,
    "risk": 1,
    "add": 1,
    "submit": 1,
    "return": 1,
}


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_random_moves_keep_the_stored_counters_true(seed, handover, people):
    """Random item moves, allowed or refused, through the services: after each one, the stored counters equal the
    items, and the instance the service hands back carries them too."""
    rng = random.Random(seed)
    hs.item_add(handover=handover, by=people.owner, title="Runbook", risk=Risk.FAILURE, side=Side.OPERATIONS)
    hs.item_add(handover=handover, by=people.manager, title="Optional", risk=Risk.INEFFICIENCY, mandatory=False)
    hs.item_add(handover=handover, by=people.owner, title="Training", risk=Risk.ADOPTION, side=Side.PROJECT)
    moved = set()
    for _ in range(40):
        name, call = _move(handover, people, rng)
        try:
            result = call()
        except DomainError:
            pass  # refused: writes nothing, so the counters still hold
        else:
            moved.add(name)
            owner = result if isinstance(result, Handover) else result.handover
            assert stored_readiness(owner) == handover_readiness(owner), name
        assert_stored_is_counted(handover)
    assert len(moved) >= 7, moved
    assert {"complete", "verify", "waive"} <= moved


def test_a_return_moves_several_items_at_once(handover, people):
    from .conftest import complete_items

    complete_items(handover, people)
    hs.handover_submit(handover=handover, by=people.manager)
    items = list(handover.items.filter(status=ItemStatus.DONE)[:3])
    returned = hs.handover_return(handover=handover, by=people.owner, reason="Missing runbooks", items=items)
    assert returned.status == HandoverStatus.RETURNED
    assert stored_readiness(returned).overall.done == 3
    assert_stored_is_counted(handover)


def test_recount_repairs_only_what_drifted(handover, people):
    other = hs.item_add(handover=handover, by=people.owner, title="Extra", risk=Risk.FAILURE).handover
    Handover.objects.filter(pk=handover.pk).update(failure_done=5, adoption_mandatory=0)
    [found] = drift()
    assert (found.handover_id, found.project_code) == (handover.pk, "CRM-2026")
    assert found.fields == {"failure_done": (5, 0), "adoption_mandatory": (0, 2)}
    assert recount([handover.pk]) == 1
    assert recount() == 0  # nothing left to change
    assert_stored_is_counted(other)
    assert len(COUNTER_FIELDS) == 15
