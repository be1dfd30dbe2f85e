"""Events remember whether they are about a confidential project, so that each delivery attempt checks the
subscription's opt-in again. Existing events are marked from their handover's project (or, for a stage move, the
project in their payload), and their deliveries still waiting for a subscription that did not opt in are cancelled
(a delivery being sent goes back to pending when the sweep frees it, and its next attempt cancels it).
"""

from django.db import migrations, models


def mark_confidential_events(apps, schema_editor):
    Event = apps.get_model("handover", "Event")
    Project = apps.get_model("projects", "Project")
    WebhookDelivery = apps.get_model("handover", "WebhookDelivery")
    Event.objects.filter(handover__project__confidential=True).update(confidential=True)
    confidential_ids = list(Project.objects.filter(confidential=True).values_list("pk", flat=True))
    if confidential_ids:
        Event.objects.filter(type="project.stage_changed", payload__data__project__id__in=confidential_ids).update(
            confidential=True
        )
    WebhookDelivery.objects.filter(
        status="pending", event__confidential=True, subscription__include_confidential=False
    ).update(status="cancelled", last_error="The subscription did not opt in to confidential projects.")


class Migration(migrations.Migration):
    dependencies = [
        ("handover", "0005_webhook_include_confidential"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="confidential",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_confidential_events, migrations.RunPython.noop),
    ]
