"""The rollup histograms as `bigint[]` on PostgreSQL instead of jsonb, and the function
that adds a delta to one, `tasks_histogram_add(stored, delta)`.

A fold adds a few bucket counts to each rollup row it touches (a 10,000-task backfill:
~6,800 rows of ~150 buckets, two to thirty of them changed). As jsonb every such row
was printed as text, merged, and parsed again whole (numeric by numeric), most of the
fold's database time; as an array the function writes only the counts that change
(`tasks/rollup_fold.py`, docs/metrics.md). Both are the same dense list, `[first
bucket index, its count, the next bucket's, …]`, `{}` / `[]` when empty.

On SQLite nothing changes in the database (the column stays JSON text: the field,
`tasks.models.HistogramField`, is a JSONField there). Reversible: backward converts
the arrays to jsonb lists and drops the function. Converting rewrites the table (a
short exclusive lock: one row per hour × type × model, ~24 MB for a month of a
million tasks); its fillfactor is kept."""

from django.db import migrations

import tasks.models

# stored + delta, both dense ([first bucket index, counts…], empty when no bucket): the
# stored array widened to cover the delta's range (zeros), then the delta's non-zero
# counts added in place. The counts only grow, so the result is dense as the Python fold
# writes it (tasks/rollups.py merge_dense; tests compare the two).
HISTOGRAM_ADD = """
CREATE OR REPLACE FUNCTION tasks_histogram_add(stored bigint[], delta bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n int := coalesce(cardinality(delta), 0);
    m int := coalesce(cardinality(stored), 0);
    low bigint;
    first bigint;
    shift int;
    tasks bigint;
    result bigint[];
BEGIN
    IF n < 2 THEN
        RETURN stored;
    ELSIF m < 2 THEN
        RETURN delta;
    END IF;
    low := delta[1];
    first := stored[1];
    IF low < first THEN
        result := ARRAY[low] || array_fill(0::bigint, ARRAY[(first - low)::int]) || stored[2:];
        m := m + (first - low)::int;
        first := low;
    ELSE
        result := stored;
    END IF;
    IF low + n > first + m THEN
        result := result || array_fill(0::bigint, ARRAY[(low + n - first - m)::int]);
    END IF;
    shift := (low - first)::int;
    FOR i IN 2 .. n LOOP
        tasks := delta[i];
        IF tasks <> 0 THEN
            result[shift + i] := result[shift + i] + tasks;
        END IF;
    END LOOP;
    RETURN result;
END
$$
"""

TO_ARRAY = (
    "ALTER TABLE tasks_metrics_rollup ALTER COLUMN histogram TYPE bigint[] "
    "USING translate(histogram::text, '[]', '{}')::bigint[]"
)
TO_JSONB = "ALTER TABLE tasks_metrics_rollup ALTER COLUMN histogram TYPE jsonb USING to_jsonb(histogram)"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(HISTOGRAM_ADD)
        schema_editor.execute(TO_ARRAY)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TO_JSONB)
        schema_editor.execute("DROP FUNCTION IF EXISTS tasks_histogram_add(bigint[], bigint[])")


class Migration(migrations.Migration):
    dependencies = [("tasks", "0016_task_key_without_db_constraint")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
            state_operations=[
                migrations.AlterField(
                    model_name="taskmetricsrollup",
                    name="histogram",
                    field=tasks.models.HistogramField(default=list),
                )
            ],
        )
    ]
