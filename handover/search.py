"""Search: projects by code and name, their handovers, checklist items by title; only what the user may see.

One query per kind, each bounded whatever the size of the organisation:

* **Candidates** come from an index, at most ``CANDIDATES`` per kind, without ordering: on PostgreSQL the trigram
  indexes on ``UPPER(code)``, ``UPPER(name)`` and ``UPPER(title)`` (``config.postgres.trigram_index``) serve
  ``icontains`` and ``startswith``; the exact code is the unique index. Visibility (``Project.objects.visible_to``,
  ``handovers_visible_to``) is part of the candidates' query, so what the user may not see never takes a place.
* **Ranking** runs over those candidates only: the exact code first, then a code that starts with the query, then
  a name (or title) that does, then trigram similarity on PostgreSQL (the code on SQLite), then the code.
* A query shorter than ``MIN_SUBSTRING`` characters finds a project by its exact code only (and its handovers):
  a trigram index cannot serve a substring of one or two characters, and every row would match it.

The query is taken literally: ``%``, ``_`` and backslashes are escaped by Django's lookups, quotes are parameters.
"""

from dataclasses import dataclass
from typing import Literal

from django.contrib.postgres.search import TrigramSimilarity
from django.db import connection
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Greatest
from django.urls import reverse

from config.errors import InvalidInput
from projects.models import Project

from .models import ChecklistItem
from .selectors import handovers_visible_to

MAX_QUERY = 100
MIN_SUBSTRING = 3
PER_KIND = 20
CANDIDATES = 200

Kind = Literal["project", "handover", "item"]


@dataclass(frozen=True)
class SearchResult:
    """One thing found, as the results page and ``GET /api/v1/search/`` show it."""

    kind: Kind
    id: int
    label: str
    project_code: str
    url: str  # in the API
    web_url: str  # the page


@dataclass(frozen=True)
class SearchResults:
    query: str
    results: list[SearchResult]
    # The query was too short to look in names and titles: only an exact project code was looked for.
    code_only: bool


def clean_query(raw: str | None) -> str:
    """The query as searched, stripped; refused (naming ``q``) when empty, too long, or holding a NUL character
    (which PostgreSQL refuses in text)."""
    if raw is None:
        raise InvalidInput("Type something to search for.", rule="query_required", field="q")
    if len(raw) > MAX_QUERY:
        raise InvalidInput(
            f"Search for at most {MAX_QUERY} characters ({len(raw):,} given).", rule="query_too_long", field="q"
        )
    if "\x00" in raw:
        raise InvalidInput("The search cannot contain a NUL character.", rule="query_invalid", field="q")
    query = raw.strip()
    if not query:
        raise InvalidInput("Type something to search for.", rule="query_required", field="q")
    return query


def search(user, raw: str | None) -> SearchResults:
    """What ``user`` may see that matches ``raw``: at most ``PER_KIND`` projects, handovers and items, ranked."""
    query = clean_query(raw)
    substring = len(query) >= MIN_SUBSTRING
    projects = _projects(user, query, substring=substring)
    handovers = _handovers(user, projects)
    items = _items(user, query) if substring else []
    return SearchResults(query=query, results=[*projects, *handovers, *items], code_only=not substring)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _candidates(queryset: QuerySet, *conditions: Q) -> Q:
    """Rows whose id is among at most ``CANDIDATES`` ids of ``queryset`` matching each of ``conditions``, taken in
    no order, so that each index scan stops there.

    On PostgreSQL the id lists are one ``UNION``, which the outer query joins through the primary key; an ``OR``
    of ``IN`` subqueries would make it scan the whole table. SQLite refuses a ``LIMIT`` inside a ``UNION``.
    """
    ids = [queryset.filter(condition).order_by().values("pk")[:CANDIDATES] for condition in conditions]
    if _postgres():
        first, *others = ids
        return Q(pk__in=first.union(*others)) if others else Q(pk__in=first)
    found = Q(pk__in=ids[0])
    for more in ids[1:]:
        found |= Q(pk__in=more)
    return found


def _projects(user, query: str, *, substring: bool) -> list[SearchResult]:
    code = query.upper()
    visible = Project.objects.visible_to(user)
    if substring:
        found = _candidates(
            visible, Q(code=code), Q(code__startswith=code), Q(code__icontains=query), Q(name__icontains=query)
        )
    else:
        found = Q(code=code)
    rank = Case(
        When(code=code, then=Value(0)),
        When(code__startswith=code, then=Value(1)),
        When(name__istartswith=query, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    ordering: list = ["_rank"]
    rows = visible.filter(found).annotate(_rank=rank)
    if _postgres() and substring:
        rows = rows.annotate(_similar=Greatest(TrigramSimilarity("code", query), TrigramSimilarity("name", query)))
        ordering.append("-_similar")
    rows = rows.order_by(*ordering, "code").only("pk", "code", "name")[:PER_KIND]
    return [
        SearchResult(
            kind="project",
            id=project.pk,
            label=f"{project.code} {project.name}",
            project_code=project.code,
            url=reverse("v1:project-detail", args=[project.pk]),
            web_url=reverse("projects:detail", args=[project.pk]),
        )
        for project in rows
    ]


def _handovers(user, projects: list[SearchResult]) -> list[SearchResult]:
    """The handovers of the projects found, in the projects' order, newest first within a project."""
    if not projects:
        return []
    place = {result.id: index for index, result in enumerate(projects)}
    rows = (
        handovers_visible_to(user)
        .filter(project_id__in=list(place))
        .select_related("project", "receiving_team")
        .only("pk", "status", "project__code", "project__name", "receiving_team__name")
    )
    ranked = sorted(rows, key=lambda handover: (place[handover.project_id], -handover.pk))[:PER_KIND]
    return [
        SearchResult(
            kind="handover",
            id=handover.pk,
            label=f"Handover of {handover.project.code} {handover.project.name} to {handover.receiving_team.name} "
            f"({handover.get_status_display().lower()})",
            project_code=handover.project.code,
            url=reverse("v1:handover-detail", args=[handover.pk]),
            web_url=reverse("handover:detail", args=[handover.pk]),
        )
        for handover in ranked
    ]


def _items(user, query: str) -> list[SearchResult]:
    visible: QuerySet[ChecklistItem] = ChecklistItem.objects.filter(handover__in=handovers_visible_to(user))
    rank = Case(
        When(title__iexact=query, then=Value(0)),
        When(title__istartswith=query, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    ordering: list = ["_rank"]
    rows = ChecklistItem.objects.filter(_candidates(visible, Q(title__icontains=query))).annotate(_rank=rank)
    if _postgres():
        rows = rows.annotate(_similar=TrigramSimilarity("title", query))
        ordering.append("-_similar")
    rows = (
        rows.select_related("handover__project")
        .only("pk", "title", "handover_id", "handover__project__code")
        .order_by(*ordering, "-handover_id", "position", "pk")[:PER_KIND]
    )
    return [
        SearchResult(
            kind="item",
            id=item.pk,
            label=item.title,
            project_code=item.handover.project.code,
            url=reverse("v1:item-detail", args=[item.pk]),
            web_url=reverse("handover:detail", args=[item.handover_id]) + f"#item-{item.pk}",
        )
        for item in rows
    ]
