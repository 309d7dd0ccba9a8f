"""The tasks a review case holds, through an index of held tasks only: `(gate_case, id)
WHERE status = 'held'` (reviews.selectors.held_tasks_for_case, the case page's list and
the case's decision). `tasks_gate_case` holds every task a case decided on, released
ones too, so a page of a case's held tasks read all of them.

Built CONCURRENTLY on PostgreSQL, as 0012, so a large live table keeps taking writes;
the migration is therefore not atomic."""

from django.db import migrations, models

INDEX = models.Index(fields=["gate_case", "id"], condition=models.Q(status="held"), name="tasks_case_held")


def forwards(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.create_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(model, INDEX)


def backwards(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.remove_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0014_history_user_without_db_constraint"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="executiontask", index=INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards, atomic=False)],
        ),
    ]
