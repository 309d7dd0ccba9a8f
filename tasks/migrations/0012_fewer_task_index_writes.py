"""Fewer index entries per write of a task.

Registration, start and finish each write a new version of the task's row (none is a
HOT update: each changes an indexed column), and every version goes into every index
whose condition it meets. So each index now holds only the rows its readers ask for:

- `tasks_model_set_id`, `tasks_customer_set_id`, `tasks_proposal_set_id`: the task
  list's filters are equalities, so rows without a model, customer or proposal are left
  out (most tasks have no proposal); the proposal's index is now `(proposal_ref, id
  DESC)` like the others, so a proposal's tasks come newest first without a sort;
- `tasks_running_started`: `(started_at) WHERE status = 'running'` replaces
  `(status, started_at)`; its only reader is `fail_abandoned_tasks`;
- `tasks_finished_at_cover`: the metrics' covering index over finished rows only, so a
  registration and a start no longer write it;
- `tasks_finished` `(finished_at, task_type, ai_model)` is gone: the covering index
  answers the same windows from the index alone;
- the `varchar_pattern_ops` index Django adds beside `external_id`'s unique one is
  dropped: nothing searches external ids by prefix on the request path.

For a task with a model and a customer and no proposal, registration writes 7 index
entries instead of 12, start 8 instead of 12 and finish 10 instead of 14.

Built (and the old indexes dropped) CONCURRENTLY on PostgreSQL, as 0004, 0007 and 0008,
so a large live table keeps taking writes; the migration is therefore not atomic. Each
new index is built before the one it replaces is dropped."""

from django.db import migrations, models

REPLACED = [
    (
        models.Index(fields=["ai_model", "-id"], name="tasks_model_id"),
        models.Index(fields=["ai_model", "-id"], condition=models.Q(ai_model__isnull=False), name="tasks_model_set_id"),
    ),
    (
        models.Index(fields=["customer_ref", "-id"], name="tasks_customer_id"),
        models.Index(
            fields=["customer_ref", "-id"],
            condition=models.Q(customer_ref__isnull=False),
            name="tasks_customer_set_id",
        ),
    ),
    (
        models.Index(fields=["proposal_ref"], name="tasks_proposal"),
        models.Index(
            fields=["proposal_ref", "-id"], condition=models.Q(proposal_ref__isnull=False), name="tasks_proposal_set_id"
        ),
    ),
    (
        models.Index(fields=["status", "started_at"], name="tasks_status_started"),
        models.Index(fields=["started_at"], condition=models.Q(status="running"), name="tasks_running_started"),
    ),
    (
        models.Index(
            fields=["finished_at"],
            include=["task_type", "ai_model", "status", "duration_ms"],
            name="tasks_finished_cover",
        ),
        models.Index(
            fields=["finished_at"],
            include=["task_type", "ai_model", "status", "duration_ms"],
            condition=models.Q(finished_at__isnull=False),
            name="tasks_finished_at_cover",
        ),
    ),
]
DROPPED = models.Index(fields=["finished_at", "task_type", "ai_model"], name="tasks_finished")


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


def _like_index_name(schema_editor, model):
    return schema_editor._create_index_name(model._meta.db_table, ["external_id"], suffix="_like")


def forwards(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    for old, new in REPLACED:
        _add(schema_editor, model, new)
        _remove(schema_editor, model, old)
    _remove(schema_editor, model, DROPPED)
    if schema_editor.connection.vendor == "postgresql":
        # An adopted legacy table may never have had it.
        name = schema_editor.quote_name(_like_index_name(schema_editor, model))
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def backwards(apps, schema_editor):
    model = apps.get_model("tasks", "ExecutionTask")
    if schema_editor.connection.vendor == "postgresql":
        name = schema_editor.quote_name(_like_index_name(schema_editor, model))
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON execution_tasks (external_id varchar_pattern_ops)"
        )
    _add(schema_editor, model, DROPPED)
    for old, new in REPLACED:
        _add(schema_editor, model, old)
        _remove(schema_editor, model, new)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0011_history_fewer_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *(migrations.RemoveIndex(model_name="executiontask", name=old.name) for old, _ in REPLACED),
                migrations.RemoveIndex(model_name="executiontask", name=DROPPED.name),
                *(migrations.AddIndex(model_name="executiontask", index=new) for _, new in REPLACED),
            ],
            database_operations=[migrations.RunPython(forwards, backwards, atomic=False)],
        ),
    ]
