"""Saved views (SavedView, audited as AdminEvent kinds) and the trigram index search reads item titles through
(PostgreSQL only: config.postgres.PostgresOnly; the pg_trgm extension comes with projects' 0002_search_trigram)."""

import django.contrib.postgres.indexes
import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models

from config.postgres import PostgresOnly


class Migration(migrations.Migration):
    dependencies = [
        ("handover", "0007_stored_readiness"),
        ("projects", "0002_search_trigram"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="adminevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("template_created", "Template created"),
                    ("template_versioned", "Template changed (new version)"),
                    ("template_activated", "Template activated"),
                    ("template_deactivated", "Template deactivated"),
                    ("token_created", "API token created"),
                    ("token_revoked", "API token revoked"),
                    ("webhook_created", "Webhook created"),
                    ("webhook_updated", "Webhook changed"),
                    ("webhook_deleted", "Webhook deleted"),
                    ("saved_view_created", "Saved view created"),
                    ("saved_view_deleted", "Saved view deleted"),
                ],
                max_length=30,
            ),
        ),
        migrations.CreateModel(
            name="SavedView",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=80)),
                (
                    "page",
                    models.CharField(
                        choices=[
                            ("portfolio", "Portfolio board"),
                            ("handovers", "Handover list"),
                            ("projects", "Project list"),
                        ],
                        max_length=20,
                    ),
                ),
                ("filters", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="saved_views",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["name", "id"],
                "constraints": [
                    models.UniqueConstraint(fields=("user", "page", "name"), name="savedview_unique_user_page_name")
                ],
            },
        ),
        PostgresOnly(
            migrations.AddIndex(
                model_name="checklistitem",
                index=django.contrib.postgres.indexes.GinIndex(
                    django.contrib.postgres.indexes.OpClass(
                        django.db.models.functions.text.Upper("title"), name="gin_trgm_ops"
                    ),
                    name="item_title_trgm",
                ),
            )
        ),
    ]
