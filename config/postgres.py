"""What the apps use of PostgreSQL that SQLite does not have, so that the same migrations run on both.

Search reads through trigram indexes (``pg_trgm``'s ``gin_trgm_ops`` on ``UPPER(column)``, the expression Django's
``icontains`` compares on PostgreSQL), declared on the models with ``trigram_index`` and created by migrations
through ``PostgresOnly``: on SQLite, where ``icontains`` is a plain scan of small tables, the operation changes the
migration state only.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db.migrations.operations.base import Operation
from django.db.models.functions import Upper


def trigram_index(field: str, *, name: str) -> GinIndex:
    """A GIN trigram index on ``UPPER(field)``: it serves ``field__icontains`` (``UPPER(field::text) LIKE
    UPPER('%...%')``) for a pattern of three characters or more, and ``TrigramSimilarity`` on the same column."""
    return GinIndex(OpClass(Upper(field), name="gin_trgm_ops"), name=name)


class PostgresOnly(Operation):
    """Run ``operation`` (a reversible one) on PostgreSQL only; elsewhere only its change to the migration state is
    made.

    For indexes and extensions that exist on PostgreSQL alone (``TrigramExtension``, a ``GinIndex``): SQLite
    cannot create them, and the models still declare them, so that ``makemigrations`` sees nothing to do.
    """

    def __init__(self, operation: Operation) -> None:
        self.operation = operation

    def state_forwards(self, app_label, state) -> None:
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{self.operation.describe()} (PostgreSQL only)"

    @property
    def migration_name_fragment(self) -> str:
        return self.operation.migration_name_fragment
