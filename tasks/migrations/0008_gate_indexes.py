"""Partial indexes for the gate, the committee and the metrics page.

- The gate's model metrics read a model's last N tasks that FSAR saw run
  (`source = 'api'`), by finish time: `tasks_model_live_finished`, `(ai_model,
  finished_at DESC, id DESC) INCLUDE (status, duration_ms)` over exactly those rows,
  replaces 0007's `(ai_model, id DESC)` of every finished task. Backfilled and
  adopted rows are not in it, so a backfill cannot make a held model look healthy.
- Who submitted what a case is about includes the keys that registered tasks on it:
  `tasks_gate_case`, `(gate_case, submitted_by) WHERE gate_case IS NOT NULL`. Tasks
  no case concerns (most) are not in it, so registration pays nothing for it.
- The metrics page marks how many tasks of each row were backfilled:
  `tasks_backfilled_finished`, `(finished_at) INCLUDE (task_type, ai_model)` over
  backfilled finished rows only; registration pays nothing for it either.

Built (and the old index dropped) CONCURRENTLY on PostgreSQL, as 0004 and 0007, so
a large live table keeps taking writes; the migration is therefore not atomic."""

from django.db import migrations, models

OLD = models.Index(
    fields=["ai_model", "-id"],
    condition=models.Q(status__in=["succeeded", "failed"]),
    name="tasks_model_finished",
)
NEW = models.Index(
    fields=["ai_model", "-finished_at", "-id"],
    include=["status", "duration_ms"],
    condition=models.Q(status__in=["succeeded", "failed"], source="api"),
    name="tasks_model_live_finished",
)
BACKFILLED = models.Index(
    fields=["finished_at"],
    include=["task_type", "ai_model"],
    condition=models.Q(source="backfill", status__in=["succeeded", "failed"]),
    name="tasks_backfilled_finished",
)
GATE_CASE = models.Index(
    fields=["gate_case", "submitted_by"],
    condition=models.Q(gate_case__isnull=False),
    name="tasks_gate_case",
)


def _add(schema_editor, model, index):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(index.create_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(model, index)


def _remove(schema_editor, model, index):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(index.remove_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.remove_index(model, index)


def forwards(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    _add(schema_editor, model, NEW)
    _add(schema_editor, model, GATE_CASE)
    _add(schema_editor, model, BACKFILLED)
    _remove(schema_editor, model, OLD)


def backwards(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    _add(schema_editor, model, OLD)
    _remove(schema_editor, model, BACKFILLED)
    _remove(schema_editor, model, GATE_CASE)
    _remove(schema_editor, model, NEW)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0007_model_finished_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="executiontask", name="tasks_model_finished"),
                migrations.AddIndex(model_name="executiontask", index=NEW),
                migrations.AddIndex(model_name="executiontask", index=GATE_CASE),
                migrations.AddIndex(model_name="executiontask", index=BACKFILLED),
            ],
            database_operations=[migrations.RunPython(forwards, backwards, atomic=False)],
        ),
    ]
