"""A covering index for the metrics aggregates (tasks/metrics.py): on PostgreSQL the
finished_at range of a window is read from the index alone (an index-only scan).

Built CONCURRENTLY on PostgreSQL, so adding it to a large live table does not block
writes; the migration is therefore not atomic. Other databases ignore INCLUDE and get
a plain index on finished_at."""

from django.db import migrations, models

INDEX = models.Index(
    fields=["finished_at"],
    include=["task_type", "ai_model", "status", "duration_ms"],
    name="tasks_finished_cover",
)


def create_index(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.create_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(model, INDEX)


def drop_index(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.remove_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0003_fsar_columns_history_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="executiontask", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index, atomic=False)],
        ),
    ]
