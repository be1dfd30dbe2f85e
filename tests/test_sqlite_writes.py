"""`make run`'s database under concurrent writers: the web server and a worker writing to one SQLite file at once.

Real processes on a real file: gunicorn serving the API, and a second process writing through the services and
running detection passes, as Celery's worker does. Before transactions took the write lock when they began, a
read-then-write transaction lost the race to the other process's writer and failed at once ("database is
locked"): a 500 on 1 to 3 % of the web's writes.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB_WRITES = 500
# make run's gunicorn (the Procfile): threaded workers, each thread with its own connection to the file.
GUNICORN_OPTIONS = ("--config", "config/gunicorn.py", "--workers", "2", "--log-level", "warning")

SETUP = """
import datetime as dt, json
import django; django.setup()
from django.contrib.auth import get_user_model
from django.utils import timezone
from handover import services as hs
from handover.models import ChecklistTemplate
from operations.models import OperationsTeam
from projects import services as ps
from projects.choices import Stage
from projects.models import Project
from handover.tokens.services import token_create

User = get_user_model()
admin = User.objects.create_superuser("admin", "admin@example.com", "x")
manager = User.objects.create_user("manager", "manager@example.com", "x")
owner = User.objects.create_user("owner", "owner@example.com", "x")
team = OperationsTeam.objects.create(name="Service desk", lead=owner)
project = Project.objects.create(code="SQL-1", name="SQLite", manager=manager, receiving_team=team)
project = ps.project_transition(project=project, to=Stage.PLANNING, by=manager)
handover = hs.handover_create(
    project=project, template=ChecklistTemplate.objects.filter(is_active=True).first(), operations_owner=owner,
    target_date=timezone.localdate() + dt.timedelta(days=30), by=manager,
)
_, raw = token_create(by=manager, name="writes")
print(json.dumps({"handover": handover.pk, "token": raw}))
"""

# The worker's side: comments by the operations owner and detection passes, about a hundred writes a second (a busy
# worker; a loop without pause would hold SQLite's one write lock nearly all the time), until told to stop.
WORKER = """
import sys, time
from pathlib import Path
import django; django.setup()
from django.contrib.auth import get_user_model
from handover import services as hs
from handover.models import Handover
from handover.stalls.services import detect_stalls

owner = get_user_model().objects.get(username="owner")
handover = Handover.objects.get(pk=int(sys.argv[1]))
stop, writes = Path(sys.argv[2]), 0
while not stop.exists():
    hs.comment_add(handover=handover, by=owner, body=f"Worker note {writes}.")
    writes += 1
    if writes % 10 == 0:
        detect_stalls()
    time.sleep(0.01)
print(writes)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=180, **kwargs)


@pytest.mark.xdist_group("sqlite_writes")
def test_web_and_worker_write_to_one_sqlite_file_at_once_without_a_5xx(tmp_path):
    """GIVEN `make run`'s settings on a fresh SQLite file, gunicorn serving the API and a worker process writing
    comments and running detection passes in a loop WHEN 500 comments are posted over HTTP from four threads at the
    same time THEN every one is created (201), none answers 5xx, and every write of both sides is stored."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'handover.sqlite3'}",
        "DEBUG": "false",
    }
    env.pop("REDIS_URL", None)
    python = sys.executable
    _run([python, "manage.py", "migrate", "--noinput", "--verbosity", "0"], env)
    _run([python, "manage.py", "load_templates"], env)
    world = json.loads(_run([python, "-c", SETUP], env).stdout.strip().splitlines()[-1])

    port = _free_port()
    web = subprocess.Popen(
        [str(Path(python).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", *GUNICORN_OPTIONS],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop = tmp_path / "stop"
    worker = subprocess.Popen(
        [python, "-c", WORKER, str(world["handover"]), str(stop)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1/handovers/{world['handover']}/comments/"
    headers = {"Authorization": f"Bearer {world['token']}", "Content-Type": "application/json"}

    def post(n: int) -> int:
        request = urllib.request.Request(url, data=json.dumps({"body": f"Web note {n}."}).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    try:
        deadline = time.monotonic() + 60
        while True:  # gunicorn is up when it answers
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).close()
                break
            except OSError:  # refused while gunicorn binds, or a first answer slower than the timeout
                assert web.poll() is None, f"gunicorn stopped: {web.stderr}"
                assert time.monotonic() < deadline, "gunicorn did not answer within a minute"
                time.sleep(0.2)
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(post, range(WEB_WRITES)))
    finally:
        stop.touch()
        worker_out, worker_err = worker.communicate(timeout=60)
        web.terminate()
        web_err = web.communicate(timeout=30)[1]

    assert worker.returncode == 0, worker_err
    worker_writes = int(worker_out.strip())
    assert worker_writes > 0
    assert sorted(set(statuses)) == [201], (
        {code: statuses.count(code) for code in set(statuses)},
        web_err[-2000:],
    )
    count = "from handover.models import Comment; print(Comment.objects.count())"
    stored = _run([python, "-c", f"import django; django.setup(); {count}"], env).stdout.strip()
    assert int(stored) == WEB_WRITES + worker_writes
