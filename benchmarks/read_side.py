"""Read-side benchmark: p50/p95 of the pages and API lists at two sizes, each beside its hand-written SQL floor.

    .venv/bin/python -m benchmarks.read_side                       # handover_bench10k and handover_bench100k
    .venv/bin/python -m benchmarks.read_side --sizes 10000,100000 --requests 30 \\
        --databases postgres://postgres@127.0.0.1:5432/handover_bench10k,handover_bench100k

Each database is one built by ``python -m benchmarks.dataset --handovers N`` (a bare name means
``postgres://postgres@127.0.0.1:5432/<name>``). For each, it starts the app as the Procfile does (gunicorn with
config/gunicorn.py: two worker processes; ``config.settings.local`` with DEBUG off, static files collected, the
API throttles off so that the loop measures work rather than 429s) on a free port of 127.0.0.1, signs in through
the login form as a project manager, the lead of the largest operations team, an operations owner and a viewer,
and gives the lead an API token. Then, per measured request, after a warm-up, it alternates in one loop:

* the HTTP request (``requests``, the response read whole, its status checked), and
* its floor: one hand-written SQL query returning the same data (built as JSON by PostgreSQL) plus ``json.dumps``,
  on a connection of this process.

It prints p50 and p95 of both, the ratio of the p50s, and the growth of each p50 from the smaller size to the
larger. A case slower than ``--budget`` seconds in all stops after five measured requests (a page taking seconds
says what it has to say in five). Only 127.0.0.1 is contacted. ``--json FILE`` also writes the figures.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIN_REQUESTS = 5
DEFAULT_DATABASES = {10_000: "handover_bench10k", 100_000: "handover_bench100k"}


def _url(name: str) -> str:
    return name if "://" in name else f"postgres://postgres@127.0.0.1:5432/{name}"


# --------------------------------------------------------------------------------------------- the floors

# Projects the user may see (docs/domain.md "Confidential projects"), on the row ``p``.
VISIBLE = """(NOT p.confidential OR p.manager_id = %(me)s
  OR EXISTS (SELECT 1 FROM projects_project_members m WHERE m.project_id = p.id AND m.user_id = %(me)s)
  OR p.receiving_team_id IN (SELECT id FROM operations_operationsteam WHERE lead_id = %(me)s
                             UNION ALL SELECT operationsteam_id FROM operations_operationsteam_members
                             WHERE user_id = %(me)s))"""
TEAMS_OF = """(SELECT id FROM operations_operationsteam WHERE lead_id = %(me)s
  UNION ALL SELECT operationsteam_id FROM operations_operationsteam_members WHERE user_id = %(me)s)"""
USER = "json_build_object('id', {u}.id, 'username', {u}.username, 'name', {u}.first_name || ' ' || {u}.last_name)"
RISKS = ("inefficiency", "failure", "adoption")
READINESS = (
    "json_build_object("
    + ", ".join(
        f"'{r}', json_build_object('mandatory', h.{r}_mandatory, 'not_applicable', h.{r}_not_applicable, "
        f"'done', h.{r}_done, 'verified', h.{r}_verified, 'waived_pending', h.{r}_waived_pending, "
        f"'verified_ratio', h.{r}_share)"
        for r in RISKS
    )
    + ", 'overall', json_build_object('verified_ratio', h.readiness_share, 'done_ratio', h.done_share))"
)
HANDOVER_ROW = f"""json_build_object(
  'id', h.id,
  'project', json_build_object('id', p.id, 'code', p.code, 'name', p.name, 'stage', p.stage,
                               'manager', {USER.format(u="pm")}, 'confidential', p.confidential),
  'template', CASE WHEN tp.id IS NULL THEN NULL ELSE json_build_object('id', tp.id, 'name', tp.name) END,
  'template_version', h.template_version,
  'receiving_team', json_build_object('id', t.id, 'name', t.name),
  'service', CASE WHEN s.id IS NULL THEN NULL ELSE json_build_object('id', s.id, 'name', s.name) END,
  'operations_owner', {USER.format(u="o")},
  'deliverables', h.deliverables, 'target_date', h.target_date, 'status', h.status,
  'status_changed_at', h.status_changed_at, 'submitted_at', h.submitted_at, 'decided_at', h.decided_at,
  'accepted_at', h.accepted_at, 'return_count', h.return_count, 'hypercare_started_at', h.hypercare_started_at,
  'hypercare_ends_on', h.hypercare_ends_on, 'hypercare_exit_criteria', h.hypercare_exit_criteria,
  'completed_at', h.completed_at, 'cancel_reason', h.cancel_reason, 'last_activity_at', h.last_activity_at,
  'readiness', {READINESS}, 'version', h.version, 'created_at', h.created_at)"""
HANDOVER_JOINS = """handover_handover h JOIN projects_project p ON p.id = h.project_id
  JOIN operations_operationsteam t ON t.id = h.receiving_team_id JOIN auth_user o ON o.id = h.operations_owner_id
  LEFT JOIN auth_user pm ON pm.id = p.manager_id LEFT JOIN handover_checklisttemplate tp ON tp.id = h.template_id
  LEFT JOIN operations_service s ON s.id = h.service_id"""


def _list_sql(where: str = "TRUE") -> str:
    # Counted up to 10,000 rows, as the API's pagination does (config.api: count_cap; count_exact says if whole).
    return f"""SELECT json_build_object(
  'count', (SELECT count(*) FROM (SELECT 1 FROM handover_handover h JOIN projects_project p ON p.id = h.project_id
            WHERE {VISIBLE} AND {where} LIMIT 10001) c),
  'results', (SELECT coalesce(json_agg({HANDOVER_ROW} ORDER BY h.target_date, h.id), '[]') FROM (
     SELECT h.id FROM handover_handover h JOIN projects_project p ON p.id = h.project_id
      WHERE {VISIBLE} AND {where} ORDER BY h.target_date, h.id LIMIT 50 OFFSET %(offset)s) page
     JOIN {HANDOVER_JOINS} ON h.id = page.id))"""


# What waits on the user: live handovers they own or their teams receive, and the projects they manage; each part
# an index range (owner, team, manager) rather than one OR that scans.
HOME_SQL = f"""WITH incoming AS MATERIALIZED (
    SELECT h.id FROM handover_handover h
     WHERE h.operations_owner_id = %(me)s AND h.status NOT IN ('completed', 'cancelled')
    UNION SELECT h.id FROM handover_handover h
     WHERE h.receiving_team_id IN {TEAMS_OF} AND h.status NOT IN ('completed', 'cancelled')),
  managed AS MATERIALIZED (
    SELECT h.id FROM handover_handover h JOIN projects_project p ON p.id = h.project_id WHERE p.manager_id = %(me)s)
SELECT json_build_object(
  'managed', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT p.id, p.code, p.name, p.stage, p.planned_handover, h.id AS handover, h.status, h.readiness_share
       FROM projects_project p LEFT JOIN handover_handover h ON h.project_id = p.id AND h.status <> 'cancelled'
      WHERE p.manager_id = %(me)s AND p.stage NOT IN ('closed', 'cancelled')
      ORDER BY p.planned_handover NULLS LAST, p.code LIMIT 10) x),
  'managed_count', (SELECT count(*) FROM projects_project p
                     WHERE p.manager_id = %(me)s AND p.stage NOT IN ('closed', 'cancelled')),
  'incoming', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT h.id, p.code, p.name, h.status, h.target_date, h.readiness_share, t.name AS team
       FROM handover_handover h JOIN projects_project p ON p.id = h.project_id
       JOIN operations_operationsteam t ON t.id = h.receiving_team_id
      WHERE h.id IN (SELECT id FROM incoming) ORDER BY h.target_date, h.id LIMIT 10) x),
  'incoming_count', (SELECT count(*) FROM incoming),
  'flags', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT f.id, f.rule, f.opened_at, p.code, h.id AS handover
       FROM handover_stallflag f JOIN handover_handover h ON h.id = f.handover_id
       JOIN projects_project p ON p.id = h.project_id
      WHERE f.resolved_at IS NULL
        AND (f.handover_id IN (SELECT id FROM incoming) OR f.handover_id IN (SELECT id FROM managed))
      ORDER BY f.opened_at DESC, f.id DESC LIMIT 10) x),
  'notifications', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT n.id, n.subject, n.created_at FROM handover_notification n
      WHERE n.recipient_id = %(me)s AND n.channel = 'in_app' AND n.read_at IS NULL
      ORDER BY n.created_at DESC, n.id DESC LIMIT 5) x))"""

BOARD_SHOWN = f"""{VISIBLE}
  AND (p.stage NOT IN ('closed', 'cancelled') OR p.stage_changed_at >= now() - interval '90 days')
  AND (%(team)s::bigint IS NULL OR p.receiving_team_id = %(team)s)"""
BOARD_SQL = f"""SELECT json_build_object(
  'counts', (SELECT json_object_agg(stage, n) FROM (
     SELECT p.stage, count(*) AS n FROM projects_project p WHERE {BOARD_SHOWN} GROUP BY p.stage) c),
  'cards', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT * FROM (
       SELECT p.id, p.code, p.name, p.stage, p.planned_handover, pm.username AS manager, t.name AS team,
              row_number() OVER (PARTITION BY p.stage ORDER BY p.planned_handover NULLS LAST, p.code) AS rn
         FROM projects_project p LEFT JOIN auth_user pm ON pm.id = p.manager_id
         LEFT JOIN operations_operationsteam t ON t.id = p.receiving_team_id
        WHERE {BOARD_SHOWN}) y WHERE rn <= 12) x))"""

ITEM_ROW = f"""json_build_object(
  'id', i.id, 'handover', i.handover_id, 'title', i.title, 'guidance', i.guidance, 'risk', i.risk,
  'mandatory', i.mandatory, 'side', i.side, 'position', i.position,
  'assignee', CASE WHEN a.id IS NULL THEN NULL ELSE {USER.format(u="a")} END, 'due_date', i.due_date,
  'status', i.status, 'status_changed_at', i.status_changed_at,
  'done_by', CASE WHEN d.id IS NULL THEN NULL ELSE {USER.format(u="d")} END, 'done_at', i.done_at,
  'verified_by', CASE WHEN v.id IS NULL THEN NULL ELSE {USER.format(u="v")} END, 'verified_at', i.verified_at,
  'sent_back_reason', i.sent_back_reason, 'waiver_justification', i.waiver_justification,
  'waiver_requested_by', CASE WHEN wr.id IS NULL THEN NULL ELSE {USER.format(u="wr")} END,
  'waiver_approved_by', CASE WHEN wa.id IS NULL THEN NULL ELSE {USER.format(u="wa")} END,
  'waiver_approved_at', i.waiver_approved_at, 'waiver_approved', i.status = 'waived' AND wa.id IS NOT NULL,
  'not_applicable_reason', i.not_applicable_reason,
  'evidence', (SELECT coalesce(json_agg(json_build_object('id', e.id, 'url', e.url, 'text', e.text,
                'added_by', e.added_by_id, 'added_at', e.added_at) ORDER BY e.added_at, e.id), '[]')
               FROM handover_evidence e WHERE e.item_id = i.id),
  'version', i.version)"""
ITEM_JOINS = """handover_checklistitem i LEFT JOIN auth_user a ON a.id = i.assignee_id
  LEFT JOIN auth_user d ON d.id = i.done_by_id LEFT JOIN auth_user v ON v.id = i.verified_by_id
  LEFT JOIN auth_user wr ON wr.id = i.waiver_requested_by_id
  LEFT JOIN auth_user wa ON wa.id = i.waiver_approved_by_id"""
ITEMS_SQL = f"""SELECT json_build_object(
  'count', (SELECT count(*) FROM handover_checklistitem i WHERE i.handover_id = %(handover)s),
  'results', (SELECT coalesce(json_agg(x.row ORDER BY x.position, x.id), '[]') FROM (
     SELECT {ITEM_ROW} AS row, i.position, i.id FROM {ITEM_JOINS} JOIN handover_handover h ON h.id = i.handover_id
       JOIN projects_project p ON p.id = h.project_id
      WHERE i.handover_id = %(handover)s AND {VISIBLE}) x))"""
DETAIL_SQL = f"""SELECT {HANDOVER_ROW} FROM {HANDOVER_JOINS} WHERE h.id = %(handover)s AND {VISIBLE}"""
PAGE_SQL = f"""SELECT json_build_object(
  'handover', {HANDOVER_ROW},
  'items', (SELECT coalesce(json_agg(x.row ORDER BY x.position, x.id), '[]') FROM (
     SELECT {ITEM_ROW} AS row, i.position, i.id FROM {ITEM_JOINS} WHERE i.handover_id = h.id) x),
  'activity', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT ac.id, ac.verb, ac.from_state, ac.to_state, ac.message, ac.created_at, u.username
       FROM handover_activity ac LEFT JOIN auth_user u ON u.id = ac.actor_id
      WHERE ac.handover_id = h.id ORDER BY ac.created_at DESC, ac.id DESC LIMIT 20) x),
  'decisions', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT dc.id, dc.kind, dc.decided_at, dc.reason, u.username FROM handover_decision dc
       JOIN auth_user u ON u.id = dc.decided_by_id WHERE dc.handover_id = h.id ORDER BY dc.decided_at, dc.id) x),
  'conditions', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT c.id, c.text, c.due_date, c.status, u.username FROM handover_condition c
       JOIN auth_user u ON u.id = c.owner_id WHERE c.handover_id = h.id ORDER BY c.due_date, c.id) x),
  'flags', (SELECT coalesce(json_agg(x), '[]') FROM (
     SELECT f.id, f.rule, f.opened_at FROM handover_stallflag f
      WHERE f.handover_id = h.id AND f.resolved_at IS NULL) x))
  FROM {HANDOVER_JOINS} WHERE h.id = %(handover)s AND {VISIBLE}"""


# -------------------------------------------------------------------------------------------- the measure


@dataclass
class Case:
    name: str
    path: str
    who: str  # whose session (pages) or "api" (the lead's token)
    sql: str
    params: dict


@dataclass
class Figures:
    p50: float
    p95: float
    floor_p50: float
    floor_p95: float
    status: int
    size_kb: float
    requests: int


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _one(cursor) -> tuple:
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the query found no row")
    return row


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _people(cursor) -> dict[str, Any]:
    """Who the dataset's JSON line names, found again in the database (benchmarks.dataset picks them the same way)."""
    cursor.execute(
        """SELECT t.id, t.lead_id FROM operations_operationsteam t
            LEFT JOIN operations_operationsteam_members m ON m.operationsteam_id = t.id
            GROUP BY t.id ORDER BY count(m.user_id) DESC, t.id LIMIT 1"""
    )
    team, lead = cursor.fetchone()
    cursor.execute(
        """SELECT manager_id FROM projects_project WHERE stage NOT IN ('closed', 'cancelled')
            GROUP BY manager_id ORDER BY count(*) DESC, manager_id LIMIT 1"""
    )
    (manager,) = cursor.fetchone()
    cursor.execute(
        """SELECT operations_owner_id FROM handover_handover WHERE status NOT IN ('completed', 'cancelled')
              AND operations_owner_id NOT IN (SELECT lead_id FROM operations_operationsteam WHERE lead_id IS NOT NULL)
            GROUP BY operations_owner_id ORDER BY count(*) DESC, operations_owner_id LIMIT 1"""
    )
    (owner,) = cursor.fetchone()
    cursor.execute("SELECT id FROM auth_user WHERE username = 'bench.viewer.00'")
    (viewer,) = cursor.fetchone()
    # A handover page worth showing: the team's, submitted (decision pending), with a full checklist and history.
    cursor.execute(
        """SELECT h.id FROM handover_handover h JOIN projects_project p ON p.id = h.project_id
            WHERE h.receiving_team_id = %s AND h.status = 'submitted' AND NOT p.confidential
            ORDER BY h.id LIMIT 1""",
        [team],
    )
    (handover,) = cursor.fetchone()
    ids = {"manager": manager, "lead": lead, "owner": owner, "viewer": viewer}
    cursor.execute("SELECT id, username FROM auth_user WHERE id = ANY(%s)", [list(ids.values())])
    names = dict(cursor.fetchall())
    return {"ids": ids, "usernames": {k: names[v] for k, v in ids.items()}, "team": team, "handover": handover}


def _cases(people: dict[str, Any]) -> list[Case]:
    ids, team, handover = people["ids"], people["team"], people["handover"]
    lead = ids["lead"]
    cases = [
        Case(f"home page, {role}", "/", role, HOME_SQL, {"me": ids[role]})
        for role in ("manager", "lead", "owner", "viewer")
    ]
    cases += [
        Case("board, one team", f"/portfolio/?team={team}", "lead", BOARD_SQL, {"me": lead, "team": team}),
        Case("board, all teams", "/portfolio/", "lead", BOARD_SQL, {"me": lead, "team": None}),
        Case("handover page", f"/handovers/{handover}/", "lead", PAGE_SQL, {"me": lead, "handover": handover}),
        Case(
            "API handovers, page 1",
            "/api/v1/handovers/?page_size=50",
            "api",
            _list_sql(),
            {"me": lead, "offset": 0},
        ),
        Case(
            "API handovers, page 100",
            "/api/v1/handovers/?page_size=50&page=100",
            "api",
            _list_sql(),
            {"me": lead, "offset": 99 * 50},
        ),
        Case(
            "API handovers, team + failure readiness < 0.5",
            f"/api/v1/handovers/?page_size=50&readiness_below=0.5&readiness_risk=failure&receiving_team={team}",
            "api",
            _list_sql("h.failure_share < 0.5 AND h.receiving_team_id = %(team)s"),
            {"me": lead, "offset": 0, "team": team},
        ),
        Case(
            "API one handover",
            f"/api/v1/handovers/{handover}/",
            "api",
            DETAIL_SQL,
            {"me": lead, "handover": handover},
        ),
        Case(
            "API its items",
            f"/api/v1/items/?handover={handover}&page_size=50",
            "api",
            ITEMS_SQL,
            {"me": lead, "handover": handover},
        ),
    ]
    return cases


def _sign_in(base: str, username: str, password: str):
    import requests

    session = requests.Session()
    form = session.get(f"{base}/accounts/login/", timeout=60)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if not match:
        sys.exit("no CSRF token on the login form")
    answer = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": match.group(1)},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=60,
        allow_redirects=False,
    )
    if answer.status_code != 302:
        sys.exit(f"signing in as {username} failed: {answer.status_code}")
    return session


def _serve(database: str, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "false",
        "HANDOVER_PORT": str(port),
        "WEB_ACCESS_LOG": "",
        # The loop sends a few hundred API requests a minute from one token: measure the work, not the throttle.
        "API_RATE_TOKEN": "",
        "API_RATE_USER": "",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--config", "config/gunicorn.py"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    import requests

    for _ in range(300):
        try:
            requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=30)
            return server
        except requests.RequestException:
            time.sleep(0.2)
    server.kill()
    sys.exit(f"gunicorn did not answer on 127.0.0.1:{port}; see {log}")


def measure(database: str, *, requests_per_case: int, warmup: int, password: str, budget: float) -> tuple[dict, dict]:
    import psycopg
    import requests

    database = _url(database)
    with psycopg.connect(database.replace("postgres://", "postgresql://"), autocommit=True) as connection:
        with connection.cursor() as cursor:
            # A floor is the query as one would tune it by hand: without JIT, which PostgreSQL 15 switches on for
            # any plan estimated above jit_above_cost and which then spends 100+ ms compiling a 20 ms query.
            cursor.execute("SET jit = off")
            people = _people(cursor)
            cursor.execute("SELECT count(*) FROM handover_handover")
            (size,) = _one(cursor)
        token = _token(database, people["ids"]["lead"])
        port = _free_port()
        server = _serve(database, port, Path(f"/tmp/read_side_gunicorn_{port}.log"))
        base = f"http://127.0.0.1:{port}"
        try:
            sessions: dict[str, Any] = {
                role: _sign_in(base, people["usernames"][role], password)
                for role in ("manager", "lead", "owner", "viewer")
            }
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {token}"
            sessions["api"] = api
            results = {}
            for case in _cases(people):
                http: list[float] = []
                floor: list[float] = []
                status, length = 0, 0
                case_started = time.perf_counter()
                for k in range(warmup + requests_per_case):
                    if k >= warmup + MIN_REQUESTS and time.perf_counter() - case_started > budget:
                        break  # a slow case: its first requests are enough to tell
                    started = time.perf_counter()
                    try:
                        answer = sessions[case.who].get(base + case.path, timeout=60)
                        body = answer.content
                        status, length = answer.status_code, len(body)
                    except requests.RequestException:
                        status, length = 599, 0
                    elapsed = time.perf_counter() - started
                    if status != 200:
                        print(f"  {case.name}: HTTP {status}", file=sys.stderr)
                    started = time.perf_counter()
                    with connection.cursor() as cursor:
                        cursor.execute(case.sql, case.params)
                        (data,) = _one(cursor)
                    json.dumps(data, default=str)
                    floor_elapsed = time.perf_counter() - started
                    if k >= warmup:
                        http.append(elapsed)
                        floor.append(floor_elapsed)
                results[case.name] = Figures(
                    p50=statistics.median(http),
                    p95=_quantile(http, 0.95),
                    floor_p50=statistics.median(floor),
                    floor_p95=_quantile(floor, 0.95),
                    status=status,
                    size_kb=length / 1024,
                    requests=len(http),
                )
                figures = results[case.name]
                print(
                    f"  {case.name:<48} {figures.p50 * 1000:8.1f} {figures.p95 * 1000:8.1f} "
                    f"{figures.floor_p50 * 1000:8.1f} {figures.p50 / figures.floor_p50:7.1f}x  {status}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return {"handovers": size, **people["usernames"]}, {name: vars(f) for name, f in results.items()}


def _token(database: str, user_id: int) -> str:
    """An API token for ``user_id``, made by the token service in a child process on that database."""
    code = (
        "import django; django.setup()\n"
        "from django.contrib.auth import get_user_model\n"
        "from handover.tokens.services import token_create\n"
        f"user = get_user_model().objects.get(pk={user_id})\n"
        "print(token_create(by=user, name='read-side benchmark')[1])\n"
    )
    env = {**os.environ, "DATABASE_URL": database, "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    return out.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="sizes measured, comma-separated")
    parser.add_argument("--databases", help="database URLs or names, one per size (default handover_bench<N>k)")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per case (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="requests per case before measuring (default 3)")
    parser.add_argument("--password", default="bench")
    parser.add_argument(
        "--budget",
        type=float,
        default=60,
        help=f"seconds per case: past it, a case stops after {MIN_REQUESTS} measured requests (default 60)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    default = [DEFAULT_DATABASES.get(s, f"handover_bench{s}") for s in sizes]
    names = args.databases.split(",") if args.databases else default
    if len(names) != len(sizes):
        sys.exit("--databases: give one per size")
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    if subprocess.run(collect, cwd=ROOT).returncode:
        sys.exit("collectstatic failed")
    everything: dict[int, dict] = {}
    for size, name in zip(sizes, names, strict=True):
        print(f"{size} handovers ({name}): ms    p50      p95  floor p50   ratio", file=sys.stderr, flush=True)
        who, figures = measure(
            name, requests_per_case=args.requests, warmup=args.warmup, password=args.password, budget=args.budget
        )
        everything[size] = {"who": who, "figures": figures}
    _report(everything)
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


def _report(everything: dict[int, dict]) -> None:
    sizes = sorted(everything)
    first, last = sizes[0], sizes[-1]
    cases = list(everything[last]["figures"])
    growth_header = f"growth {first // 1000}k→{last // 1000}k"
    print(f"\n| what | size | n | p50 ms | p95 ms | SQL floor p50 ms | ratio | {growth_header} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in cases:
        for size in sizes:
            f = everything[size]["figures"].get(case)
            if f is None:
                continue
            growth = ""
            if size == last and case in everything[first]["figures"] and first != last:
                growth = f"{f['p50'] / everything[first]['figures'][case]['p50']:.2f}x"
            name = case if f["status"] == 200 else f"{case} (HTTP {f['status']})"
            print(
                f"| {name} | {size // 1000}k | {f['requests']} | {f['p50'] * 1000:.0f} | {f['p95'] * 1000:.0f} | "
                f"{f['floor_p50'] * 1000:.1f} | {f['p50'] / f['floor_p50']:.1f}x | {growth} |"
            )


if __name__ == "__main__":
    main()
