"""The rollup fold computed by PostgreSQL: finished tasks given by a SELECT added to
their hour, six-hour and day rows (tasks/rollups.py) without passing through Python
one by one. What a backfill uses on PostgreSQL (tasks/backfill.py); `rollups.fold_rows`
is the same fold from Python rows, and both leave the same rollup rows (tests).

Four set-based statements whatever the number of tasks:

1. the deltas: one `CREATE TEMPORARY TABLE … AS SELECT … GROUP BY` of the tasks per
   rollup key (period, start, type, model), with the counts, sums, maxima and the
   histogram as the stored dense list. The bucket index is `width_bucket` over the
   bucket boundaries (`histograms.bucket_index_sql`); the dense list is put together
   with `string_agg`, each bucket's count preceded by as many zeros as buckets missing
   before it (`lag`).
2. one `INSERT … SELECT … ORDER BY key ON CONFLICT DO UPDATE … WHERE false`: the keys
   that have no row yet get theirs, complete (nothing more to do for them); the others
   are locked without being written, in the same pass in key order as every other
   writer of these rows (tasks/rollups.py: no deadlock, no lost addition).
3. the existing rows' stored histograms read as text with their deltas, added up in
   Python (`add_to_stored`: only the counts a delta changes are parsed and written
   again) and COPYed into a second temporary table; the merge runs in a thread of its
   own while the caller's `meanwhile` statement (a backfill's insert of its tasks)
   runs in the database, so neither waits for the other. Merging the dense JSON lists in
   SQL goes element by element through the executor: ~0.6 ms a row, 4-6 s for a
   10,000-task backfill's ~6,800 rows where this takes well under a second
   (docs/metrics.md).
4. one `UPDATE` adding the counts, sums and maxima in SQL and writing the merged
   histograms: one write per rollup row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from django.db import connection, transaction

from tasks import rollups
from tasks.histograms import BACKFILL, FAILED, bucket_index_sql
from tasks.models import FINISHED_STATUSES, TaskMetricsRollup

_TABLE = TaskMetricsRollup._meta.db_table
_KEY = rollups._KEY
_FINISHED = "(" + ", ".join(f"'{status}'" for status in FINISHED_STATUSES) + ")"  # constants, as literals


def _on_key(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{column} = {b}.{column}" for column in _KEY.split(", "))


# UTC hours, six-hour blocks and days as date_bin from a UTC midnight before any task: plain
# arithmetic on the timestamp (date_trunc(…, 'UTC') converts to the zone and back, which
# was most of the per-task cost); PostgreSQL's timestamps have no leap seconds, so every
# bin edge is a UTC hour (block, midnight), and no task is before the origin.
_ORIGIN = "TIMESTAMPTZ '0001-01-01 00:00:00+00'"


def _deltas_sql(select: str) -> str:
    """The deltas of the tasks `select` gives, into the temporary table rollup_fold_delta."""
    return f"""
CREATE TEMPORARY TABLE rollup_fold_delta ON COMMIT DROP AS
WITH tasks AS (
    SELECT date_bin('1 hour', t.finished_at, {_ORIGIN}) AS hour, t.task_type::text AS task_type,
           t.ai_model::text AS ai_model, t.status::text AS status, t.duration_ms::bigint AS duration_ms,
           t.source::text AS source, {bucket_index_sql("t.duration_ms::bigint")} AS bucket
      FROM ({select}) AS t (finished_at, task_type, ai_model, status, duration_ms, source)
     WHERE t.finished_at IS NOT NULL AND t.status IN {_FINISHED}
), buckets AS (
    SELECT p.period, p.start, t.task_type, t.ai_model IS NOT NULL AS has_model, coalesce(t.ai_model, '') AS model,
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
       -- [first bucket, its count, …]: each count after as many zeros as buckets are missing before it
       coalesce(('[' || min(bucket) || ',' || string_agg(repeat('0,', gap) || tasks, ',' ORDER BY bucket)
                 FILTER (WHERE bucket IS NOT NULL) || ']')::jsonb, '[]'::jsonb) AS histogram
  FROM (SELECT *, coalesce(bucket - 1 - lag(bucket) OVER (PARTITION BY period, start, task_type, has_model, model
                                                        ORDER BY bucket), 0)::int AS gap
          FROM buckets) AS b
 GROUP BY period, start, task_type, has_model, model
"""


# New keys get their complete row; existing ones are locked, not written (WHERE false), and
# their deltas stay in the table for the merge.
_ENSURE = f"""
WITH inserted AS (
    INSERT INTO {_TABLE} AS r ({_KEY}, count, failed, timed, sum_ms, max_ms, backfilled, histogram)
    SELECT {_KEY}, count, failed, timed, sum_ms, max_ms, backfilled, histogram
      FROM rollup_fold_delta ORDER BY {rollups._ORDER}
    ON CONFLICT ({_KEY}) DO UPDATE SET count = r.count WHERE false
    RETURNING {_KEY})
DELETE FROM rollup_fold_delta AS d USING inserted AS i WHERE {_on_key("d", "i")}
"""
_READ = f"""
SELECT r.id, r.histogram::text, d.histogram::text
  FROM rollup_fold_delta AS d JOIN {_TABLE} AS r ON {_on_key("r", "d")}
"""
_TEMP_SET = "CREATE TEMPORARY TABLE rollup_fold_merged (id bigint, histogram jsonb) ON COMMIT DROP"
_UPDATE = f"""
UPDATE {_TABLE} AS r
   SET count = r.count + d.count, failed = r.failed + d.failed, timed = r.timed + d.timed,
       sum_ms = r.sum_ms + d.sum_ms, max_ms = GREATEST(r.max_ms, d.max_ms), backfilled = r.backfilled + d.backfilled,
       histogram = m.histogram
  FROM rollup_fold_delta AS d, rollup_fold_merged AS m
 WHERE m.id = r.id AND {_on_key("r", "d")}
"""


def fold_select(select: str, params: Sequence | None = None, *, meanwhile: Callable[[], None] | None = None) -> int:
    """Add the tasks of `select` (a SELECT of finished_at, task_type, ai_model, status,
    duration_ms, source, in that order; `params` for its placeholders) to their rollup
    rows, in the caller's transaction, on PostgreSQL. Tasks that are not finished
    (succeeded or failed, with a finished_at) are skipped, as `rollups.fold_rows`
    skips them. Returns how many rollup rows changed.

    `meanwhile`, if given, is called (on this connection, in the same transaction) once
    the rows to merge are read and locked, while their histograms are merged in Python
    in another thread: a backfill inserts its tasks then (tasks/backfill.py), so that
    the database's work on that statement and the merge's Python run at the same time
    (psycopg waits for the database without holding the GIL)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [rollups.REBUILD_LOCK])
        cursor.execute(_deltas_sql(select), params)
        changed = cursor.rowcount
        cursor.execute(_ENSURE)
        cursor.execute(_READ)
        found = cursor.fetchall()
        if meanwhile is None or not found:
            merged = _merged(found)
            if meanwhile is not None:
                meanwhile()
        else:
            # Leaving the block waits for the merge; a failing statement's error is the one
            # raised (a conflict: a 409), whatever the merge did.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-fold-merge") as pool:
                merging = pool.submit(_merged, found)
                meanwhile()
                merged = merging.result()
        if found:
            _write_merged(cursor, merged)
            cursor.execute(_UPDATE)
            if cursor.rowcount != len(found):  # cannot happen: every delta left has its locked row
                raise RuntimeError(f"rollup fold: {len(found)} rows merged, {cursor.rowcount} written")
            cursor.execute("DROP TABLE rollup_fold_merged")
        cursor.execute("DROP TABLE rollup_fold_delta")
    return changed


def _merged(found: list[tuple[int, str, str]]) -> str:
    """The COPY text of rollup_fold_merged: each stored histogram with its delta added.
    The deltas (a few buckets each) are decoded with one json.loads; the stored lists
    stay text (`add_to_stored`). Pure Python, no database: what runs in the thread."""
    if not found:
        return ""
    deltas = json.loads("[" + ",".join(delta for _, _, delta in found) + "]")
    return "".join(
        f"{row_id}\t{add_to_stored(stored, delta)}\n" for (row_id, stored, _), delta in zip(found, deltas, strict=True)
    )


def _write_merged(cursor, merged: str) -> None:
    """The merged histograms (`_merged`) COPYed into rollup_fold_merged."""
    cursor.execute(_TEMP_SET)
    with cursor.copy("COPY rollup_fold_merged (id, histogram) FROM STDIN") as copy:
        copy.write(merged)


def add_to_stored(stored: str, delta: list[int]) -> str:
    """A stored dense histogram as JSON text (`[first index, count, …]`, as PostgreSQL
    writes jsonb) with a dense delta added, as JSON text. Only the counts the delta
    changes are parsed and written again; the others are copied as they are (a stored
    list has ~150 counts, a backfill's delta to it a few): decoding and encoding whole
    lists cost more than the rest of the fold's Python together."""
    if len(delta) < 2:
        return stored
    parts = stored[1:-1].split(",")
    if len(parts) < 2:
        return json.dumps(delta)
    first, counts = int(parts[0]), parts[1:]
    low, end = delta[0], delta[0] + len(delta) - 1  # end: one past the delta's last bucket
    if low < first:
        counts[:0] = ["0"] * (first - low)
    else:
        low = first
    if end > low + len(counts):
        counts.extend(["0"] * (end - low - len(counts)))
    offset = delta[0] - low - 1
    for position in range(1, len(delta)):
        if tasks := delta[position]:
            counts[offset + position] = str(int(counts[offset + position]) + tasks)
    return f"[{low},{','.join(counts)}]"
