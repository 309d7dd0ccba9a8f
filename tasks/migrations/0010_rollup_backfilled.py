"""The rollup rows count their backfilled tasks too (`backfilled`), so the metrics page
marks them from the rollups instead of counting the window's raw rows
(tasks.selectors.backfilled_counts read every backfilled row of the window: 0.2 s for
a week of a million tasks, docs/metrics.md).

The new column is filled from the raw rows: every finished backfilled task that is in
its rollup rows (not still pending for the drain) is counted into its hour, six-hour
and day rows. On PostgreSQL under the rollups' rebuild lock (taken exclusively), so no
drain or backfill folds meanwhile. It reads each backfilled task once: about a second
per million on the benchmark machine. Reversible (the column is dropped)."""

from datetime import UTC

from django.db import migrations, models

REBUILD_LOCK = 0x7461736B  # tasks.rollups.REBUILD_LOCK, spelled here: migrations do not import app code


def count_backfilled(apps, schema_editor):
    ExecutionTask = apps.get_model("tasks", "ExecutionTask")
    Rollup = apps.get_model("tasks", "TaskMetricsRollup")
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REBUILD_LOCK])
    counts: dict[tuple, int] = {}
    rows = (
        ExecutionTask.objects.filter(
            source="backfill", status__in=("succeeded", "failed"), finished_at__isnull=False, rollup_pending=False
        )
        .order_by()
        .values_list("finished_at", "task_type", "ai_model")
    )
    for finished_at, task_type, ai_model in rows.iterator(chunk_size=10_000):
        hour = finished_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for period, start in (
            ("hour", hour),
            ("6h", hour.replace(hour=hour.hour - hour.hour % 6)),
            ("day", hour.replace(hour=0)),
        ):
            key = (period, start, task_type, ai_model is not None, ai_model or "")
            counts[key] = counts.get(key, 0) + 1
    changed = []
    by_period: dict[str, set] = {}
    for period, start, *_ in counts:
        by_period.setdefault(period, set()).add(start)
    for period, starts in by_period.items():
        ordered = sorted(starts)
        for begin in range(0, len(ordered), 500):
            for row in Rollup.objects.filter(period=period, start__in=ordered[begin : begin + 500]):
                n = counts.get((row.period, row.start, row.task_type, row.has_model, row.model), 0)
                if n:
                    row.backfilled = n
                    changed.append(row)
    Rollup.objects.bulk_update(changed, ["backfilled"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0009_rollup_pending"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskmetricsrollup",
            name="backfilled",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(count_backfilled, migrations.RunPython.noop),
    ]
