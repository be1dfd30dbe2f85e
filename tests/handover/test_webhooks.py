"""Webhooks behind the outbound guard, and confidential projects' events only for subscriptions that opt in.

Names are resolved in the test (the ``network`` fixture: ``hooks.example.com`` is a public address, any other name
is what the test says); deliveries only ever reach receivers on 127.0.0.1, and ``network.connects`` shows that a
refused delivery never opened a connection.
"""

import datetime as dt
import logging

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from config.errors import InvalidInput
from handover import services as hs
from handover.choices import AdminEventKind, DeliveryStatus, EventType, Side
from handover.models import AdminEvent, Event, WebhookDelivery, WebhookSubscription
from handover.stalls.services import detect_stalls
from handover.webhooks import services as webhooks
from projects import services as ps
from projects.choices import Stage
from tests.factories import ProjectFactory
from tests.network import PUBLIC_ADDRESS
from tests.projects.test_admin import form_data

pytestmark = pytest.mark.django_db

OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture
def no_loopback(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    return settings


def emit_one(handover, event_type=EventType.HANDOVER_SUBMITTED) -> WebhookDelivery:
    webhooks.emit(event_type, data=webhooks.handover_payload(handover), handover=handover)
    [delivery] = WebhookDelivery.objects.filter(event__type=event_type)
    return delivery


# ------------------------------------------------------------------------------------- at subscription time


@pytest.mark.parametrize(
    ("url", "resolves_to", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", None, "169.254.169.254 is a link-local address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", None, "fd00:ec2::254 is a unique-local address"),
        ("http://127.0.0.1:5432/", None, "127.0.0.1 is a loopback address"),
        ("http://localhost:6379/", None, "is a loopback address"),
        ("http://[::ffff:10.0.0.5]/hooks", None, "IPv4-mapped form of 10.0.0.5, a private"),
        ("https://intranet.corp.test/hooks", "10.0.0.5", "intranet.corp.test (10.0.0.5) is a private"),
        ("https://metadata.corp.test/", "169.254.169.254", "metadata.corp.test (169.254.169.254) is a link-local"),
        ("https://cgnat.corp.test/", "100.64.1.2", "is a shared (carrier-grade NAT) address"),
    ],
)
def test_subscription_to_an_address_that_is_not_public_is_refused(
    url, resolves_to, why, admin_user, no_loopback, network
):
    if resolves_to:
        network.resolve(url.split("/")[2], resolves_to)

    with pytest.raises(InvalidInput) as refused:
        webhooks.webhook_create(by=admin_user, url=url)

    assert (refused.value.rule, refused.value.field) == ("url_not_allowed", "url")
    assert why in refused.value.message
    assert not WebhookSubscription.objects.exists()
    assert not AdminEvent.objects.exists()
    assert network.connects == []


def test_subscription_to_a_name_that_does_not_resolve_is_refused(admin_user, network):
    with pytest.raises(InvalidInput) as refused:
        webhooks.webhook_create(by=admin_user, url="https://hooks.nowhere.test/in")

    assert (refused.value.rule, refused.value.field) == ("url_unresolvable", "url")
    assert refused.value.message.startswith("hooks.nowhere.test does not resolve")
    assert not WebhookSubscription.objects.exists()


def test_changing_a_subscription_to_a_private_address_is_refused_and_changes_nothing(admin_user, network):
    subscription = webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/in")
    network.resolve("internal.corp.test", "192.168.10.4")

    with pytest.raises(InvalidInput) as refused:
        webhooks.webhook_update(subscription=subscription, by=admin_user, url="https://internal.corp.test/in")

    assert refused.value.rule == "url_not_allowed"
    subscription.refresh_from_db()
    assert subscription.url == "https://hooks.example.com/in"
    assert AdminEvent.objects.filter(kind=AdminEventKind.WEBHOOK_UPDATED).count() == 0


def test_https_only_refuses_an_http_subscription(admin_user, settings):
    settings.OUTBOUND_HTTPS_ONLY = True

    with pytest.raises(InvalidInput) as refused:
        webhooks.webhook_create(by=admin_user, url="http://hooks.example.com/in")

    assert (refused.value.rule, refused.value.field) == ("url_not_allowed", "url")
    assert "Only https" in refused.value.message
    assert webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/in").pk


def test_the_api_refuses_a_private_webhook_url_on_the_url_field(admin_user, network):
    network.resolve("metadata.corp.test", "169.254.169.254")
    client = APIClient()
    client.force_authenticate(admin_user)

    response = client.post("/api/v1/webhooks/", {"url": "https://metadata.corp.test/"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed"
    assert list(error["fields"]) == ["url"]
    assert "169.254.169.254" in error["fields"]["url"][0]
    assert not WebhookSubscription.objects.exists()


def test_the_admin_shows_the_refusal_on_the_url_field(client, admin_user):
    client.force_login(admin_user)
    add = reverse("admin:handover_webhooksubscription_add")
    data = form_data(client.get(add), WebhookSubscription)
    data.update(url="http://169.254.169.254/latest/meta-data/")

    response = client.post(add, data)

    assert response.status_code == 200
    assert "169.254.169.254 is a link-local address" in " ".join(response.context["adminform"].form.errors["url"])
    assert not WebhookSubscription.objects.exists()


# ----------------------------------------------------------------------------------------- at delivery time


def test_delivery_is_refused_before_connecting_when_the_name_now_resolves_to_a_private_address(
    admin_user, handover, network, caplog
):
    """GIVEN a subscription whose name resolved to a public address when it was made WHEN, at delivery time, it
    resolves to a private address (DNS rebinding) THEN no connection is made: the attempt failed, with the guard's
    reason in the log and on the row, and waits for a retry like any failed attempt."""
    network.resolve("hooks.partner.test", PUBLIC_ADDRESS)
    webhooks.webhook_create(by=admin_user, url="https://hooks.partner.test/in")
    delivery = emit_one(handover)
    network.resolve("hooks.partner.test", "10.0.0.5")

    assert webhooks.deliver_webhook(delivery.pk) is False

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, None)
    assert delivery.last_error.startswith("Refused by the outbound guard: hooks.partner.test (10.0.0.5) is a private")
    assert delivery.next_attempt_at > timezone.now()
    assert network.connects == []
    assert any("10.0.0.5" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_delivery_to_loopback_is_refused_when_the_setting_is_off(
    admin_user, handover, loopback_server, network, settings
):
    """GIVEN a subscription to a receiver on 127.0.0.1 (made while loopback was allowed) and one attempt allowed
    WHEN loopback is no longer allowed at delivery time THEN the receiver hears nothing and the delivery failed."""
    server = loopback_server(OK)
    webhooks.webhook_create(by=admin_user, url=server.url_for())
    delivery = emit_one(handover)
    settings.OUTBOUND_ALLOW_LOOPBACK, settings.OUTBOX_MAX_ATTEMPTS = False, 1

    assert webhooks.deliver_webhook(delivery.pk) is False

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "127.0.0.1 is a loopback address" in delivery.last_error
    assert (network.connects, server.requests) == ([], [])


def test_delivery_connects_to_the_checked_address_and_names_the_host(admin_user, handover, loopback_server, network):
    """GIVEN a subscription to a name that resolves to a loopback receiver WHEN the delivery is sent THEN it is
    accepted, connected to that address, with the name in the Host header."""
    server = loopback_server(OK)
    network.resolve("receiver.test", "127.0.0.1")
    webhooks.webhook_create(by=admin_user, url=server.url_for(host="receiver.test"))
    delivery = emit_one(handover)

    assert webhooks.deliver_webhook(delivery.pk) is True

    assert network.connects == ["127.0.0.1"]
    assert f"Host: receiver.test:{server.port}\r\n".encode() in server.requests[0]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == (DeliveryStatus.SENT, 204)


def test_redirect_to_the_metadata_service_is_not_followed(admin_user, handover, loopback_server, network):
    """GIVEN a receiver on 127.0.0.1 answering 302 to http://169.254.169.254/ WHEN the delivery is sent THEN the
    redirect is not followed (nothing connects there) and the attempt failed with code 302."""
    server = loopback_server(
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n"
    )
    webhooks.webhook_create(by=admin_user, url=server.url_for())
    delivery = emit_one(handover)

    assert webhooks.deliver_webhook(delivery.pk) is False

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 302)
    assert delivery.last_error == "HTTP 302"
    assert network.connects == ["127.0.0.1"]
    assert len(server.requests) == 1


# -------------------------------------------------------------------------------------- confidential projects


@pytest.fixture
def confidential(project):
    """The CRM project made confidential before anything else happens to it (request it before ``handover``)."""
    project.confidential = True
    project.save(update_fields=["confidential"])
    return project


@pytest.fixture
def two_subscriptions(admin_user):
    opted_in = webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/all", include_confidential=True)
    regular = webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/regular")
    return opted_in, regular


def delivered_to(subscription) -> list[str]:
    return sorted(WebhookDelivery.objects.filter(subscription=subscription).values_list("event__type", flat=True))


def test_confidential_projects_events_go_only_to_subscriptions_that_opted_in(
    confidential, two_subscriptions, handover, people, drive_to_submitted
):
    """GIVEN a subscription that opted in to confidential projects and one that did not WHEN a confidential
    project's handover has items completed and is submitted, its flag opens and the project moves stage THEN every
    one of those events goes to the first subscription only."""
    opted_in, regular = two_subscriptions

    drive_to_submitted(handover)
    detect_stalls(now=timezone.now() + dt.timedelta(days=10))  # review overdue
    ps.project_transition(project=confidential, to=Stage.EXECUTION, by=people.manager)
    webhooks.publish_project_events()

    types = set(delivered_to(opted_in))
    assert {"handover.submitted", "item.updated", "stall.opened", "project.stage_changed"} <= types
    assert delivered_to(regular) == []


def test_events_of_other_projects_go_to_every_subscription(two_subscriptions, handover, people, drive_to_submitted):
    opted_in, regular = two_subscriptions

    drive_to_submitted(handover)
    ps.project_transition(project=handover.project, to=Stage.EXECUTION, by=people.manager)
    webhooks.publish_project_events()

    assert delivered_to(regular) == delivered_to(opted_in)
    assert {"handover.submitted", "item.updated", "project.stage_changed"} <= set(delivered_to(regular))


def test_confidential_event_is_not_recorded_when_no_subscription_opted_in(admin_user, people, manager, team):
    """GIVEN only a subscription that did not opt in WHEN a confidential project and an open one move stage THEN only
    the open one's move is an event (the confidential one is not even stored for later)."""
    webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/regular")
    secret = ProjectFactory(code="SECRET-1", manager=manager, receiving_team=team, confidential=True)
    open_project = ProjectFactory(code="OPEN-1", manager=manager, receiving_team=team)
    for project in (secret, open_project):
        ps.project_transition(project=project, to=Stage.PLANNING, by=manager)

    assert webhooks.publish_project_events() == 1
    [event] = Event.objects.all()
    assert event.payload["data"]["project"]["code"] == "OPEN-1"


def test_confidential_items_sent_back_in_bulk_go_only_to_the_opted_in(
    confidential, two_subscriptions, submitted_handover, people
):
    opted_in, regular = two_subscriptions
    done = list(submitted_handover.items.filter(mandatory=True, side=Side.PROJECT))
    before = WebhookDelivery.objects.filter(subscription=opted_in).count()

    hs.handover_return(handover=submitted_handover, by=people.owner, reason="Not yet.", items=done)

    assert WebhookDelivery.objects.filter(subscription=opted_in).count() > before
    assert delivered_to(regular) == []


def test_the_opt_in_is_set_through_the_api_and_audited(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)

    created = client.post("/api/v1/webhooks/", {"url": "https://hooks.example.com/in"}, format="json").json()
    assert created["include_confidential"] is False
    changed = client.patch(f"/api/v1/webhooks/{created['id']}/", {"include_confidential": True}, format="json")

    assert changed.status_code == 200
    assert changed.json()["include_confidential"] is True
    created_row = AdminEvent.objects.get(kind=AdminEventKind.WEBHOOK_CREATED)
    assert created_row.changes["include_confidential"] is False
    assert AdminEvent.objects.get(kind=AdminEventKind.WEBHOOK_UPDATED).changes == {
        "include_confidential": [False, True]
    }


def test_the_admin_form_sets_the_opt_in(client, admin_user):
    client.force_login(admin_user)
    add = reverse("admin:handover_webhooksubscription_add")
    data = form_data(client.get(add), WebhookSubscription)
    data.update(url="https://hooks.example.com/in", include_confidential="on")

    client.post(add, data, follow=True)

    assert WebhookSubscription.objects.get().include_confidential is True
    assert AdminEvent.objects.get(kind=AdminEventKind.WEBHOOK_CREATED).changes["include_confidential"] is True


def test_a_subscription_made_without_saying_does_not_receive_confidential_events(admin_user):
    assert webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/in").include_confidential is False


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"include_confidential": False}, "no longer takes"), ({"is_active": False}, "no longer takes")],
    ids=["opt-in withdrawn", "switched off"],
)
def test_a_delivery_the_subscription_no_longer_wants_is_cancelled_before_any_connection(
    confidential, admin_user, handover, network, change, reason
):
    """GIVEN a confidential project's event waiting for delivery to a subscription that opted in WHEN an
    administrator withdraws the opt-in (or switches the subscription off) before it goes out THEN the delivery is
    cancelled at its next attempt, without a connection."""
    subscription = webhooks.webhook_create(
        by=admin_user, url="https://hooks.example.com/all", include_confidential=True
    )
    delivery = emit_one(handover)
    assert delivery.event.confidential

    webhooks.webhook_update(subscription=subscription, by=admin_user, **change)

    assert webhooks.deliver_webhook(delivery.pk) is False
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.CANCELLED, 0)
    assert reason in delivery.last_error
    assert network.connects == []
