"""Room on every page of `tasks_metrics_rollup` for the next version of its rows
(fillfactor 60), so that adding to a rollup row is a HOT update: the new version goes
on the same page and neither of the table's two indexes (the primary key, the rollup
key) gets a new entry. Every fold updates rows in place that way (a finished task's
three rows, a backfill's thousands: 6,800 rows for 10,000 tasks over a month). Packed
full, as before, a row's new version went to another page with two new index entries;
a 10,000-task backfill's UPDATE of its rollup rows took about twice as long
(bench/profile_bulk.py).

On PostgreSQL only (SQLite has no such setting). It applies to pages written from now
on; `VACUUM FULL tasks_metrics_rollup` repacks the existing rows with the room
(docs/deployment.md). Reversible."""

from django.db import migrations

FILLFACTOR = 60


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE tasks_metrics_rollup SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE tasks_metrics_rollup RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("tasks", "0012_fewer_task_index_writes")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor, elidable=False)]
