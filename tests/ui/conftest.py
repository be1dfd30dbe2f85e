"""Fixtures for the web UI tests: signed-in clients per role, and handovers driven to each state through the
services (never by setting ``status``)."""

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from handover import services as hs
from handover.choices import ItemStatus, Side
from handover.models import ChecklistItem, Handover

EVIDENCE_URL = "https://wiki.example.com/crm/runbook"


@pytest.fixture
def client_for(db) -> Callable[..., Client]:
    """``client_for(user)``: a test client signed in as ``user`` (``htmx=True`` sends the HX-Request header)."""

    def make(user, *, htmx: bool = False) -> Client:
        client = Client(headers={"HX-Request": "true"} if htmx else None)
        client.force_login(user)
        return client

    return make


def item_of(handover: Handover, risk: str = "failure", side: str = Side.PROJECT) -> ChecklistItem:
    """The small template's mandatory item of ``risk`` and ``side``."""
    return handover.items.get(risk=risk, side=side, mandatory=True)


def complete_all(handover: Handover, manager, ops_member) -> None:
    """Every open mandatory item done by its side, so that the operations owner may verify all of them."""
    for item in handover.items.filter(mandatory=True, status=ItemStatus.OPEN):
        by = manager if item.side == Side.PROJECT else ops_member
        hs.item_complete(item=item, by=by, evidence_url=EVIDENCE_URL)


def verify_all(handover: Handover, owner) -> None:
    for item in handover.items.filter(mandatory=True, status=ItemStatus.DONE):
        hs.item_verify(item=item, by=owner)


@pytest.fixture
def ready_handover(handover, manager, ops_member, owner) -> Handover:
    """Preparing, every mandatory item done and verified."""
    complete_all(handover, manager, ops_member)
    verify_all(handover, owner)
    handover.refresh_from_db()
    return handover


@pytest.fixture
def submitted_handover(ready_handover, manager) -> Handover:
    return hs.handover_submit(handover=ready_handover, by=manager)


@pytest.fixture
def returned_handover(submitted_handover, owner) -> Handover:
    """Returned with the project-side failure item sent back."""
    handover = hs.handover_return(
        handover=submitted_handover,
        by=owner,
        reason="The restore test evidence is missing.",
        items=[item_of(submitted_handover)],
    )
    handover.refresh_from_db()
    return handover


@pytest.fixture
def accepted_handover(submitted_handover, owner) -> Handover:
    return hs.handover_accept(handover=submitted_handover, by=owner, note="Ready to run.")


@pytest.fixture
def conditional_handover(submitted_handover, owner, ops_member) -> Handover:
    return hs.handover_accept_with_conditions(
        handover=submitted_handover,
        by=owner,
        conditions=[
            hs.ConditionInput(
                text="Run a restore drill with the night shift.",
                owner=ops_member,
                due_date=timezone.localdate() + dt.timedelta(days=14),
            )
        ],
    )


@pytest.fixture
def hypercare_handover(accepted_handover, owner) -> Handover:
    return hs.handover_start_hypercare(
        handover=accepted_handover,
        by=owner,
        ends_on=timezone.localdate() + dt.timedelta(days=30),
        exit_criteria="Fewer than 5 P2 incidents a week.",
    )
