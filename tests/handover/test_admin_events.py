"""The audit of configuration: every change to a template, an API token or a webhook says who, what and when."""

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from config.errors import IllegalTransition, NotPermitted
from handover import services as hs
from handover.checklists import DEFAULT_TEMPLATES
from handover.choices import AdminEventKind, Risk
from handover.models import AdminEvent
from handover.services import TemplateItemSpec
from handover.tokens import services as tokens
from handover.webhooks import services as webhooks

pytestmark = pytest.mark.django_db

NOON = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


def events() -> list[tuple]:
    return list(AdminEvent.objects.order_by("id").values_list("kind", "actor__username", "subject", "object_id"))


def test_load_templates_records_each_new_template_once_as_the_systems_doing():
    call_command("load_templates", stdout=io.StringIO())
    first = events()
    assert [(kind, actor) for kind, actor, *_ in first] == [(AdminEventKind.TEMPLATE_CREATED, None)] * len(
        DEFAULT_TEMPLATES
    )

    call_command("load_templates", stdout=io.StringIO())

    assert events() == first  # unchanged definitions: nothing installed, nothing recorded


@time_machine.travel(NOON, tick=False)
def test_template_changes_say_who_made_them_and_what_changed(admin_user):
    template = hs.template_create(
        by=admin_user, kind="software", name="Data platform", items=[TemplateItemSpec("a", "Runbook", Risk.FAILURE)]
    )
    newer = hs.template_update(
        template=template, by=admin_user, items=[TemplateItemSpec("a", "Runbook and on-call", Risk.FAILURE)]
    )
    hs.template_update(template=newer, by=admin_user, is_active=False)
    hs.template_update(template=newer, by=admin_user, is_active=False)  # no change: nothing to record
    hs.template_update(template=newer, by=admin_user, is_active=True)

    assert events() == [
        (AdminEventKind.TEMPLATE_CREATED, "admin", "Data platform v1", template.pk),
        (AdminEventKind.TEMPLATE_VERSIONED, "admin", "Data platform v2", newer.pk),
        (AdminEventKind.TEMPLATE_DEACTIVATED, "admin", "Data platform v2", newer.pk),
        (AdminEventKind.TEMPLATE_ACTIVATED, "admin", "Data platform v2", newer.pk),
    ]
    versioned = AdminEvent.objects.get(kind=AdminEventKind.TEMPLATE_VERSIONED)
    assert versioned.changes == {"version": [1, 2], "items": 1}
    assert versioned.created_at == timezone.now()


def test_a_refused_template_edit_records_nothing(template, manager):
    with pytest.raises(NotPermitted):
        hs.template_update(template=template, by=manager, is_active=False)
    assert events() == []


def test_tokens_record_who_created_and_who_revoked_them_never_the_secret(admin_user, viewer):
    token, secret = tokens.token_create(by=admin_user, name="Reporting sync", user=viewer, read_only=True)
    tokens.token_revoke(token=token, by=viewer)

    assert events() == [
        (AdminEventKind.TOKEN_CREATED, "admin", f"Reporting sync ({token.prefix}…) of viewer", token.pk),
        (AdminEventKind.TOKEN_REVOKED, "viewer", f"Reporting sync ({token.prefix}…) of viewer", token.pk),
    ]
    created = AdminEvent.objects.get(kind=AdminEventKind.TOKEN_CREATED)
    assert created.changes == {"user": "viewer", "read_only": True, "expires_at": None}
    assert all(secret not in str(row) for row in AdminEvent.objects.values())


def test_a_refused_revocation_records_nothing_more(viewer, manager):
    token, _ = tokens.token_create(by=viewer, name="Dashboard")
    tokens.token_revoke(token=token, by=viewer)
    before = events()

    with pytest.raises(NotPermitted):
        tokens.token_revoke(token=token, by=manager)
    with pytest.raises(IllegalTransition):
        tokens.token_revoke(token=token, by=viewer)

    assert events() == before


def test_webhook_changes_are_recorded_and_outlive_the_subscription(admin_user):
    url = "https://hooks.example.com/handover"
    subscription = webhooks.webhook_create(by=admin_user, url=url, events=["stall.opened"])
    webhooks.webhook_update(subscription=subscription, by=admin_user, events=["stall.opened"])  # no change
    webhooks.webhook_update(subscription=subscription, by=admin_user, is_active=False)
    pk = subscription.pk
    webhooks.webhook_delete(subscription=subscription, by=admin_user)

    assert events() == [
        (AdminEventKind.WEBHOOK_CREATED, "admin", url, pk),
        (AdminEventKind.WEBHOOK_UPDATED, "admin", url, pk),
        (AdminEventKind.WEBHOOK_DELETED, "admin", url, pk),
    ]
    assert AdminEvent.objects.get(kind=AdminEventKind.WEBHOOK_UPDATED).changes == {"is_active": [True, False]}
    assert all(subscription.secret not in str(row) for row in AdminEvent.objects.values())


def test_a_refused_webhook_change_records_nothing(admin_user, manager):
    subscription = webhooks.webhook_create(by=admin_user, url="https://hooks.example.com/in")
    before = events()

    with pytest.raises(NotPermitted):
        webhooks.webhook_update(subscription=subscription, by=manager, is_active=False)
    with pytest.raises(NotPermitted):
        webhooks.webhook_delete(subscription=subscription, by=manager)

    assert events() == before
