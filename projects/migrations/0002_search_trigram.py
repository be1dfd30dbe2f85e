"""Search reads projects by code and name through trigram indexes (PostgreSQL's pg_trgm); on SQLite only the
migration state changes (config.postgres.PostgresOnly)."""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

from config.postgres import PostgresOnly


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0001_initial"),
    ]

    operations = [
        PostgresOnly(TrigramExtension()),
        PostgresOnly(
            migrations.AddIndex(
                model_name="project",
                index=django.contrib.postgres.indexes.GinIndex(
                    django.contrib.postgres.indexes.OpClass(
                        django.db.models.functions.text.Upper("code"), name="gin_trgm_ops"
                    ),
                    name="project_code_trgm",
                ),
            )
        ),
        PostgresOnly(
            migrations.AddIndex(
                model_name="project",
                index=django.contrib.postgres.indexes.GinIndex(
                    django.contrib.postgres.indexes.OpClass(
                        django.db.models.functions.text.Upper("name"), name="gin_trgm_ops"
                    ),
                    name="project_name_trgm",
                ),
            )
        ),
    ]
