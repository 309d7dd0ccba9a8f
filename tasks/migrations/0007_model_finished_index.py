"""A partial index of finished tasks per AI model, newest first, for the gate's model
metrics (a model's failure rate or p95 over its last N finished tasks): without it the
query walked every registered, held and running task of the model to find the
finished ones, on every registration.

Built CONCURRENTLY on PostgreSQL, as 0004, so adding it to a large live table does
not block writes; the migration is therefore not atomic."""

from django.db import migrations, models

INDEX = models.Index(
    fields=["ai_model", "-id"],
    condition=models.Q(status__in=["succeeded", "failed"]),
    name="tasks_model_finished",
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
        ("tasks", "0006_history_reason_text"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="executiontask", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index, atomic=False)],
        ),
    ]
