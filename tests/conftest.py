"""Fixtures shared by the whole suite.

Tests that need a real PostgreSQL or Redis are marked ``postgres`` / ``redis``. Without the service they skip with
the reason; with ``CI=true`` they fail instead, so that CI cannot pass by skipping them.
"""

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest
from _pytest.nodeid import coerce_node_id
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from handover import services as handover_services
from projects import services as project_services
from projects.choices import Stage

from .factories import AdminFactory, ProjectFactory, TeamFactory, TemplateFactory, UserFactory
from .network import loopback_server, network  # noqa: F401  (fixtures: network is autouse, loopback only)

IN_CI = os.environ.get("CI", "").lower() == "true"
# `make test` runs the suite in several processes (pytest-xdist); each has its own test database (pytest-django
# suffixes its name with the worker's id, ``gw0``...). Empty when pytest runs in one process.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def pytest_configure(config):
    if XDIST_WORKER:
        # What the processes would share outside their databases is the Redis broker: each publishes to a queue of
        # its own, so that a real worker started by one of them never takes another's tasks (for rows of another
        # database), and purging one's queue leaves the others' alone.
        from config.celery import app

        app.conf.task_default_queue = f"handover-tests-{XDIST_WORKER}"


@pytest.hookimpl(wrapper=True)  # around pytest-xdist's own, which reads the groups off the items
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's ``--dist loadgroup``, tests that share one thing run one after another in one process:
    the browser tests share a Chromium (package-scoped), the tests of Redis share a real Celery worker
    (module-scoped) and the Redis server, and the tests of a class that builds its data once (a class-scoped
    fixture, such as the seeded demo) share that data, which would otherwise be built again in each process."""
    if not config.pluginmanager.hasplugin("xdist"):
        return (yield)
    _group_for_xdist(items)
    result = yield
    if getattr(config.option, "loadgroup", False):  # set in the processes of `-n N --dist loadgroup` only
        # pytest-xdist 3.8 sends a group to one process by the "@group" suffix it gives the node ids, as ``_nodeid``;
        # pytest 9 keeps a node's id in ``_id`` and ignores that, so every group would be scattered: set it there.
        for item in items:
            names = {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
            if names and "@" not in item.nodeid:
                item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(sorted(names))}")
    return result


def _group_for_xdist(items) -> None:
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.xdist_group("redis"))
        elif item.cls is not None and _uses_class_scoped_fixture(item):
            item.add_marker(pytest.mark.xdist_group(f"{item.path.stem}.{item.cls.__name__}"))


def _uses_class_scoped_fixture(item) -> bool:
    fixtures = getattr(item, "_fixtureinfo", None)
    if fixtures is None:
        return False
    return any(defs[-1].scope == "class" for defs in fixtures.name2fixturedefs.values() if defs)


@contextmanager
def rolled_back_after(django_db_blocker) -> Iterator[None]:
    """For data that takes seconds to build and that several tests only read: build it once inside this block (a
    class- or module-scoped fixture), in a transaction rolled back after the last of them. Each test still runs
    in its own savepoint inside it (pytest-django's ``db``), so what one test writes never reaches the next."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


def table_fingerprints(models: Iterable[type[Model]]) -> dict[str, tuple[int, str]]:
    """Each model's table as (rows, digest of every column of every row, in primary key order), all read in one
    query. Two fingerprints are equal exactly when no row was inserted, deleted or changed in between: the cheap way
    to check that a refused call wrote nothing (rather than reading every row into Python twice)."""
    quote = connection.ops.quote_name
    selects, params = [], []
    for model in models:
        table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        params.append(model._meta.label)
        if connection.vendor == "postgresql":
            rows = f"md5(COALESCE(string_agg(t::text, '|' ORDER BY t.{pk}), ''))"
            selects.append(f"SELECT %s, COUNT(*), {rows} FROM {table} t")
        else:  # SQLite: the rows themselves, as text (it has no digest function)
            columns = " || ',' || ".join(f"quote({quote(f.column)})" for f in model._meta.local_concrete_fields)
            selects.append(
                f"SELECT %s, COUNT(*), COALESCE(group_concat(r, '|'), '') "
                f"FROM (SELECT {columns} AS r FROM {table} ORDER BY {pk})"
            )
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects), params)
        return {label: (count, rows) for label, count, rows in cursor.fetchall()}


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run in CI)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _require_services(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if request.node.get_closest_marker("redis"):
        require_redis()


def require_redis() -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        skip_or_fail(f"needs Redis at {url}: {error}")


@pytest.fixture
def admin_user(db):
    return AdminFactory(username="admin")


@pytest.fixture
def manager(db):
    return UserFactory(username="manager")


@pytest.fixture
def member(db):
    return UserFactory(username="member")


@pytest.fixture
def viewer(db):
    return UserFactory(username="viewer")


@pytest.fixture
def lead(db):
    return UserFactory(username="lead")


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def ops_member(db):
    return UserFactory(username="opsmember")


@pytest.fixture
def team(db, lead, owner, ops_member):
    return TeamFactory(name="Service desk", lead=lead, members=[owner, ops_member])


@pytest.fixture
def template(db):
    return TemplateFactory(name="Small roll-out")


@pytest.fixture
def project(db, manager, member, team):
    return ProjectFactory(code="CRM-2026", name="CRM roll-out", manager=manager, receiving_team=team, members=[member])


@pytest.fixture
def planning_project(project, manager):
    return project_services.project_transition(project=project, to=Stage.PLANNING, by=manager)


@pytest.fixture
def handover(planning_project, template, owner, manager):
    """A preparing handover of the CRM project, built from the small template by its manager."""
    return handover_services.handover_create(
        project=planning_project,
        template=template,
        operations_owner=owner,
        target_date=timezone.localdate() + dt.timedelta(days=30),
        by=manager,
    )
