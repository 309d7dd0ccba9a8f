"""Less work in PostgreSQL for every report received (`POST /api/v1/proposals`):

- No foreign key constraint in the database on the key that sent a report
  (`reviews_report.submitted_by_id`) nor on its history rows' user, as on a task's
  (tasks 0014, 0016): each deferred check looked the row up again when the report
  committed, planned anew every time (plan_cache_mode=force_custom_plan). The key is
  always the request's authenticated one and its owner the history's user; keys are
  revoked, never deleted (the admin cannot), and deleting a key or a user through the
  ORM still clears them (Django's SET_NULL). The indexes stay.
- The `varchar_pattern_ops` indexes Django adds beside the indexes of the three
  character columns `report_id`, `fingerprint` and `supersedes_id` are dropped: they
  serve only LIKE 'prefix%' searches, which nothing makes (the admin searches an exact
  id; the intake and the pages read equalities, which the plain indexes answer). Three
  index entries fewer per report. Their names are Django's (a hash of table and column:
  the same on every database); SQLite never had them.

Dropped CONCURRENTLY on PostgreSQL, so a live table keeps taking reports: the migration
is not atomic. Reversible (the constraints are added back, checking the rows; the
indexes rebuilt)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "reviews_report"
LIKE_INDEXES = {
    "reviews_report_report_id_2fccd52e_like": "report_id",
    "reviews_report_fingerprint_44689301_like": "fingerprint",
    "reviews_report_supersedes_id_a2adc377_like": "supersedes_id",
}


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in LIKE_INDEXES:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def add_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in LIKE_INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{TABLE}" ("{column}" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("reviews", "0013_historicalreport_fewer_indexes"),
        ("tasks", "0016_task_key_without_db_constraint"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicalreport",
            name="history_user",
            field=models.ForeignKey(
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="report",
            name="submitted_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="tasks.apikey",
            ),
        ),
        migrations.RunPython(drop_like_indexes, add_like_indexes, elidable=False),
    ]
