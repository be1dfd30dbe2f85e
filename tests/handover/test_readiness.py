"""Readiness (docs/domain.md "Readiness"): per risk and overall, the share of mandatory items verified (or waived
with approval) and, separately, done; not applicable counted apart and left out of the shares.

``handover_readiness`` counts in the database, ``readiness_from_items`` counts loaded items; every case is checked
with both, and the two must agree. Items are built with factories in the exact state each case needs: readiness
only reads them.
"""

import pytest

from handover import services as hs
from handover.choices import ItemStatus, Risk, Side
from handover.selectors import RiskReadiness, handover_readiness, readiness_from_items
from tests.factories import ChecklistItemFactory, HandoverFactory, UserFactory

from .conftest import complete_items, item_of, verify_items

pytestmark = pytest.mark.django_db

OPEN, DONE, VERIFIED = ItemStatus.OPEN, ItemStatus.DONE, ItemStatus.VERIFIED
WAIVED, NOT_APPLICABLE = ItemStatus.WAIVED, ItemStatus.NOT_APPLICABLE
APPROVED = "approved waiver"  # a waived item with an operations approver


def in_database(handover):
    return handover_readiness(handover)


def in_memory(handover):
    return readiness_from_items(list(handover.items.all()))


COMPUTE = pytest.mark.parametrize("compute", [in_database, in_memory], ids=["handover_readiness", "from_items"])


@pytest.fixture
def approver(db):
    return UserFactory(username="approver")


@pytest.fixture
def build(approver):
    """``build({Risk.FAILURE: [VERIFIED, OPEN]}, optional={...})``: a handover with exactly these items."""

    def make(mandatory: dict, optional: dict | None = None):
        handover = HandoverFactory()
        for is_mandatory, table in ((True, mandatory), (False, optional or {})):
            for risk, statuses in table.items():
                for status in statuses:
                    ChecklistItemFactory(
                        handover=handover,
                        risk=risk,
                        mandatory=is_mandatory,
                        status=WAIVED if status == APPROVED else status,
                        waiver_approved_by=approver if status == APPROVED else None,
                    )
        return handover

    return make


def counts(r: RiskReadiness) -> tuple:
    return (r.mandatory, r.not_applicable, r.done, r.verified, r.waived_pending)


@COMPUTE
def test_counts_and_shares_per_risk_and_overall(compute, build):
    handover = build(
        {
            Risk.FAILURE: [VERIFIED, DONE, OPEN, NOT_APPLICABLE, WAIVED],
            Risk.INEFFICIENCY: [APPROVED, VERIFIED],
            Risk.ADOPTION: [NOT_APPLICABLE, NOT_APPLICABLE],
        },
        optional={Risk.FAILURE: [OPEN, OPEN], Risk.ADOPTION: [VERIFIED]},
    )
    readiness = compute(handover)

    failure = readiness.by_risk[Risk.FAILURE]
    assert counts(failure) == (5, 1, 3, 1, 1)
    assert (failure.applicable, failure.done_ratio, failure.verified_ratio) == (4, 0.75, 0.25)

    inefficiency = readiness.by_risk[Risk.INEFFICIENCY]
    assert counts(inefficiency) == (2, 0, 2, 2, 0)
    assert (inefficiency.done_ratio, inefficiency.verified_ratio) == (1.0, 1.0)

    adoption = readiness.by_risk[Risk.ADOPTION]
    assert counts(adoption) == (2, 2, 0, 0, 0)
    assert (adoption.applicable, adoption.done_ratio, adoption.verified_ratio) == (0, None, None)

    overall = readiness.overall
    assert counts(overall) == (9, 3, 5, 3, 1)
    assert (overall.applicable, overall.done_ratio, overall.verified_ratio) == (6, 5 / 6, 0.5)


@COMPUTE
def test_not_applicable_is_counted_apart_and_never_as_met(compute, build):
    readiness = compute(build({Risk.FAILURE: [OPEN, NOT_APPLICABLE], Risk.ADOPTION: [VERIFIED, NOT_APPLICABLE]}))
    failure, adoption = readiness.by_risk[Risk.FAILURE], readiness.by_risk[Risk.ADOPTION]
    assert (failure.not_applicable, failure.applicable, failure.done_ratio, failure.verified_ratio) == (1, 1, 0.0, 0.0)
    assert (adoption.not_applicable, adoption.applicable, adoption.done_ratio, adoption.verified_ratio) == (
        1,
        1,
        1.0,
        1.0,
    )
    assert (readiness.overall.not_applicable, readiness.overall.verified_ratio) == (2, 0.5)


@COMPUTE
def test_pending_waiver_counts_as_done_but_not_verified(compute, build):
    failure = compute(build({Risk.FAILURE: [WAIVED, OPEN]})).by_risk[Risk.FAILURE]
    assert counts(failure) == (2, 0, 1, 0, 1)
    assert (failure.done_ratio, failure.verified_ratio) == (0.5, 0.0)


@COMPUTE
def test_approved_waiver_counts_as_verified(compute, build):
    failure = compute(build({Risk.FAILURE: [APPROVED, OPEN]})).by_risk[Risk.FAILURE]
    assert counts(failure) == (2, 0, 1, 1, 0)
    assert (failure.done_ratio, failure.verified_ratio) == (0.5, 0.5)


@COMPUTE
def test_optional_items_are_ignored(compute, build):
    with_optional = compute(
        build({Risk.FAILURE: [DONE]}, optional={Risk.FAILURE: [VERIFIED, OPEN], Risk.ADOPTION: [VERIFIED]})
    )
    assert with_optional == compute(build({Risk.FAILURE: [DONE]}))
    assert counts(with_optional.by_risk[Risk.ADOPTION]) == (0, 0, 0, 0, 0)
    assert counts(with_optional.overall) == (1, 0, 1, 0, 0)


@COMPUTE
def test_a_risk_whose_items_are_all_not_applicable_has_no_ratio(compute, build):
    readiness = compute(build({Risk.ADOPTION: [NOT_APPLICABLE, NOT_APPLICABLE], Risk.FAILURE: [VERIFIED]}))
    adoption = readiness.by_risk[Risk.ADOPTION]
    assert (adoption.mandatory, adoption.applicable, adoption.done_ratio, adoption.verified_ratio) == (2, 0, None, None)
    as_dict = readiness.as_dict()
    assert (as_dict["adoption"]["done_ratio"], as_dict["adoption"]["verified_ratio"]) == (None, None)
    assert as_dict["overall"]["verified_ratio"] == 1.0


@COMPUTE
def test_an_empty_checklist_has_zero_counts_and_no_ratio(compute, build):
    readiness = compute(build({}, optional={Risk.FAILURE: [VERIFIED]}))
    assert set(readiness.by_risk) == {risk.value for risk in Risk}
    for part in (*readiness.by_risk.values(), readiness.overall):
        assert counts(part) == (0, 0, 0, 0, 0)
        assert (part.done_ratio, part.verified_ratio) == (None, None)


@COMPUTE
def test_only_the_handovers_own_items_count(compute, build):
    build({Risk.FAILURE: [VERIFIED, VERIFIED, VERIFIED]})
    readiness = compute(build({Risk.FAILURE: [OPEN]}))
    assert counts(readiness.overall) == (1, 0, 0, 0, 0)


@COMPUTE
def test_as_dict_reports_every_risk_and_overall_rounded(compute, build):
    as_dict = compute(build({Risk.INEFFICIENCY: [VERIFIED, DONE, OPEN]})).as_dict()
    assert set(as_dict) == {"overall", "inefficiency", "failure", "adoption"}
    assert as_dict["inefficiency"] == {
        "mandatory": 3,
        "not_applicable": 0,
        "done": 2,
        "verified": 1,
        "waived_pending": 0,
        "applicable": 3,
        "done_ratio": 0.6667,
        "verified_ratio": 0.3333,
    }


SCENARIOS = {
    "all-open": {Risk.FAILURE: [OPEN, OPEN], Risk.ADOPTION: [OPEN]},
    "mixed": {
        Risk.FAILURE: [VERIFIED, DONE, WAIVED, APPROVED, NOT_APPLICABLE, OPEN],
        Risk.INEFFICIENCY: [DONE, DONE, NOT_APPLICABLE],
        Risk.ADOPTION: [APPROVED, WAIVED],
    },
    "all-settled": {Risk.FAILURE: [VERIFIED], Risk.INEFFICIENCY: [APPROVED], Risk.ADOPTION: [NOT_APPLICABLE]},
    "all-not-applicable": {risk: [NOT_APPLICABLE] for risk in Risk},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_database_and_loaded_items_agree(scenario, build):
    handover = build(SCENARIOS[scenario], optional={Risk.ADOPTION: [VERIFIED, OPEN, WAIVED]})
    assert handover_readiness(handover) == readiness_from_items(handover.items.all())


def test_database_and_loaded_items_agree_along_a_real_checklist(handover, people):
    """GIVEN the small template's checklist WHEN it is worked through the services THEN both calculations agree at
    every step."""
    steps = [
        lambda: None,
        lambda: complete_items(handover, people, [item_of(handover, Risk.FAILURE)]),
        lambda: hs.item_waive(item=item_of(handover, Risk.ADOPTION), by=people.manager, justification="Vendor."),
        lambda: hs.item_mark_not_applicable(
            item=item_of(handover, Risk.INEFFICIENCY, Side.OPERATIONS), by=people.owner, reason="No SLA: internal."
        ),
        lambda: verify_items(handover, people),
        lambda: hs.item_approve_waiver(item=item_of(handover, Risk.ADOPTION), by=people.owner),
    ]
    for step in steps:
        step()
        assert handover_readiness(handover) == readiness_from_items(handover.items.all())
    failure = handover_readiness(handover).by_risk[Risk.FAILURE]
    assert counts(failure) == (2, 0, 1, 1, 0)


def test_handover_readiness_runs_one_query(build, django_assert_num_queries):
    handover = build(SCENARIOS["mixed"], optional={Risk.ADOPTION: [VERIFIED]})
    with django_assert_num_queries(1):
        handover_readiness(handover)
