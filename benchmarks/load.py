"""Mixed load: an 80/20 mix of reads and writes over the real pages and API, offered at fixed arrival rates.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/handover_bench100k REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m benchmarks.load --people "$(cat bench100k.json)" --rates 25,50,100,200 --duration 20

``--people`` is the JSON line ``python -m benchmarks.dataset`` printed (a project manager, the lead of the largest
operations team, an operations owner, a viewer, their password and the lead's team). Without ``--base-url`` it
starts gunicorn itself on a free loopback port, with the production settings, ``config/gunicorn.py`` and the
DATABASE_URL and REDIS_URL it was given, and the API throttles off: the run measures what the server can carry,
not one person's rate limit. With ``--base-url`` (127.0.0.1 only) it drives a server started by hand; start that
one with ``API_RATE_USER= API_RATE_TOKEN=``, or its answers are 429s (counted apart).

Open loop: request ``i`` of a rate is due at ``t0 + i / rate`` whatever happened to the ones before, and its
latency is counted from that due time, not from when it was actually sent, so a stalled server (or a late load
generator) shows in the figures instead of hiding in fewer requests (coordinated omission). Each request opens a
connection, as a reverse proxy without upstream keep-alive does, and sends ``Connection: close``. One process,
asyncio, raw HTTP/1.1: the generator shares the machine with the server and must stay cheap (its CPU share is
reported).

The mix (weights out of 100): reads 80, the home page of each role 16, the portfolio board of one team 10, a
handover's page 14, the API's handover list (50 a page) 14, one handover 14, its checklist 12; writes 20, a comment
on an item 8, an item's due date 4, completing an open project-side item (the manager, with evidence) 4, verifying
a done item (the operations owner) 4. Writes are made by the roles whose they are, on handovers in a state that
allows them, so they succeed; a write refused for the state it found (409, 412) is counted apart from errors.
Every answer is counted by kind: ok (2xx), 3xx (a page sent to the sign-in page), refused for state (409, 412),
shed (503), other 5xx, 429, other 4xx, timeouts (no answer within ``--timeout`` of the due time) and connection errors.
"""

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent

READS = [("home", 16), ("board", 10), ("handover_page", 14), ("api_list", 14), ("api_detail", 14), ("api_items", 12)]
WRITES = [("comment", 8), ("due_date", 4), ("complete", 4), ("verify", 4)]
ROLES = ("manager", "operations_lead", "operations_owner", "viewer")


# --------------------------------------------------------------------------------------------------- setup (sync)


class Session:
    """A person signed in to the web UI (session cookie) with an API token of their own, over plain http.client:
    used before and after the timed runs, never during."""

    def __init__(self, host: str, port: int, username: str) -> None:
        self.host, self.port, self.username = host, port, username
        self.cookies: dict[str, str] = {}
        self.token = ""
        self.token_id = 0
        self.user_id = 0

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False) -> tuple[int, Any]:
        headers = {"Host": f"{self.host}:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data: bytes | None = None
        if form:
            data = urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if path.startswith("/api/"):
            headers["Accept"] = "application/json"
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
        if method not in ("GET", "HEAD") and "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
        finally:
            connection.close()
        if response.getheader("Content-Type", "").startswith("application/json") and raw:
            return response.status, json.loads(raw)
        return response.status, raw

    def sign_in(self, password: str) -> None:
        self.request("GET", "/accounts/login/")
        status, _ = self.request(
            "POST",
            "/accounts/login/",
            {"username": self.username, "password": password, "csrfmiddlewaretoken": self.cookies["csrftoken"]},
            form=True,
        )
        if status != 302 or "sessionid" not in self.cookies:
            sys.exit(f"{self.username} could not sign in (HTTP {status}): is --people from this database?")
        status, created = self.request("POST", "/api/v1/tokens/", {"name": "benchmarks.load"})
        if status != 201:
            sys.exit(f"{self.username} could not create an API token (HTTP {status}): {created}")
        self.token, self.token_id = created["token"], created["id"]
        self.user_id = self.get("/api/v1/me/")["id"]

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            sys.exit(f"GET {path} as {self.username}: HTTP {status} {body!r:.300}")
        return body

    def revoke(self) -> None:
        if self.token_id:
            self.request("DELETE", f"/api/v1/tokens/{self.token_id}/")


@dataclass
class Targets:
    """What the mix reads and writes, found through the API as each role sees it."""

    team: int
    handovers: list[tuple[int, str]] = field(default_factory=list)  # the manager's and the owner's, to read
    items: list[int] = field(default_factory=list)  # items of the manager's open handovers: comments, due dates
    to_complete: list[int] = field(default_factory=list)  # open project-side items of the manager's open handovers
    to_verify: list[int] = field(default_factory=list)  # done items of the owner's open handovers


def _pages(person: Session, path: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of an API list, page after page."""
    rows: list[dict[str, Any]] = []
    page = 1
    while len(rows) < limit:
        body = person.get(f"{path}&page_size=100&page={page}")
        rows += body["results"]
        if not body.get("next"):
            break
        page += 1
    return rows[:limit]


def find_targets(people: dict[str, Session], team: int, limit: int) -> Targets:
    targets = Targets(team=team)
    manager, owner = people["manager"], people["operations_owner"]
    mine = _pages(manager, f"/api/v1/handovers/?manager={manager.user_id}&status=preparing&status=returned", limit)
    for handover in mine:
        targets.handovers.append((handover["id"], "manager"))
        for item in manager.get(f"/api/v1/handovers/{handover['id']}/items/?page_size=100")["results"]:
            targets.items.append(item["id"])
            if item["status"] == "open" and item["side"] == "project":
                targets.to_complete.append(item["id"])
    owned = _pages(
        owner, f"/api/v1/handovers/?operations_owner={owner.user_id}&status=preparing&status=submitted", limit
    )
    for handover in owned:
        targets.handovers.append((handover["id"], "operations_owner"))
        for item in owner.get(f"/api/v1/handovers/{handover['id']}/items/?page_size=100")["results"]:
            done_by = (item.get("done_by") or {}).get("id")
            if item["status"] == "done" and done_by != owner.user_id:
                targets.to_verify.append(item["id"])
    if not targets.items:
        sys.exit(f"{manager.username} has no preparing or returned handover to write on.")
    return targets


# ------------------------------------------------------------------------------------------------ the timed runs


@dataclass
class Answer:
    kind: str  # which request of the mix
    outcome: str  # ok, refused, shed, 5xx, 429, 4xx, 3xx, timeout, connection
    latency: float  # seconds from the due time to the end of the answer


def outcome_of(status: int) -> str:
    if status < 300:
        return "ok"
    if status < 400:
        return "3xx"  # a page that sends a signed-in person elsewhere (the sign-in page): not what was asked
    if status in (409, 412):
        return "refused"
    if status == 503:
        return "shed"
    if status >= 500:
        return "5xx"
    if status == 429:
        return "429"
    return "4xx"


class Load:
    """Builds each request of the mix as bytes and sends it on a fresh connection."""

    def __init__(self, host: str, port: int, people: dict[str, Session], targets: Targets, seed: int) -> None:
        self.host, self.port = host, port
        self.people, self.targets = people, targets
        self.rng = random.Random(seed)
        self.kinds = [kind for kind, _ in READS + WRITES]
        self.weights = [weight for _, weight in READS + WRITES]
        self.sequence = 0

    def _raw(self, method: str, path: str, who: str, *, api: bool, body: Any = None) -> bytes:
        person = self.people[who]
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close"]
        if api:
            lines += ["Accept: application/json", f"Authorization: Bearer {person.token}"]
        else:
            lines.append(f"Cookie: sessionid={person.cookies['sessionid']}")
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    def next_request(self) -> tuple[str, bytes, int | None]:
        """The next request of the mix: its kind, its bytes, and the item it moves (for the bookkeeping)."""
        rng, t = self.rng, self.targets
        self.sequence += 1
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "complete" and not t.to_complete:
            kind = "comment"
        if kind == "verify" and not t.to_verify:
            kind = "comment"
        handover, reader = rng.choice(t.handovers)
        if kind == "home":
            return kind, self._raw("GET", "/", ROLES[self.sequence % len(ROLES)], api=False), None
        if kind == "board":
            return kind, self._raw("GET", f"/portfolio/?team={t.team}", "operations_lead", api=False), None
        if kind == "handover_page":
            return kind, self._raw("GET", f"/handovers/{handover}/", reader, api=False), None
        if kind == "api_list":
            who = "viewer" if self.sequence % 2 else "manager"
            return kind, self._raw("GET", "/api/v1/handovers/?page_size=50", who, api=True), None
        if kind == "api_detail":
            return kind, self._raw("GET", f"/api/v1/handovers/{handover}/", reader, api=True), None
        if kind == "api_items":
            return kind, self._raw("GET", f"/api/v1/handovers/{handover}/items/", reader, api=True), None
        if kind == "comment":
            item = rng.choice(t.items)
            note = {"body": f"Load benchmark note {self.sequence}."}
            return kind, self._raw("POST", f"/api/v1/items/{item}/comments/", "manager", api=True, body=note), None
        if kind == "due_date":
            item = rng.choice(t.items)
            due = (datetime.now(UTC).date() + timedelta(days=rng.randint(7, 90))).isoformat()
            return kind, self._raw("PATCH", f"/api/v1/items/{item}/", "manager", api=True, body={"due_date": due}), None
        if kind == "complete":
            item = t.to_complete.pop()
            body: dict[str, Any] = {"evidence": {"text": f"Done under load, note {self.sequence}."}}
            return kind, self._raw("POST", f"/api/v1/items/{item}/complete/", "manager", api=True, body=body), item
        item = t.to_verify.pop()
        verify = {"note": "Verified under load."}
        return kind, self._raw("POST", f"/api/v1/items/{item}/verify/", "operations_owner", api=True, body=verify), item

    async def send(self, payload: bytes, deadline: float) -> int:
        """The answer's status; reads the whole answer (the server closes the connection after it)."""
        async with asyncio.timeout_at(deadline):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(payload)
                status_line = await reader.readline()
                await reader.read()
            finally:
                writer.close()
        return int(status_line.split(b" ", 2)[1])


async def offer(load: Load, rate: float, duration: float, timeout: float) -> tuple[list[Answer], float, float]:
    """Offers ``rate`` requests a second for ``duration`` seconds; waits for the last answers (or their timeout).
    Returns the answers, the generator's CPU seconds and the wall time the run took."""
    loop = asyncio.get_running_loop()
    answers: list[Answer] = []
    tasks: list[asyncio.Task] = []

    async def one(kind: str, payload: bytes, item: int | None, due: float) -> None:
        try:
            status = await load.send(payload, due + timeout)
            outcome = outcome_of(status)
        except TimeoutError:
            outcome = "timeout"
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            outcome = "connection"
        answers.append(Answer(kind, outcome, loop.time() - due))
        if item is not None and outcome in ("shed", "429"):  # not moved: it can be tried again
            (load.targets.to_complete if kind == "complete" else load.targets.to_verify).append(item)

    cpu, start = time.process_time(), loop.time()
    count = int(rate * duration)
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, payload, item = load.next_request()
        tasks.append(asyncio.create_task(one(kind, payload, item, due)))
    await asyncio.gather(*tasks)
    return answers, time.process_time() - cpu, loop.time() - start


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summarise(rate: float, duration: float, answers: list[Answer], cpu: float, wall: float) -> dict[str, Any]:
    outcomes = Counter(answer.outcome for answer in answers)
    served = [a.latency for a in answers if a.outcome in ("ok", "refused")]
    every = [a.latency for a in answers if a.outcome not in ("timeout", "connection")]
    shed = [a.latency for a in answers if a.outcome == "shed"]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for answer in answers:
        if answer.outcome in ("ok", "refused"):
            by_kind[answer.kind].append(answer.latency)
    return {
        "offered": rate,
        "requests": len(answers),
        # Served (answered as asked, or refused for the item's state) per second of the run, its drain included:
        # past capacity the last answers come after the offering ends.
        "achieved": round(len(served) / max(duration, wall), 1),
        "p50_ms": round(percentile(served, 0.50) * 1000),
        "p99_ms": round(percentile(served, 0.99) * 1000),
        "p99_all_ms": round(percentile(every, 0.99) * 1000),  # every answer, the 503s included
        "shed_p50_ms": round(percentile(shed, 0.50) * 1000) if shed else None,
        "shed_p99_ms": round(percentile(shed, 0.99) * 1000) if shed else None,
        "outcomes": {name: outcomes.get(name, 0) for name in ("ok", "refused", "shed", "5xx", "429", "4xx", "3xx")}
        | {"timeout": outcomes.get("timeout", 0), "connection": outcomes.get("connection", 0)},
        "kinds_p50_ms": {k: round(statistics.median(v) * 1000) for k, v in sorted(by_kind.items())},
        "kinds_p99_ms": {k: round(percentile(v, 0.99) * 1000) for k, v in sorted(by_kind.items())},
        "wall_s": round(wall, 1),
        "generator_cpu": round(cpu / wall, 2),
    }


def show(row: dict[str, Any]) -> None:
    o = row["outcomes"]
    shed = f"{o['shed']} (p50 {row['shed_p50_ms']} ms, p99 {row['shed_p99_ms']} ms)" if o["shed"] else "0"
    print(
        f"{row['offered']:>7g}/s offered: {row['achieved']:>6.1f}/s answered, p50 {row['p50_ms']} ms, "
        f"p99 {row['p99_ms']} ms | ok {o['ok']}, refused for state {o['refused']}, shed {shed}, 5xx {o['5xx']}, "
        f"timeouts {o['timeout']}, connection {o['connection']}, 429 {o['429']}, 4xx {o['4xx']}, 3xx {o['3xx']} | "
        f"generator CPU {row['generator_cpu']:.0%}",
        flush=True,
    )
    print("          p50 by kind (ms): " + ", ".join(f"{k} {v}" for k, v in row["kinds_p50_ms"].items()), flush=True)
    print("          p99 by kind (ms): " + ", ".join(f"{k} {v}" for k, v in row["kinds_p99_ms"].items()), flush=True)


def clean(row: dict[str, Any]) -> bool:
    """Carried: every request answered as asked (or refused for its state), p99 within a second."""
    o = row["outcomes"]
    return o["ok"] + o["refused"] == row["requests"] and row["p99_ms"] <= 1000


def verdict(rows: list[dict[str, Any]]) -> None:
    """The highest rate carried cleanly, and whether, past it, every failure was a 503 answered within a second."""
    carried = [row["offered"] for row in rows if clean(row)]
    print(f"carried cleanly (no error, p99 <= 1 s) up to {max(carried) if carried else 'none'} req/s", flush=True)
    for row in rows:
        if clean(row):
            continue
        o = row["outcomes"]
        failures = row["requests"] - o["ok"] - o["refused"]
        only_503 = failures == o["shed"]
        fast = row["shed_p99_ms"] is not None and row["shed_p99_ms"] <= 1000
        if not failures:
            print(f"at {row['offered']:g}/s: no failure, p99 {row['p99_ms']} ms", flush=True)
            continue
        print(
            f"at {row['offered']:g}/s: {failures} failed, "
            + ("all 503s" if only_503 else f"{failures - o['shed']} of them not 503s")
            + (f", the 503s' p99 {row['shed_p99_ms']} ms" if o["shed"] else "")
            + (" (failing fast)" if only_503 and fast else ""),
            flush=True,
        )


# ------------------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, extra_env: dict[str, str]) -> subprocess.Popen:
    """gunicorn with the production settings and config/gunicorn.py, throttles off, on 127.0.0.1:``port``."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to the benchmark dataset's PostgreSQL database (python -m benchmarks.dataset).")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "TRUSTED_PROXY_COUNT": "0",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_ACCESS_LOG": "",
        "API_RATE_ANON": "",
        "API_RATE_USER": "",
        "API_RATE_TOKEN": "",
        **extra_env,
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "--config", "config/gunicorn.py"], cwd=ROOT, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("gunicorn did not start")
            time.sleep(0.2)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", required=True, help="the JSON line benchmarks.dataset printed, or @file")
    parser.add_argument("--base-url", help="a server already running on 127.0.0.1 (default: start gunicorn)")
    parser.add_argument("--rates", default="25,50,100,200", help="requests a second to offer, in turn")
    parser.add_argument("--duration", type=float, default=20, help="seconds each rate is offered (default 20)")
    parser.add_argument("--timeout", type=float, default=10, help="seconds from a request's due time to its answer")
    parser.add_argument("--warmup", type=float, default=5, help="seconds at the first rate first, not counted")
    parser.add_argument("--pause", type=float, default=3, help="seconds of quiet between rates")
    parser.add_argument("--targets", type=int, default=150, help="handovers per role to read and write on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the gunicorn it starts, e.g. MAX_CONCURRENT_REQUESTS=4 (repeatable)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    text = Path(args.people[1:]).read_text() if args.people.startswith("@") else args.people
    people_json = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))
    rates = [float(rate) for rate in args.rates.split(",")]
    server = None
    if args.base_url:
        url = urlsplit(args.base_url)
        if url.hostname not in ("127.0.0.1", "localhost") or url.scheme != "http":
            sys.exit("--base-url: http://127.0.0.1:<port> only (the load stays on this machine)")
        host, port = "127.0.0.1", url.port or 80
    else:
        host, port = "127.0.0.1", _free_port()
        server_env = dict(item.split("=", 1) for item in args.server_env)
        server = start_server(port, server_env)
        print(f"gunicorn on {host}:{port} with {server_env or 'the defaults'}", flush=True)

    people = {role: Session(host, port, people_json[role]) for role in ROLES}
    try:
        for person in people.values():
            person.sign_in(people_json["password"])
        targets = find_targets(people, int(people_json["team"]), args.targets)
        print(
            f"{len(targets.handovers)} handovers, {len(targets.items)} items to comment and plan, "
            f"{len(targets.to_complete)} to complete, {len(targets.to_verify)} to verify",
            flush=True,
        )
        load = Load(host, port, people, targets, args.seed)
        rows = []
        if args.warmup:
            asyncio.run(offer(load, rates[0], args.warmup, args.timeout))
        for rate in rates:
            time.sleep(args.pause)
            answers, cpu, wall = asyncio.run(offer(load, rate, args.duration, args.timeout))
            row = summarise(rate, args.duration, answers, cpu, wall)
            show(row)
            rows.append(row)
        verdict(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    finally:
        for person in people.values():
            with contextlib.suppress(OSError):
                person.revoke()
        if server is not None:
            stop_server(server)


if __name__ == "__main__":
    main()
