"""The rollup fold computed by PostgreSQL: finished tasks given by a SELECT added to
their hour, six-hour and day rows (tasks/rollups.py) without passing through Python
one by one. What a backfill uses on PostgreSQL (tasks/backfill.py); `rollups.fold_rows`
is the same fold from Python rows, and both leave the same rollup rows (tests).

One statement whatever the number of tasks: an `INSERT … SELECT … ORDER BY key ON
CONFLICT DO UPDATE` of the deltas, the tasks grouped per rollup key (period, start,
type, model) with their counts, sums, maxima and histogram as the stored dense array.
The bucket index is `width_bucket` over the bucket boundaries
(`histograms.bucket_index_sql`); the dense array is put together with `string_agg`,
each bucket's count preceded by as many zeros as buckets are missing before it
(`lag`). Keys without a row get theirs, complete; the others are locked and added to
in the same pass, in key order as every other writer of these rows (tasks/rollups.py:
no deadlock, no lost addition), the histogram by `tasks_histogram_add` (migration
0017: the stored array widened if need be, the delta's few non-zero counts added in
place). Histograms stored as jsonb had to be printed, merged in Python and parsed
again whole, most of a 10,000-task backfill's fold (~6,800 rows of ~150 buckets;
docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction

from tasks import rollups
from tasks.histograms import BACKFILL, FAILED, bucket_index_sql
from tasks.models import FINISHED_STATUSES, TaskMetricsRollup

_TABLE = TaskMetricsRollup._meta.db_table
_KEY = rollups._KEY
_FINISHED = "(" + ", ".join(f"'{status}'" for status in FINISHED_STATUSES) + ")"  # constants, as literals


# UTC hours, six-hour blocks and days as date_bin from a UTC midnight before any task: plain
# arithmetic on the timestamp (date_trunc(…, 'UTC') converts to the zone and back, which
# was most of the per-task cost); PostgreSQL's timestamps have no leap seconds, so every
# bin edge is a UTC hour (block, midnight), and no task is before the origin.
_ORIGIN = "TIMESTAMPTZ '0001-01-01 00:00:00+00'"


def _deltas_sql(select: str) -> str:
    """The deltas of the tasks `select` gives, one row per rollup key, in the key's order."""
    return f"""
WITH tasks AS (
    SELECT date_bin('1 hour', t.finished_at, {_ORIGIN}) AS hour, t.task_type::text COLLATE "C" AS task_type,
           t.ai_model::text COLLATE "C" AS ai_model, t.status::text AS status, t.duration_ms::bigint AS duration_ms,
           t.source::text AS source, {bucket_index_sql("t.duration_ms::bigint")} AS bucket
      FROM ({select}) AS t (finished_at, task_type, ai_model, status, duration_ms, source)
     WHERE t.finished_at IS NOT NULL AND t.status IN {_FINISHED}
), buckets AS (
    SELECT p.period COLLATE "C" AS period, p.start, t.task_type, t.ai_model IS NOT NULL AS has_model,
           coalesce(t.ai_model, '') AS model,
           t.bucket, count(*) AS tasks, count(*) FILTER (WHERE t.status = '{FAILED}') AS failed,
           count(t.duration_ms) AS timed, sum(t.duration_ms) AS sum_ms, max(t.duration_ms) AS max_ms,
           count(*) FILTER (WHERE t.source = '{BACKFILL}') AS backfilled
      FROM tasks AS t
     CROSS JOIN LATERAL (VALUES
           ('{rollups.PERIOD_HOUR}', t.hour),
           ('{rollups.PERIOD_SIX_HOURS}',
            date_bin('6 hours', t.hour, {_ORIGIN})),
           ('{rollups.PERIOD_DAY}', date_bin('1 day', t.hour, {_ORIGIN}))) AS p (period, start)
     GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT period, start, task_type, has_model, model, sum(tasks)::bigint AS count, sum(failed)::bigint AS failed,
       sum(timed)::bigint AS timed, coalesce(sum(sum_ms), 0)::bigint AS sum_ms, max(max_ms)::bigint AS max_ms,
       sum(backfilled)::bigint AS backfilled,
       -- {{first bucket, its count, …}}: each count after as many zeros as buckets are missing before it
       coalesce(('{{' || min(bucket) || ',' || string_agg(repeat('0,', gap) || tasks, ',' ORDER BY bucket)
                 FILTER (WHERE bucket IS NOT NULL) || '}}')::bigint[], '{{}}'::bigint[]) AS histogram
  FROM (SELECT *, coalesce(bucket - 1 - lag(bucket) OVER (PARTITION BY period, start, task_type, has_model, model
                                                        ORDER BY bucket), 0)::int AS gap
          FROM buckets) AS b
 GROUP BY period, start, task_type, has_model, model
 ORDER BY {rollups._ORDER}
"""


# New keys get their complete row; existing ones are locked and added to, in key order.
_UPSERT = f"""
INSERT INTO {_TABLE} AS r ({_KEY}, count, failed, timed, sum_ms, max_ms, backfilled, histogram)
{{deltas}}
ON CONFLICT ({_KEY}) DO UPDATE SET
    count = r.count + EXCLUDED.count, failed = r.failed + EXCLUDED.failed, timed = r.timed + EXCLUDED.timed,
    sum_ms = r.sum_ms + EXCLUDED.sum_ms, max_ms = GREATEST(r.max_ms, EXCLUDED.max_ms),
    backfilled = r.backfilled + EXCLUDED.backfilled, histogram = tasks_histogram_add(r.histogram, EXCLUDED.histogram)
"""


def fold_select(select: str, params: Sequence | None = None) -> int:
    """Add the tasks of `select` (a SELECT of finished_at, task_type, ai_model, status,
    duration_ms, source, in that order; `params` for its placeholders) to their rollup
    rows, in the caller's transaction, on PostgreSQL. Tasks that are not finished
    (succeeded or failed, with a finished_at) are skipped, as `rollups.fold_rows`
    skips them. Returns how many rollup rows changed."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [rollups.REBUILD_LOCK])
        cursor.execute(_UPSERT.replace("{deltas}", _deltas_sql(select)), params)
        return cursor.rowcount
