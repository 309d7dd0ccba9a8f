"""A usage record is written with every billed finish; two of its indexes repeated others:
the customer foreign key's own index is the first column of `usage_customer_time`, and the
invoice line's is the same column as `usage_invoice_line`. Dropped: two index entries fewer
per billed finish, the same plans (a customer's usage by usage_customer_time, an invoice
line's by usage_invoice_line).

The foreign key constraints stay as they are (AlterField would drop and re-add them, which
validates every row under a lock that blocks finishes); only the indexes go, CONCURRENTLY on
PostgreSQL, so the migration is not atomic. The names are the ones Django gave the foreign
keys' indexes (a hash of table and column: the same on every database)."""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "billing_usagerecord"
INDEXES = {
    "billing_usagerecord_customer_id_04757818": "customer_id",
    "billing_usagerecord_invoice_line_id_2fa0ea97": "invoice_line_id",
}


def forwards(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{name}"')


def backwards(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name, column in INDEXES.items():
        schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS "{name}" ON "{TABLE}" ("{column}")')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("billing", "0003_history_reason_text"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usagerecord",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="usage",
                        to="billing.customer",
                    ),
                ),
                migrations.AlterField(
                    model_name="usagerecord",
                    name="invoice_line",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="usage_records",
                        to="billing.invoiceline",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards, atomic=False)],
        ),
    ]
