"""The background machinery end to end: a real ``celery -A config worker`` process on the real Redis broker and the
PostgreSQL test database, detection and sending racing on PostgreSQL, a request that must not wait for a broker that
is down or hung, and /healthz (STYLE.md "Background work").

Domain time is never slept for: a handover is made idle by backdating ``last_activity_at`` (test data, as if its last
activity were days ago), and /healthz's clock is moved with time_machine. The only sleeps poll another process for
the outcome, with a deadline.

The worker is a subprocess, so it sees only committed data in a database it can open: these tests use
``transactional_db`` and run on PostgreSQL (pytest-django's in-memory SQLite is private to the test process).
"""

import datetime as dt
import email
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from config.celery import app as celery_app
from handover import services as hs
from handover.choices import Channel, DeliveryStatus, DetectionSource, EventType, NotificationKind, Side, StallRule
from handover.models import DetectionRun, Event, Handover, Notification, StallFlag, WebhookDelivery
from handover.notifications import tasks as notification_tasks
from handover.outbox import queue
from handover.outbox import tasks as outbox_tasks
from handover.stalls import services as stalls
from handover.stalls import tasks as stall_tasks
from handover.webhooks import services as webhooks
from handover.webhooks import tasks as webhook_tasks
from projects import services as ps
from projects.choices import Stage
from tests.conftest import require_redis, skip_or_fail
from tests.factories import ProjectFactory
from tests.network import RawServer

WAIT = 30.0  # seconds a real worker gets to finish what it was asked to do
ROUNDS = 3
HANDOVERS_PER_ROUND = 3
ROOT = Path(settings.BASE_DIR)

# ------------------------------------------------------------------------------------------------ helpers


def wait_until(condition: Callable[[], bool], *, what: str | Callable[[], str], timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds saying what never happened (``what`` may
    be a callable, evaluated then: a worker's log as it is at the end)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(0.1)  # polls another process's progress; no domain deadline depends on it


def make_idle(handover: Handover) -> None:
    """Backdate the last activity one day past the team's idle threshold: the idle rule is now true."""
    days = handover.receiving_team.stall_threshold(StallRule.IDLE) + 1
    Handover.objects.filter(pk=handover.pk).update(last_activity_at=timezone.now() - dt.timedelta(days=days))


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run each call in its own thread (so its own database connection), released at the same moment by a
    barrier; the results in the order of ``calls``. Any exception fails the test."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def compete(index: int, call: Callable[[], object]) -> None:
        try:
            connections["default"].ensure_connection()  # connect before the barrier, so that only the calls race
            barrier.wait(timeout=10)
            results[index] = call()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=compete, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a competitor is stuck (deadlock?)"
    assert not errors, errors
    return results


def _reset_producer_pools() -> None:
    # The app caches its connection and producer pools for the broker it first used; drop them so that the next
    # publish connects to whatever ``broker_url`` says now.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def broker_at(url: str, transport_options: dict) -> Iterator[None]:
    """Point the project's Celery app (in this process: the web side) at ``url``, then restore the settings'."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport_options)
    _reset_producer_pools()
    conf.broker_url, conf.broker_transport_options = url, transport_options
    try:
        yield
    finally:
        _reset_producer_pools()
        conf.broker_url, conf.broker_transport_options = saved


@pytest.fixture(autouse=True)
def _closed_breaker() -> Iterator[None]:
    """Each test starts with a publisher that has not seen the broker fail (the breaker is per process)."""
    queue.publish_breaker.reset()
    yield
    queue.publish_breaker.reset()


def warm_up_redis_transport() -> None:
    """Import kombu's Redis transport now, so that a timed request measures the network, not an import."""
    import kombu.transport.redis  # noqa: F401


# --------------------------------------------------------------------------------- brokers that misbehave


class FullBacklog:
    """A port whose accept queue is full and is never drained: new connections are neither accepted nor refused
    (the SYN is dropped), like a blackholed host."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self._fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self.sock.close()


@pytest.fixture
def bad_broker(request) -> Iterator[tuple[str, object]]:
    """(URL, server) of a Redis that is hung (accepts, never answers), blackholed (backlog full) or refusing."""
    kind = request.param
    if kind == "hung":
        server = RawServer(None)
    elif kind == "backlog-full":
        server = FullBacklog()
    else:
        server = None
    url = f"redis://127.0.0.1:{server.port}/0" if server else "redis://127.0.0.1:1/0"
    try:
        yield url, server
    finally:
        if server:
            server.close()


# ----------------------------------------------------------------------------------- a webhook receiver


@dataclass
class Received:
    headers: dict[str, str]
    payload: dict | None
    verified: bool
    error: str = ""


@dataclass
class WebhookReceiver:
    """A subscriber on 127.0.0.1 that checks the Standard Webhooks signature and records every request."""

    url: str = ""
    secret: str = ""  # set once the subscription (which generates it) exists
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {key.lower(): value for key, value in self.headers.items()}
            try:
                record = Received(headers, Webhook(receiver.secret).verify(body, headers), verified=True)
            except Exception as error:  # a bad signature, a missing header, no secret yet
                record = Received(headers, None, verified=False, error=repr(error))
            with receiver.lock:
                receiver.received.append(record)
            self.send_response(200 if record.verified else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/handover"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------------------- a real worker process


@dataclass
class Worker:
    """A ``celery -A config worker`` process on REDIS_URL and the test database, sending email to files."""

    process: subprocess.Popen
    log: Path
    mail_dir: Path
    # Where the test that uses it began: its log and its email from then on (one worker serves the module).
    log_start: int = 0
    mail_before: frozenset[Path] = frozenset()

    def from_now(self) -> "Worker":
        """The same process, its log and email seen from now on."""
        size = self.log.stat().st_size if self.log.exists() else 0
        return replace(self, log_start=size, mail_before=frozenset(self.mail_dir.glob("*.log")))

    def messages(self) -> list[email.message.Message]:
        """Every email the worker sent (the file backend writes one file per connection, one message each)."""
        found = []
        for path in sorted(set(self.mail_dir.glob("*.log")) - self.mail_before):
            for chunk in path.read_text().split("-" * 79):
                if chunk.strip():
                    found.append(email.message_from_string(chunk.strip()))
        return found

    def output(self) -> str:
        return self.log.read_bytes()[self.log_start :].decode(errors="replace") if self.log.exists() else ""


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def queue_length() -> int:
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"]).llen(celery_app.conf.task_default_queue)


@pytest.fixture(scope="module")
def worker_process(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A real worker process for the module's tests, started on the purged queue once the test database exists and
    stopped (SIGTERM, then SIGKILL) before pytest-django drops it. It uses the development settings with email to
    files, the test database and this test process's queue (``tests/handover/worker_settings.py``)."""
    # Set up before the per-test check of the services (tests/conftest.py), so it checks them itself.
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")
    require_redis()
    tmp_path = tmp_path_factory.mktemp("worker")
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.handover.worker_settings",
        "HANDOVER_TEST_QUEUE": celery_app.conf.task_default_queue,
        "DATABASE_URL": _database_url(),
        "CONN_MAX_AGE": "0",  # no connection outlives a task, so the test database can be flushed and dropped
        "REDIS_URL": os.environ["REDIS_URL"],
        "EMAIL_URL": f"filemail:///{mail_dir}",  # django-environ drops one slash: an absolute path needs four
        "SITE_URL": settings.SITE_URL,
        "no_proxy": "127.0.0.1",
        "NO_PROXY": "127.0.0.1",
    }
    celery_app.control.purge()
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "celery"),
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
                "--hostname",
                f"stalltest-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Worker(process, log, mail_dir)
    try:
        wait_until(
            lambda: " ready." in running.output() or process.poll() is not None,
            what="the worker process to start",
            timeout=60,
        )
        assert process.poll() is None, running.output()
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        celery_app.control.purge()


@pytest.fixture
def worker(worker_process, transactional_db) -> Iterator[Worker]:
    """The module's worker process, idle on the purged queue, seen from this test on. Between tests pytest-django
    flushes the database under it: it holds no connection between tasks (``CONN_MAX_AGE=0``), and the tests only
    read the database once it has finished what they asked for (``done_in_worker``), so committed rows only:
    hence ``transactional_db``."""
    assert worker_process.process.poll() is None, worker_process.output()
    celery_app.control.purge()
    yield worker_process.from_now()
    celery_app.control.purge()


def done_in_worker(worker: Worker, count: int) -> bool:
    """The worker has received at least ``count`` tasks, finished every one, and nothing more is queued."""
    lines = [line for line in worker.output().splitlines() if "Task handover.tasks." in line]
    received = sum(line.endswith("] received") for line in lines)
    finished = sum(" succeeded in " in line or " raised " in line or " retry: " in line for line in lines)
    return received >= count and finished >= received and queue_length() == 0


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_stall_found_by_a_real_worker_is_emailed_and_delivered_as_a_signed_webhook(
    worker, handover, admin_user, owner, manager, webhook_receiver
):
    """GIVEN a worker process on Redis, a subscription to ``stall.opened`` and a handover idle past its team's
    threshold
    WHEN beat's detection task is published
    THEN the worker opens one flag, emails the owner and the manager once each (SMTP-less: to files), and delivers
    one webhook whose Standard Webhooks signature the receiver verifies, recording every row as sent."""
    subscription = webhooks.webhook_create(by=admin_user, url=webhook_receiver.url, events=[EventType.STALL_OPENED])
    webhook_receiver.secret = subscription.secret
    make_idle(handover)

    stall_tasks.detect_stalls.delay()

    emails = Notification.objects.filter(flag__handover=handover, channel=Channel.EMAIL)
    deliveries = WebhookDelivery.objects.filter(subscription=subscription)

    def done() -> bool:
        return (
            emails.count() == 2
            and not emails.exclude(status=DeliveryStatus.SENT).exists()
            and deliveries.filter(status=DeliveryStatus.SENT).exists()
            and len(worker.messages()) == 2
            and len(webhook_receiver.snapshot()) >= 1
        )

    wait_until(done, what=lambda: f"the worker to send both emails and the webhook; its log:\n{worker.output()}")
    # 1 detection + 2 emails + 1 webhook; then nothing left, so a duplicate, if any were queued, would show.
    wait_until(lambda: done_in_worker(worker, 4), what=lambda: f"the worker to become idle:\n{worker.output()}")

    flag = StallFlag.objects.get(handover=handover)
    assert (flag.rule, flag.resolved_at) == (StallRule.IDLE, None)
    run = DetectionRun.objects.get()
    assert (run.source, run.opened, run.finished_at is not None) == (DetectionSource.BEAT, 1, True)

    sent = list(emails.select_related("recipient"))
    assert {n.recipient for n in sent} == {owner, manager}
    assert all((n.kind, n.status, n.attempts) == (NotificationKind.OPENED, DeliveryStatus.SENT, 1) for n in sent)
    assert Notification.objects.filter(flag=flag, channel=Channel.IN_APP).count() == 2
    assert Counter((m["To"], m["Subject"]) for m in worker.messages()) == Counter(
        (n.recipient.email, n.subject) for n in sent
    )
    page = f"{settings.SITE_URL}/handovers/{handover.pk}/"
    assert all(page in m.get_payload() for m in worker.messages())

    event = Event.objects.get(type=EventType.STALL_OPENED, handover=handover)
    assert event.dedupe_key == f"{EventType.STALL_OPENED}:{flag.pk}"
    delivery = deliveries.get()
    assert (delivery.event_id, delivery.status, delivery.last_status_code, delivery.attempts) == (
        event.pk,
        DeliveryStatus.SENT,
        200,
        1,
    )
    [received] = webhook_receiver.snapshot()
    assert received.verified, received.error
    assert received.headers["webhook-id"] == f"msg_{event.pk.hex}"
    assert received.payload == event.payload
    assert received.payload["data"]["flag"] == {
        "id": flag.pk,
        "rule": StallRule.IDLE,
        "opened_at": flag.opened_at.isoformat(),
    }
    assert received.payload["data"]["handover"]["id"] == handover.pk


@pytest.fixture
def memory_broker() -> Iterator[None]:
    """Publishing goes to kombu's in-process memory transport, so the sends below are the only ones."""
    with broker_at("memory://", {}):
        try:
            yield
        finally:
            celery_app.control.purge()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_detection_passes_and_retried_sends_at_once_notify_each_recipient_once(
    memory_broker, people, team, template, mailoutbox
):
    """GIVEN several handovers idle past the threshold and a subscription to ``stall.opened``
    WHEN two detection passes run at the same moment on two connections, and then every email's send task runs
    twice (a retried task), one of them as two tasks at the same moment
    THEN there is one open flag per handover and rule, one notification per recipient, channel and kind, one event
    and one webhook delivery per flag, and each email went out exactly once. Repeated with fresh handovers."""
    subscription = webhooks.webhook_create(
        by=people.admin, url="http://127.0.0.1:9/hooks", events=[EventType.STALL_OPENED]
    )
    for round_ in range(ROUNDS):
        mailoutbox.clear()
        handovers = []
        for i in range(HANDOVERS_PER_ROUND):
            project = ProjectFactory(code=f"DUP-{round_}-{i}", manager=people.manager, receiving_team=team)
            project = ps.project_transition(project=project, to=Stage.PLANNING, by=people.manager)
            handover = hs.handover_create(
                project=project,
                template=template,
                operations_owner=people.owner,
                target_date=timezone.localdate() + dt.timedelta(days=30),
                by=people.manager,
            )
            make_idle(handover)
            handovers.append(handover)

        run_together(stalls.detect_stalls, stalls.detect_stalls)

        emails = list(Notification.objects.filter(flag__handover__in=handovers, channel=Channel.EMAIL).order_by("pk"))
        assert len(emails) == 2 * HANDOVERS_PER_ROUND, f"round {round_}"
        raced = emails[round_ % len(emails)]
        first, second = run_together(
            lambda pk=raced.pk: notification_tasks.send_notification(pk),
            lambda pk=raced.pk: notification_tasks.send_notification(pk),
        )
        assert sorted([first, second]) == [False, True], f"round {round_}: both or neither sent"
        for notification in emails:
            if notification.pk != raced.pk:
                assert notification_tasks.send_notification(notification.pk) is True
                assert notification_tasks.send_notification(notification.pk) is False  # the retried task finds it sent

        flags = list(StallFlag.objects.filter(handover__in=handovers).values_list("handover_id", "rule", "resolved_at"))
        assert sorted(flags) == sorted((h.pk, StallRule.IDLE, None) for h in handovers), f"round {round_}"
        per_episode = Counter(
            Notification.objects.filter(flag__handover__in=handovers).values_list(
                "flag__handover_id", "recipient_id", "channel", "kind"
            )
        )
        assert per_episode == Counter(
            {
                (h.pk, person.pk, channel, NotificationKind.OPENED): 1
                for h in handovers
                for person in (people.owner, people.manager)
                for channel in (Channel.IN_APP, Channel.EMAIL)
            }
        ), f"round {round_}"
        statuses = set(Notification.objects.filter(pk__in=[n.pk for n in emails]).values_list("status", "attempts"))
        assert statuses == {(DeliveryStatus.SENT, 1)}, f"round {round_}"
        assert Counter((tuple(m.to), m.subject) for m in mailoutbox) == Counter(
            ((n.recipient.email,), n.subject) for n in emails
        ), f"round {round_}: an email went out twice or not at all"
        assert len({n.subject for n in emails}) == HANDOVERS_PER_ROUND  # one subject per handover, so per episode

        events = Event.objects.filter(type=EventType.STALL_OPENED, handover__in=handovers)
        assert sorted(events.values_list("handover_id", flat=True)) == sorted(h.pk for h in handovers)
        assert WebhookDelivery.objects.filter(event__in=events, subscription=subscription).count() == len(handovers)


def return_with_every_project_item(client: APIClient, handover: Handover):
    """The operations owner's return over the API, sending back the three project-side items: four events."""
    items = list(handover.items.filter(mandatory=True, side=Side.PROJECT).values_list("pk", flat=True))
    assert len(items) == 3
    return client.post(
        f"/api/v1/handovers/{handover.pk}/return/", {"reason": "No restore test yet.", "items": items}, format="json"
    )


@pytest.mark.parametrize("bad_broker", ["hung", "backlog-full", "refused"], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_a_change_that_emits_several_events_answers_fast_while_the_broker_is_unreachable(
    bad_broker, submitted_handover, people, request
):
    """GIVEN a subscription to every event and a Redis that accepts connections and never answers (or whose accept
    queue is full, or that refuses)
    WHEN the operations owner returns a handover over the API, sending three items back (four events)
    THEN the answer comes within 2 s, after one connection attempt; the deliveries wait in the outbox as pending,
    never published; AND a second change right after does not try the broker again (the breaker is open) and
    answers at once."""
    url, server = bad_broker
    subscription = webhooks.webhook_create(by=people.admin, url="http://127.0.0.1:9/hooks")
    client = APIClient()
    client.force_authenticate(people.owner)
    warm_up_redis_transport()

    with broker_at(url, settings.REDIS_BROKER_TRANSPORT_OPTIONS):
        started = time.monotonic()
        response = return_with_every_project_item(client, submitted_handover)
        elapsed = time.monotonic() - started
        tried = server.connections if isinstance(server, RawServer) else None
        print(f"return with 3 items against a {request.node.callspec.id} broker: {elapsed:.2f} s")

        assert response.status_code == 200, response.content
        assert elapsed < 2.0, f"the request waited {elapsed:.2f} s for a broker that is down"
        if isinstance(server, RawServer):
            assert tried == 1  # one connection for the whole request, not one per event
        deliveries = WebhookDelivery.objects.filter(subscription=subscription, event__handover=submitted_handover)
        returned = deliveries.filter(event__type__in=[EventType.HANDOVER_RETURNED, EventType.ITEM_UPDATED])
        assert returned.count() == 4
        assert set(returned.values_list("status", "attempts", "enqueued_at")) == {(DeliveryStatus.PENDING, 0, None)}

        manager = APIClient()
        manager.force_authenticate(people.manager)
        item = submitted_handover.items.filter(mandatory=True, side=Side.PROJECT).first()
        started = time.monotonic()
        completed = manager.post(
            f"/api/v1/items/{item.pk}/complete/", {"evidence": {"url": "https://wiki.example.com/r"}}, format="json"
        )
        again = time.monotonic() - started
        assert completed.status_code == 200, completed.content
        print(f"the next change, breaker open: {again:.2f} s")
        assert again < 0.5, f"the second request waited {again:.2f} s"
        assert deliveries.filter(event__type=EventType.ITEM_UPDATED, status=DeliveryStatus.PENDING).count() == 4
        if isinstance(server, RawServer):
            assert server.connections == tried


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_what_waited_while_the_broker_hung_is_sent_once_it_is_back(
    worker, submitted_handover, people, webhook_receiver
):
    """GIVEN a Redis that hangs (accepts, never answers), a subscription to ``handover.returned`` and a handover idle
    past its threshold
    WHEN the detection pass runs (``manage.py detect_stalls``, as cron would) and the owner changes another handover
    over the API
    THEN the change answers 2xx within 2 s, and the flag's email notifications and the event's delivery are rows,
    pending and never published;
    AND WHEN Redis is back and beat's outbox sweep is published to it, the worker process sends each email once and
    delivers the signed webhook, recording them sent."""
    subscription = webhooks.webhook_create(
        by=people.admin, url=webhook_receiver.url, events=[EventType.HANDOVER_RETURNED]
    )
    webhook_receiver.secret = subscription.secret
    idle = ProjectFactory(code="IDLE-1", manager=people.manager, receiving_team=submitted_handover.receiving_team)
    idle = ps.project_transition(project=idle, to=Stage.PLANNING, by=people.manager)
    stalled = hs.handover_create(
        project=idle,
        template=submitted_handover.template,
        operations_owner=people.owner,
        target_date=timezone.localdate() + dt.timedelta(days=30),
        by=people.manager,
    )
    make_idle(stalled)
    client = APIClient()
    client.force_authenticate(people.owner)
    warm_up_redis_transport()
    hung = RawServer(None)
    try:
        with broker_at(f"redis://127.0.0.1:{hung.port}/0", settings.REDIS_BROKER_TRANSPORT_OPTIONS):
            call_command("detect_stalls")
            queue.publish_breaker.reset()  # the request below meets the hung broker itself, not the breaker
            started = time.monotonic()
            response = return_with_every_project_item(client, submitted_handover)
            elapsed = time.monotonic() - started
    finally:
        hung.close()

    assert response.status_code == 200, response.content
    assert elapsed < 2.0, f"the request waited {elapsed:.2f} s for a hung broker"
    emails = Notification.objects.filter(flag__handover=stalled, channel=Channel.EMAIL)
    assert sorted(emails.values_list("recipient__username", "status", "attempts", "enqueued_at")) == [
        ("manager", DeliveryStatus.PENDING, 0, None),
        ("owner", DeliveryStatus.PENDING, 0, None),
    ]
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert (delivery.status, delivery.attempts, delivery.enqueued_at) == (DeliveryStatus.PENDING, 0, None)
    assert worker.messages() == []
    assert webhook_receiver.snapshot() == []

    outbox_tasks.sweep_outbox.delay()  # beat's next sweep, on the broker that is back

    def sent() -> bool:
        return (
            not emails.exclude(status=DeliveryStatus.SENT).exists()
            and WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENT).exists()
            and len(worker.messages()) == 2
        )

    wait_until(sent, what=lambda: f"the worker to send what waited; its log:\n{worker.output()}")
    wait_until(lambda: done_in_worker(worker, 4), what=lambda: f"the worker to become idle:\n{worker.output()}")
    assert sorted(emails.values_list("recipient__username", "status", "attempts")) == [
        ("manager", DeliveryStatus.SENT, 1),
        ("owner", DeliveryStatus.SENT, 1),
    ]
    assert sorted(m["To"] for m in worker.messages()) == sorted([people.manager.email, people.owner.email])
    [received] = webhook_receiver.snapshot()
    assert received.verified, received.error
    event = Event.objects.get(type=EventType.HANDOVER_RETURNED)
    assert received.headers["webhook-id"] == f"msg_{event.pk.hex}"
    assert received.payload["data"]["handover"]["id"] == submitted_handover.pk


# ------------------------------------------------------------------------------------------------ /healthz


@pytest.fixture
def healthz(client) -> Callable[[], dict]:
    return lambda: client.get("/healthz").json()["checks"]


@pytest.mark.django_db
def test_healthz_scheduler_counts_beat_passes_only(healthz, monkeypatch):
    """GIVEN only a ``manage.py detect_stalls`` pass (``make migrate`` runs one) WHEN /healthz is read THEN the
    scheduler is not up: it waits for beat during the startup grace and is down after it; WHEN beat's task makes a
    pass THEN it is up with that pass's time."""
    import config.views

    monkeypatch.setattr(config.views, "_STARTED", time.monotonic())
    call_command("detect_stalls")
    command = DetectionRun.objects.get()
    scheduler = healthz()["scheduler"]
    assert (scheduler["status"], scheduler["last_pass"]) == ("waiting", None)
    assert scheduler["last_command_pass"] == command.finished_at.isoformat()

    monkeypatch.setattr(config.views, "_STARTED", time.monotonic() - settings.STALL_DETECT_INTERVAL - 61)
    assert healthz()["scheduler"]["status"] == "down"

    stall_tasks.detect_stalls()
    beat = DetectionRun.objects.get(source=DetectionSource.BEAT)
    scheduler = healthz()["scheduler"]
    assert (scheduler["status"], scheduler["last_pass"]) == ("up", beat.finished_at.isoformat())


@pytest.mark.django_db
def test_healthz_reports_beat_stale_after_three_missed_intervals_and_the_last_sweep(healthz):
    """GIVEN beat's detection pass and an outbox sweep WHEN less than three of their intervals pass THEN both are up;
    WHEN more pass without another THEN each is reported stale, with the time of its last pass."""
    started = timezone.now()
    with time_machine.travel(started, tick=False) as clock:
        stall_tasks.detect_stalls()
        outbox_tasks.sweep_outbox()
        checks = healthz()
        assert (checks["scheduler"]["status"], checks["outbox"]["status"]) == ("up", "up")
        assert checks["outbox"]["last_sweep"] == started.isoformat()
        assert (checks["outbox"]["due_notifications"], checks["outbox"]["due_deliveries"]) == (0, 0)

        clock.shift(dt.timedelta(seconds=3 * settings.OUTBOX_SWEEP_INTERVAL + 1))
        checks = healthz()
        assert (checks["scheduler"]["status"], checks["outbox"]["status"]) == ("up", "stale")
        assert checks["outbox"]["last_sweep"] == started.isoformat()

        clock.shift(dt.timedelta(seconds=3 * settings.STALL_DETECT_INTERVAL))
        checks = healthz()
        assert (checks["scheduler"]["status"], checks["scheduler"]["last_pass"]) == ("stale", started.isoformat())


def test_beat_schedule_expires_each_entry_before_its_next_run_and_retries_stay_under_the_visibility_timeout():
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert 0 < entry["options"]["expires"] < entry["schedule"], name
    visibility = settings.REDIS_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    for task in (
        stall_tasks.detect_stalls,
        notification_tasks.send_notification,
        webhook_tasks.deliver_webhook,
        outbox_tasks.sweep_outbox,
    ):
        assert task.retry_backoff_max < visibility / 10, task.name
    assert visibility / 2 > settings.OUTBOX_BACKOFF_MAX
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
