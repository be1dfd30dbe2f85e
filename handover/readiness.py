"""Readiness (docs/domain.md "Readiness"): what it is made of, and where it is kept.

Per risk, the counts of a handover's mandatory items that readiness is made of live on the handover itself
(``Handover.<risk>_mandatory`` and the like), with shares the database computes from them (``<risk>_share``,
``readiness_share``, ``done_share``). The services move the counts in the same transaction, and the same UPDATE of
the handover row, as every change to an item (``counts_of`` before and after, ``delta``); pages, lists, filters
and orderings read them without touching the items. ``recount`` and ``drift`` compare them with the items in one
set-based statement (``manage.py check_readiness``).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Q

from projects.models import Project

from .choices import ItemStatus, Risk
from .models import ChecklistItem, Handover

COUNTS = ("mandatory", "not_applicable", "done", "verified", "waived_pending")
# The stored counters, ``<risk>_<count>``, in a fixed order.
COUNTER_FIELDS = tuple(f"{risk}_{name}" for risk in Risk.values for name in COUNTS)
# The stored shares (verified or waived with approval, over applicable; 0 when nothing applies), by risk or overall.
SHARE_FIELDS = {"overall": "readiness_share", **{risk: f"{risk}_share" for risk in Risk.values}}

_DONE = (ItemStatus.DONE, ItemStatus.VERIFIED, ItemStatus.WAIVED)


@dataclass(frozen=True)
class RiskReadiness:
    """How far the mandatory items of one risk (or of all) have got."""

    mandatory: int
    not_applicable: int
    done: int
    verified: int
    waived_pending: int

    @property
    def applicable(self) -> int:
        return self.mandatory - self.not_applicable

    @property
    def done_ratio(self) -> float | None:
        return self.done / self.applicable if self.applicable else None

    @property
    def verified_ratio(self) -> float | None:
        return self.verified / self.applicable if self.applicable else None

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "applicable": self.applicable,
            "done_ratio": _round(self.done_ratio),
            "verified_ratio": _round(self.verified_ratio),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class Readiness:
    """Readiness per risk and overall (docs/domain.md "Readiness"): verified-or-approved-waived and, separately, done.

    Not-applicable items are left out of the shares and counted apart, so they never silently count as met.
    """

    by_risk: dict[str, RiskReadiness]
    overall: RiskReadiness

    def as_dict(self) -> dict:
        return {"overall": self.overall.as_dict(), **{risk: r.as_dict() for risk, r in self.by_risk.items()}}

    def counters(self) -> dict[str, int]:
        """As the handover stores them: ``{"<risk>_<count>": n}``."""
        return {f"{risk}_{name}": getattr(self.by_risk[risk], name) for risk in Risk.values for name in COUNTS}


def _readiness(counts: Mapping[str, Mapping[str, int]]) -> Readiness:
    by_risk = {risk: RiskReadiness(**{name: counts[risk][name] for name in COUNTS}) for risk in Risk.values}
    overall = RiskReadiness(**{name: sum(r[name] for r in counts.values()) for name in COUNTS})
    return Readiness(by_risk=by_risk, overall=overall)


# ------------------------------------------------------------------------------------------------ stored


def stored_readiness(handover: Handover) -> Readiness:
    """The handover's readiness from its stored counts (no query, if they were loaded with it)."""
    return _readiness({risk: {name: getattr(handover, f"{risk}_{name}") for name in COUNTS} for risk in Risk.values})


def counts_of(*, risk: str, mandatory: bool, status: str, waiver_approved: bool) -> dict[str, int]:
    """What one item adds to its handover's counters (nothing unless it is mandatory)."""
    if not mandatory:
        return {}
    waived = status == ItemStatus.WAIVED
    counts = {
        "mandatory": 1,
        "not_applicable": status == ItemStatus.NOT_APPLICABLE,
        "done": status in _DONE,
        "verified": status == ItemStatus.VERIFIED or (waived and waiver_approved),
        "waived_pending": waived and not waiver_approved,
    }
    return {f"{risk}_{name}": int(n) for name, n in counts.items() if n}


def item_counts(item: ChecklistItem) -> dict[str, int]:
    """``counts_of`` an item as it stands in memory."""
    return counts_of(
        risk=item.risk,
        mandatory=item.mandatory,
        status=item.status,
        waiver_approved=item.status == ItemStatus.WAIVED and item.waiver_approved_by_id is not None,
    )


def delta(before: Iterable[Mapping[str, int]], after: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """How the counters move when items counted ``before`` become ``after`` (the fields that change only)."""
    moves: dict[str, int] = {}
    for sign, side in ((-1, before), (1, after)):
        for counts in side:
            for name, n in counts.items():
                moves[name] = moves.get(name, 0) + sign * n
    return {name: n for name, n in moves.items() if n}


# ------------------------------------------------------------------------------------------ from the items


def readiness_from_items(items: Iterable[ChecklistItem]) -> Readiness:
    """Readiness of already-loaded items (no query)."""
    counts = {risk: dict.fromkeys(COUNTS, 0) for risk in Risk.values}
    for item in items:
        for field, n in item_counts(item).items():
            risk, name = field.split("_", 1)
            counts[risk][name] += n
    return _readiness(counts)


def readiness_aggregates(prefix: str = "") -> dict:
    """Count aggregates over mandatory checklist items.

    ``prefix`` is the lookup path from the queried model to the items (``"items__"`` from Handover).
    """
    p = prefix
    mandatory = Q(**{f"{p}mandatory": True})
    waived = Q(**{f"{p}status": ItemStatus.WAIVED})
    approved = Q(**{f"{p}waiver_approved_by__isnull": False})
    return {
        "mandatory": Count(f"{p}pk", filter=mandatory),
        "not_applicable": Count(f"{p}pk", filter=mandatory & Q(**{f"{p}status": ItemStatus.NOT_APPLICABLE})),
        "done": Count(f"{p}pk", filter=mandatory & Q(**{f"{p}status__in": _DONE})),
        "verified": Count(
            f"{p}pk", filter=mandatory & (Q(**{f"{p}status": ItemStatus.VERIFIED}) | (waived & approved))
        ),
        "waived_pending": Count(f"{p}pk", filter=mandatory & waived & ~approved),
    }


def handover_readiness(handover: Handover) -> Readiness:
    """Readiness recomputed from the items in the database: one grouped query (the stored one needs none)."""
    # Aliased: an annotation named like a field ("mandatory") would shadow it inside the other aggregates.
    aggregates = {f"n_{name}": aggregate for name, aggregate in readiness_aggregates().items()}
    rows = ChecklistItem.objects.filter(handover=handover).values("risk").annotate(**aggregates)
    counts = {risk: dict.fromkeys(COUNTS, 0) for risk in Risk.values}
    for row in rows:
        values: Mapping[str, Any] = row  # the aggregates come under the names built above
        counts[values["risk"]].update({name: values[f"n_{name}"] for name in COUNTS})
    return _readiness(counts)


# ---------------------------------------------------------------------------------------- recount, drift


def _counted(handover_ids: Sequence[int] | None) -> tuple[str, list]:
    """One grouped pass over the mandatory items: ``id`` and every counter of each handover (of ``handover_ids``,
    or all), zeros for a handover without mandatory items. Plain SQL valid on PostgreSQL and SQLite."""
    h, i = Handover._meta.db_table, ChecklistItem._meta.db_table
    approver = ChecklistItem.waiver_approved_by.field.column
    pending = f"i.status = %s AND i.{approver} IS NULL"
    approved = f"i.status = %s AND i.{approver} IS NOT NULL"
    conditions: dict[str, tuple[str, list]] = {
        "mandatory": ("i.id IS NOT NULL", []),
        "not_applicable": ("i.status = %s", [ItemStatus.NOT_APPLICABLE.value]),
        "done": ("i.status IN (%s, %s, %s)", [s.value for s in _DONE]),
        "verified": (f"(i.status = %s OR ({approved}))", [ItemStatus.VERIFIED.value, ItemStatus.WAIVED.value]),
        "waived_pending": (pending, [ItemStatus.WAIVED.value]),
    }
    columns, params = [], []
    for risk in Risk.values:
        for name in COUNTS:
            condition, values = conditions[name]
            columns.append(f"SUM(CASE WHEN i.risk = %s AND {condition} THEN 1 ELSE 0 END) AS {risk}_{name}")
            params += [risk, *values]
    where = ""
    if handover_ids is not None:
        where = f" WHERE h.id IN ({', '.join(['%s'] * len(handover_ids))})"
    sql = (
        f"SELECT h.id AS id, {', '.join(columns)} FROM {h} h"
        f" LEFT JOIN {i} i ON i.handover_id = h.id AND i.mandatory = %s{where} GROUP BY h.id"
    )
    return sql, [*params, True, *(handover_ids or ())]


def _differs(stored: str, counted: str) -> str:
    return " OR ".join(f"{stored}.{name} <> {counted}.{name}" for name in COUNTER_FIELDS)


# Enough ids per statement for SQLite's bound-parameter limit, with room for the counting's own parameters.
_CHUNK = 500


def _chunks(handover_ids: Iterable[int] | None) -> list[list[int] | None]:
    if handover_ids is None:
        return [None]
    ids = sorted(set(handover_ids))
    return [ids[n : n + _CHUNK] for n in range(0, len(ids), _CHUNK)]


def recount(handover_ids: Iterable[int] | None = None) -> int:
    """Set the stored counters of ``handover_ids`` (``None``: every handover) to what their items say, in one
    UPDATE (per 500 ids) that writes only the rows that differ. Returns how many handovers it changed."""
    changed = 0
    h = Handover._meta.db_table
    for chunk in _chunks(handover_ids):
        counted, params = _counted(chunk)
        assignments = ", ".join(f"{name} = c.{name}" for name in COUNTER_FIELDS)
        sql = f"UPDATE {h} SET {assignments} FROM ({counted}) c WHERE c.id = {h}.id AND ({_differs(h, 'c')})"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            changed += max(cursor.rowcount, 0)
    return changed


@dataclass(frozen=True)
class Drift:
    """A handover whose stored counters differ from its items: ``{field: (stored, counted)}``."""

    handover_id: int
    project_code: str
    fields: dict[str, tuple[int, int]]


def drift(handover_ids: Iterable[int] | None = None) -> list[Drift]:
    """The handovers (of ``handover_ids``, or all) whose stored counters differ from their items, by id."""
    found: list[Drift] = []
    h = Handover._meta.db_table
    p, project = Project._meta.db_table, Handover.project.field.column
    stored = ", ".join(f"h.{name}" for name in COUNTER_FIELDS)
    counted_columns = ", ".join(f"c.{name}" for name in COUNTER_FIELDS)
    for chunk in _chunks(handover_ids):
        counted, params = _counted(chunk)
        sql = (
            f"SELECT h.id, p.code, {stored}, {counted_columns} FROM {h} h"
            f" JOIN ({counted}) c ON c.id = h.id JOIN {p} p ON p.id = h.{project}"
            f" WHERE {_differs('h', 'c')} ORDER BY h.id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        n = len(COUNTER_FIELDS)
        for row in rows:
            pairs = zip(COUNTER_FIELDS, row[2 : 2 + n], row[2 + n :], strict=True)
            fields = {name: (int(s), int(c)) for name, s, c in pairs if int(s) != int(c)}
            found.append(Drift(handover_id=row[0], project_code=row[1], fields=fields))
    return found
