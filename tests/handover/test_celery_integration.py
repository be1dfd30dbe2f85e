"""The background machinery end to end: a real Celery worker on the real Redis broker, detection and sending racing
on PostgreSQL, and a request that must not wait for a broker that is down (STYLE.md "Background work").

Domain time is never slept for: a handover is made idle by backdating ``last_activity_at`` (test data, as if its last
activity were days ago). The only sleeps poll a real worker thread for the outcome, with a deadline.
"""

import datetime as dt
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from celery.worker import state as worker_state
from django.conf import settings
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from config.celery import app as celery_app
from handover import outbox, stalls, tasks
from handover import services as hs
from handover.choices import Channel, DeliveryStatus, EventType, NotificationKind, StallRule
from handover.models import DetectionRun, Event, Handover, Notification, StallFlag, WebhookDelivery
from projects import services as ps
from projects.choices import Stage
from tests.factories import ProjectFactory

WAIT = 20.0  # seconds a real worker gets to finish what it was asked to do
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once
ROUNDS = 3
HANDOVERS_PER_ROUND = 3

# ------------------------------------------------------------------------------------------------ helpers


def wait_until(condition: Callable[[], bool], *, what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds saying what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)  # polls another thread's progress; no domain deadline depends on it


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
    """Point the project's Celery app at ``url`` for the duration, then restore what the settings said."""
    conf = celery_app.conf
    saved = (conf.broker_url, conf.broker_transport_options)
    _reset_producer_pools()
    conf.broker_url, conf.broker_transport_options = url, transport_options
    try:
        # Load the transport's module now, so that a timed publish measures the network, not an import.
        connection = celery_app.connection_for_write()
        connection.transport  # noqa: B018
        connection.release()
        yield
    finally:
        _reset_producer_pools()
        conf.broker_url, conf.broker_transport_options = saved


@contextmanager
def eager_tasks() -> Iterator[None]:
    """Tasks run in the caller instead of being published: the stand-in for "the broker is back"."""
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager, conf.task_eager_propagates = True, True
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = saved


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


# ------------------------------------------------------------------------------------------- a real worker


def _close_worker_connections(**_) -> None:
    # The worker thread's database connections are its own (thread-local) and outlive the worker otherwise,
    # keeping the test database open after the test.
    if threading.current_thread() is not threading.main_thread():
        connections.close_all()


@pytest.fixture
def redis_worker(transactional_db) -> Iterator[None]:
    """The project's Celery app on REDIS_URL (with the production Redis options), queue purged, and a real worker
    consuming it in a thread. Stopped (and the queue purged again) before the database is flushed."""
    with broker_at(os.environ["REDIS_URL"], settings.REDIS_BROKER_TRANSPORT_OPTIONS):
        celery_app.control.purge()
        task_postrun.connect(_close_worker_connections, weak=False, dispatch_uid="test-close-worker-connections")
        try:
            with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=15):
                yield
        finally:
            task_postrun.disconnect(dispatch_uid="test-close-worker-connections")
            celery_app.control.purge()


def worker_idle() -> bool:
    """Nothing waits in the queue and the worker runs or holds nothing."""
    import redis

    queued = redis.Redis.from_url(os.environ["REDIS_URL"]).llen(celery_app.conf.task_default_queue)
    return queued == 0 and not worker_state.active_requests and not worker_state.reserved_requests


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_stall_found_by_a_real_worker_is_emailed_and_delivered_as_a_signed_webhook(
    redis_worker, handover, admin_user, owner, manager, webhook_receiver, mailoutbox
):
    """GIVEN a worker on Redis, a subscription to ``stall.opened`` and a handover idle past its team's threshold
    WHEN beat's detection task is published
    THEN the worker opens one flag, emails the owner and the manager once each, and delivers one signed webhook
    whose id is the event's, recording every row as sent."""
    subscription = outbox.webhook_create(by=admin_user, url=webhook_receiver.url, events=[EventType.STALL_OPENED])
    webhook_receiver.secret = subscription.secret
    make_idle(handover)

    tasks.detect_stalls.delay()

    emails = Notification.objects.filter(flag__handover=handover, channel=Channel.EMAIL)
    deliveries = WebhookDelivery.objects.filter(subscription=subscription)

    def done() -> bool:
        return (
            emails.count() == 2
            and not emails.exclude(status=DeliveryStatus.SENT).exists()
            and len(mailoutbox) == 2
            and deliveries.filter(status=DeliveryStatus.SENT).exists()
            and len(webhook_receiver.snapshot()) >= 1
        )

    wait_until(done, what="the worker to send both emails and the webhook")
    # Then until the worker has nothing left, so that a duplicate, if any were queued, would have arrived.
    wait_until(worker_idle, what="the worker to become idle")

    flag = StallFlag.objects.get(handover=handover)
    assert (flag.rule, flag.resolved_at) == (StallRule.IDLE, None)
    run = DetectionRun.objects.get()
    assert (run.opened, run.finished_at is not None) == (1, True)

    sent = list(emails.select_related("recipient"))
    assert {n.recipient for n in sent} == {owner, manager}
    assert all((n.kind, n.status, n.attempts) == (NotificationKind.OPENED, DeliveryStatus.SENT, 1) for n in sent)
    assert Notification.objects.filter(flag=flag, channel=Channel.IN_APP).count() == 2
    assert Counter((tuple(m.to), m.subject) for m in mailoutbox) == Counter(
        ((n.recipient.email,), n.subject) for n in sent
    )

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
    assert received.payload["type"] == EventType.STALL_OPENED
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
    WHEN two detection passes run at the same moment on two connections, and then every email notification is
    sent twice (a retried task), one of them by two tasks at the same moment
    THEN there is one open flag per handover and rule, one notification per recipient, channel and kind, one event
    and one webhook delivery per flag, and each email went out exactly once. Repeated with fresh handovers."""
    subscription = outbox.webhook_create(
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
            lambda pk=raced.pk: outbox.send_notification(pk), lambda pk=raced.pk: outbox.send_notification(pk)
        )
        assert sorted([first, second]) == [False, True], f"round {round_}: both or neither sent"
        for notification in emails:
            if notification.pk != raced.pk:
                assert outbox.send_notification(notification.pk) is True
                assert outbox.send_notification(notification.pk) is False  # the retry finds it sent

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


@pytest.mark.django_db(transaction=True)
def test_submit_answers_at_once_while_the_broker_is_down_and_the_sweep_delivers_when_it_is_back(
    ready_handover, people, webhook_receiver
):
    """GIVEN a subscription to ``handover.submitted`` and a broker that refuses connections
    WHEN the manager submits over the API
    THEN the answer comes within 2 s and the delivery waits in the outbox as pending;
    AND WHEN the broker is back and the outbox sweep runs, the subscriber gets one signed delivery, recorded sent."""
    subscription = outbox.webhook_create(
        by=people.admin, url=webhook_receiver.url, events=[EventType.HANDOVER_SUBMITTED]
    )
    webhook_receiver.secret = subscription.secret
    client = APIClient()
    client.force_authenticate(people.manager)

    with broker_at(DEAD_BROKER, settings.REDIS_BROKER_TRANSPORT_OPTIONS):
        started = time.monotonic()
        response = client.post(f"/api/v1/handovers/{ready_handover.pk}/submit/")
        elapsed = time.monotonic() - started

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "submitted"
    assert elapsed < 2.0, f"the request waited {elapsed:.2f} s for a broker that is down"
    event = Event.objects.get(type=EventType.HANDOVER_SUBMITTED, handover=ready_handover)
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert (delivery.event_id, delivery.status, delivery.attempts) == (event.pk, DeliveryStatus.PENDING, 0)
    assert webhook_receiver.snapshot() == []

    with eager_tasks():
        swept = outbox.sweep()
        again = outbox.sweep()

    assert (swept["deliveries"], again["deliveries"]) == (1, 0)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code, delivery.attempts) == (DeliveryStatus.SENT, 200, 1)
    [received] = webhook_receiver.snapshot()
    assert received.verified, received.error
    assert received.headers["webhook-id"] == f"msg_{event.pk.hex}"
    assert received.payload == event.payload
    assert (received.payload["data"]["handover"]["id"], received.payload["data"]["handover"]["status"]) == (
        ready_handover.pk,
        "submitted",
    )
