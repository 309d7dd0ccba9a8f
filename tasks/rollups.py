"""Rollups of finished tasks for the metrics: per UTC hour, six hours and day × task
type × AI model, the exact count, failures, timed count, sum and max of
durations, and a histogram of durations on log-spaced buckets.

Why and how (docs/metrics.md):

- **Buckets** (tasks/histograms.py). Integer boundaries b₀ = 0, bₖ₊₁ = ⌊bₖ · 51/50⌋ + 1, so a bucket
  holds the integers [bₖ, bₖ₊₁ − 1] with (bₖ₊₁ − 1) / bₖ ≤ γ = 1.02. Its
  representative r = 2·lo·hi / (lo + hi) is within (γ − 1)/(γ + 1) = 0.99% of every
  value in it; below 50 ms each bucket is a single integer (exact). Integer
  arithmetic only, so every database and Python agree on the bucket of a value.
  Negative durations (legacy rows only) mirror the positive buckets.
- **Percentiles** follow percentile_cont over the histogram: rank p·(n − 1),
  linear interpolation between the two neighbouring ranks, each rank's value
  being its bucket's representative. A convex combination of two values each
  within 0.99% is within 0.99% of the exact interpolation: that is the bound.
- **Writes** are off the request path. Finishing a task only marks it
  `rollup_pending` (in the UPDATE that finishes it: no extra statement); a
  worker (`drain_pending`, every DRAIN_INTERVAL_SECONDS from the periodic jobs)
  takes the pending tasks, clears their mark and adds them to their hour,
  six-hour and day rows in one transaction, so a task is always in exactly one
  of the two places. The rollup engine reads the pending tasks of the hours it
  answers from rollups from the raw rows (a partial index of pending tasks), in
  the same snapshot as the rollup rows: the answer is exact whatever the lag.
  Backfills (`fold_tasks`; on PostgreSQL `rollup_fold.fold_select`, the same fold
  computed by the database) still fold in their own transaction. On PostgreSQL one
  `INSERT … ON CONFLICT DO UPDATE` adds counts and merges histograms in SQL, so
  two tasks finishing at once in the same hour both count (row lock, keys in a
  fixed order, no deadlock); elsewhere (SQLite, one writer at a time) the rows
  are read, merged and written in Python.
- **Repair** (`rebuild`) recomputes whole UTC days from the raw rows, a day per
  transaction, under a lock that folds (backfills, the drain) take shared. It
  first clears the pending mark of the day's tasks, then reads the day's tasks
  that are not pending: a task finishing meanwhile is either in the raw rows
  read or still pending for the drain, never both, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from tasks.histograms import Totals, dense
from tasks.models import FINISHED_STATUSES as FINISHED
from tasks.models import ExecutionTask, TaskMetricsRollup

logger = logging.getLogger(__name__)

PERIOD_HOUR = TaskMetricsRollup.Period.HOUR.value
PERIOD_SIX_HOURS = TaskMetricsRollup.Period.SIX_HOURS.value
PERIOD_DAY = TaskMetricsRollup.Period.DAY.value


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# (period, start, task_type, ai_model)
RollupKey = tuple[str, datetime, str, str | None]
# finished_at, task_type, ai_model, status, duration_ms, source
Row = tuple[datetime, str, str | None, str, int | None, str | None]
ROW_FIELDS = ("finished_at", "task_type", "ai_model", "status", "duration_ms", "source")


def accumulate(rows: Iterable[Row]) -> dict[RollupKey, Totals]:
    """Hour and day totals of (finished_at, task_type, ai_model, status, duration_ms, source)
    rows; rows that are not finished (succeeded/failed, with a finished_at) are skipped."""
    result: dict[RollupKey, Totals] = {}
    for finished_at, task_type, ai_model, status, duration, source in rows:
        if finished_at is None or status not in FINISHED:
            continue
        hour = hour_start(finished_at)
        for key in (
            (PERIOD_HOUR, hour, task_type, ai_model),
            (PERIOD_SIX_HOURS, hour.replace(hour=hour.hour - hour.hour % 6), task_type, ai_model),
            (PERIOD_DAY, hour.replace(hour=0), task_type, ai_model),
        ):
            totals = result.get(key)
            if totals is None:
                totals = result[key] = Totals()
            totals.add_task(status, duration, source)
    return result


def task_rows(tasks: Iterable[ExecutionTask]) -> Iterator[Row]:
    for task in tasks:
        yield task.finished_at, task.task_type, task.ai_model, task.status, task.duration_ms, task.source


# --- Writing ----------------------------------------------------------------------------

# Finishing tasks take this advisory lock shared, a rebuild exclusively (PostgreSQL).
REBUILD_LOCK = 0x7461736B  # "task"
UPSERT_CHUNK = 500


def fold_tasks(tasks: Iterable[ExecutionTask]) -> int:
    """Add finished tasks to their hour and day rollups, in the caller's transaction.
    Tasks that are not finished are ignored. Returns how many rollup rows changed."""
    return fold_rows(task_rows(tasks))


def fold_rows(rows: Iterable[Row]) -> int:
    """`fold_tasks` for (finished_at, task_type, ai_model, status, duration_ms, source) rows."""
    deltas = accumulate(rows)
    if not deltas:
        return 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [REBUILD_LOCK])
            _upsert_postgresql(deltas)
        else:
            _upsert_python(deltas)
    return len(deltas)


def _key_order(key: RollupKey) -> tuple:
    period, start, task_type, ai_model = key
    return (period, start, task_type, ai_model is not None, ai_model or "")


# Folding on PostgreSQL, set-based, one write per rollup row. The deltas' keys are
# copied into a temporary table (COPY); one INSERT takes every row they need in the key's
# order, creating the missing ones empty and locking the others without writing them
# (ON CONFLICT DO UPDATE … WHERE false locks the conflicting row and leaves it as it
# is); the rows are read, added up in Python, copied into a second temporary table and
# written back with one UPDATE. (A backfill's fold, the large one, is computed by the
# database instead: tasks/rollup_fold.py.) Passing 10,000 rows as array parameters
# (psycopg dumps them element by element) or as one JSON document (json_to_recordset
# spills to disk) cost more than the statements (docs/benchmarks.md). Every writer, this one and _upsert_few, takes its
# rows (existing or new) in one pass in the key's order, so concurrent writers cannot
# deadlock on them (taking the new ones first and the existing ones after did:
# test_large_and_small_folds_at_the_same_time_into_the_same_rows_all_count); a row stays
# locked from _ENSURE to the commit, so no addition is lost.
_KEY = "period, start, task_type, has_model, model"
# The key's order in bytes (COLLATE "C"), which is Python's order of the same strings: the
# order _upsert_few sorts its rows in (_key_order), so both paths lock rows alike.
_ORDER = 'period COLLATE "C", start, task_type COLLATE "C", has_model, model COLLATE "C"'
_TEMP_KEYS = (
    "CREATE TEMPORARY TABLE rollup_fold_keys (period text, start timestamptz, task_type text, has_model boolean, "
    "model text) ON COMMIT DROP"
)
_TEMP_SET = (
    "CREATE TEMPORARY TABLE rollup_fold_set (id bigint, count bigint, failed bigint, timed bigint, sum_ms bigint, "
    "max_ms bigint, backfilled bigint, histogram bigint[]) ON COMMIT DROP"
)
_ENSURE = f"""
INSERT INTO tasks_metrics_rollup AS r ({_KEY}, count, failed, timed, sum_ms, backfilled, histogram)
SELECT {_KEY}, 0, 0, 0, 0, 0, '{{}}'::bigint[] FROM rollup_fold_keys ORDER BY {_ORDER}
ON CONFLICT ({_KEY}) DO UPDATE SET count = r.count WHERE false
"""
_READ = f"""
SELECT r.id, {_KEY}, r.count, r.failed, r.timed, r.sum_ms, r.max_ms, r.backfilled, r.histogram
  FROM tasks_metrics_rollup AS r JOIN rollup_fold_keys USING ({_KEY})
"""
_SET = """
UPDATE tasks_metrics_rollup AS r
   SET count = d.count, failed = d.failed, timed = d.timed, sum_ms = d.sum_ms, max_ms = d.max_ms,
       backfilled = d.backfilled, histogram = d.histogram
  FROM rollup_fold_set AS d
 WHERE r.id = d.id
"""


# Up to this many rows, one statement that adds the counts and merges the histograms in
# SQL on the locked row (`tasks_histogram_add`, migration 0017; no temporary tables: the
# drain's usual few rows); above it, the temporary-table fold below.
FEW_ROWS = 200
_UPSERT_FEW = """
INSERT INTO tasks_metrics_rollup AS r
       (period, start, task_type, has_model, model, count, failed, timed, sum_ms, max_ms, backfilled, histogram)
SELECT period, start, task_type, has_model, model, count, failed, timed, sum_ms, max_ms, backfilled,
       histogram::bigint[]
  FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::boolean[], %s::text[], %s::bigint[], %s::bigint[],
              %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[]) WITH ORDINALITY
       AS d (period, start, task_type, has_model, model, count, failed, timed, sum_ms, max_ms, backfilled, histogram, n)
 ORDER BY n
ON CONFLICT (period, start, task_type, has_model, model) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    failed = r.failed + EXCLUDED.failed,
    timed = r.timed + EXCLUDED.timed,
    sum_ms = r.sum_ms + EXCLUDED.sum_ms,
    max_ms = GREATEST(r.max_ms, EXCLUDED.max_ms),
    backfilled = r.backfilled + EXCLUDED.backfilled,
    histogram = tasks_histogram_add(r.histogram, EXCLUDED.histogram)
"""


def _array_literal(counts: list[int]) -> str:
    """A dense histogram as a PostgreSQL array literal (`{3,1,0,2}`), one text element of
    an array parameter: arrays of arrays must all have one length, histograms do not."""
    return "{" + ",".join(map(str, counts)) + "}"


def _upsert_few(deltas: dict[RollupKey, Totals]) -> None:
    keys = sorted(deltas, key=_key_order)
    columns: list[list] = [[] for _ in range(12)]
    for key in keys:
        period, start, task_type, ai_model = key
        t = deltas[key]
        values = (period, start, task_type, ai_model is not None, ai_model or "", t.count, t.failed, t.timed,
                  t.sum_ms, t.max_ms, t.backfilled, _array_literal(dense(t.histogram)))  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_FEW, columns)


def _upsert_postgresql(deltas: dict[RollupKey, Totals]) -> None:
    """Add the deltas to their rollup rows, in the caller's transaction: the same few
    statements whatever their number."""
    if len(deltas) <= FEW_ROWS:
        _upsert_few(deltas)
        return
    written = []
    with connection.cursor() as cursor:
        cursor.execute(_TEMP_KEYS)
        with cursor.copy(f"COPY rollup_fold_keys ({_KEY}) FROM STDIN") as copy:
            for period, start, task_type, ai_model in deltas:
                copy.write_row((period, start, task_type, ai_model is not None, ai_model or ""))
        cursor.execute(_ENSURE)
        cursor.execute(_READ)
        for row_id, period, start, task_type, has_model, model, *figures, stored in cursor.fetchall():
            delta = deltas[(period, start, task_type, model if has_model else None)]
            count, failed, timed, sum_ms, max_ms, backfilled = figures
            if delta.max_ms is not None and (max_ms is None or delta.max_ms > max_ms):
                max_ms = delta.max_ms
            if delta.histogram:
                stored = merge_dense(stored, delta.histogram)
            written.append((row_id, count + delta.count, failed + delta.failed, timed + delta.timed,
                            sum_ms + delta.sum_ms, max_ms, backfilled + delta.backfilled, stored))  # fmt: skip
        if len(written) != len(deltas):  # cannot happen: every key was created or found above
            raise RuntimeError(f"rollup fold: {len(deltas)} rows wanted, {len(written)} locked")
        cursor.execute(_TEMP_SET)
        with cursor.copy("COPY rollup_fold_set FROM STDIN") as copy:
            for row in written:
                copy.write_row(row)
        cursor.execute(_SET)
        cursor.execute("DROP TABLE rollup_fold_keys, rollup_fold_set")


def merge_dense(stored: list[int], delta: dict[int, int]) -> list[int]:
    """A stored (dense) histogram with {bucket index: tasks} added, dense again."""
    if not stored:
        return dense(delta)
    first, low, high = stored[0], min(delta), max(delta)
    low, high = min(low, first), max(high, first + len(stored) - 2)
    counts = [0] * (high - low + 1)
    counts[first - low : first - low + len(stored) - 1] = stored[1:]
    for index, tasks in delta.items():
        counts[index - low] += tasks
    return [low, *counts]


def _upsert_python(deltas: dict[RollupKey, Totals]) -> None:
    """Read, merge, write: for databases with one writer at a time (SQLite)."""
    by_period_start: dict[tuple[str, datetime], list[RollupKey]] = {}
    for key in deltas:
        by_period_start.setdefault((key[0], key[1]), []).append(key)
    existing: dict[RollupKey, TaskMetricsRollup] = {}
    for period in (PERIOD_HOUR, PERIOD_SIX_HOURS, PERIOD_DAY):
        starts = sorted({start for (p, start) in by_period_start if p == period})
        for begin in range(0, len(starts), UPSERT_CHUNK):
            for row in TaskMetricsRollup.objects.filter(period=period, start__in=starts[begin : begin + UPSERT_CHUNK]):
                existing[(row.period, row.start, row.task_type, row.ai_model)] = row
    changed, created = [], []
    for key in sorted(deltas, key=_key_order):
        delta = deltas[key]
        row = existing.get(key)
        if row is None:
            period, start, task_type, ai_model = key
            created.append(
                TaskMetricsRollup(
                    period=period, start=start, task_type=task_type, has_model=ai_model is not None,
                    model=ai_model or "", count=delta.count, failed=delta.failed, timed=delta.timed,
                    sum_ms=delta.sum_ms, max_ms=delta.max_ms, backfilled=delta.backfilled,
                    histogram=dense(delta.histogram),
                )
            )  # fmt: skip
            continue
        merged = Totals()
        merged.add(row.count, row.failed, row.timed, row.sum_ms, row.max_ms, row.histogram, row.backfilled)
        merged.merge(delta)
        row.count, row.failed, row.timed, row.sum_ms = merged.count, merged.failed, merged.timed, merged.sum_ms
        row.max_ms, row.backfilled, row.histogram = merged.max_ms, merged.backfilled, dense(merged.flush().histogram)
        changed.append(row)
    TaskMetricsRollup.objects.bulk_create(created, batch_size=UPSERT_CHUNK)
    TaskMetricsRollup.objects.bulk_update(
        changed, ["count", "failed", "timed", "sum_ms", "max_ms", "backfilled", "histogram"], batch_size=UPSERT_CHUNK
    )


# --- The pending queue -----------------------------------------------------------------------


def pending():
    """`rollup_pending = true` written as a literal, not a parameter: with server-side
    binding (DB_SERVER_SIDE_BINDING) a prepared statement's generic plan cannot prove the
    partial index tasks_rollup_pending applies to `rollup_pending = $1`, and scanned
    the window's (or the whole table's) rows instead: 50 ms on a week of 300,000 tasks
    for what is usually no row at all."""
    return RawSQL(f'"{ExecutionTask._meta.db_table}"."rollup_pending"', [], output_field=BooleanField())


# How often the periodic jobs drain the pending tasks, and how many one transaction takes.
DRAIN_INTERVAL_SECONDS = 10
DRAIN_BATCH = 5_000


def drain_pending(*, batch: int = DRAIN_BATCH) -> int:
    """Add the finished tasks marked `rollup_pending` to their rollups and clear the
    mark, a batch per transaction, until none is left. Safe to run twice at once
    (PostgreSQL: each takes rows the other has not locked). Returns how many it folded."""
    folded = 0
    while True:
        taken = _drain_batch(batch)
        folded += taken
        if taken < batch:
            return folded


@transaction.atomic
def _drain_batch(batch: int) -> int:
    tasks = ExecutionTask.objects.filter(pending()).order_by("pk")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [REBUILD_LOCK])
        tasks = tasks.select_for_update(skip_locked=True, of=("self",))
    rows = list(tasks.values_list("pk", *ROW_FIELDS)[:batch])
    if not rows:
        return 0
    ExecutionTask.objects.filter(pk__in=[row[0] for row in rows]).update(rollup_pending=False)
    deltas = accumulate(row[1:] for row in rows)
    if deltas:
        if connection.vendor == "postgresql":
            _upsert_postgresql(deltas)
        else:
            _upsert_python(deltas)
    return len(rows)


def pending_lag() -> tuple[int, datetime | None]:
    """How many finished tasks wait for the drain, and when the oldest of them finished."""
    from django.db.models import Count, Min

    found = ExecutionTask.objects.filter(pending()).aggregate(n=Count("pk"), oldest=Min("finished_at"))
    return found["n"], found["oldest"]


# --- Repair -------------------------------------------------------------------------------


def raw_rows(since: datetime, until: datetime, *, folded_only: bool = False) -> Iterator[Row]:
    """Finished tasks with since <= finished_at < until, straight from execution_tasks
    (`folded_only`: without those still pending for the drain)."""
    qs = ExecutionTask.objects.filter(finished_at__gte=since, finished_at__lt=until, status__in=FINISHED).order_by()
    if folded_only:
        qs = qs.filter(rollup_pending=False)
    return qs.values_list(*ROW_FIELDS).iterator(chunk_size=10_000)


def days_between(since: datetime, until: datetime) -> list[datetime]:
    """The UTC days overlapping [since, until)."""
    day, days = day_start(since), []
    while day < until:
        days.append(day)
        day += timedelta(days=1)
    return days


def rebuild(since: datetime, until: datetime, *, progress: Callable[[datetime, int], None] | None = None) -> int:
    """Recompute the rollups of every UTC day overlapping [since, until) from the raw
    rows, one day per transaction. Idempotent. Returns how many tasks were counted."""
    counted = 0
    for day in days_between(since, until):
        counted += rebuild_day(day)
        if progress:
            progress(day, counted)
    return counted


@transaction.atomic
def rebuild_day(day: datetime) -> int:
    """Replace one UTC day's hour and day rows with totals recomputed from the raw rows."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Waits for finishing transactions to commit; holds new ones off until this day is done.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [REBUILD_LOCK])
    end = day + timedelta(days=1)
    TaskMetricsRollup.objects.filter(start__gte=day, start__lt=end).delete()
    # The day's pending tasks are counted here rather than by the drain; one that finishes
    # after this statement stays pending, and out of the rows read next (module docstring).
    ExecutionTask.objects.filter(pending(), finished_at__gte=day, finished_at__lt=end).update(rollup_pending=False)
    deltas = accumulate(raw_rows(day, end, folded_only=True))
    if deltas:
        # Nothing else writes these rows meanwhile (lock, or SQLite's single writer): plain inserts.
        TaskMetricsRollup.objects.bulk_create(
            [
                TaskMetricsRollup(
                    period=period, start=start, task_type=task_type, has_model=ai_model is not None,
                    model=ai_model or "", count=t.count, failed=t.failed, timed=t.timed, sum_ms=t.sum_ms,
                    max_ms=t.max_ms, backfilled=t.backfilled, histogram=dense(t.histogram),
                )
                for (period, start, task_type, ai_model), t in sorted(deltas.items(), key=lambda i: _key_order(i[0]))
            ],
            batch_size=UPSERT_CHUNK,
        )  # fmt: skip
    return sum(t.count for (period, *_), t in deltas.items() if period == PERIOD_DAY)


def recompute(since: datetime, until: datetime) -> dict[RollupKey, Totals]:
    """What the rollups of the days overlapping [since, until) should hold, from the raw rows."""
    days = days_between(since, until)
    return accumulate(raw_rows(days[0], days[-1] + timedelta(days=1))) if days else {}


def stored(since: datetime, until: datetime) -> dict[RollupKey, Totals]:
    """What the rollups of the days overlapping [since, until) hold (empty rows left out)."""
    days = days_between(since, until)
    if not days:
        return {}
    result = {}
    for r in TaskMetricsRollup.objects.filter(start__gte=days[0], start__lt=days[-1] + timedelta(days=1)):
        if r.count:
            result[(r.period, r.start, r.task_type, r.ai_model)] = totals = Totals()
            totals.add(r.count, r.failed, r.timed, r.sum_ms, r.max_ms, r.histogram, r.backfilled)
            totals.flush()
    return result
