"""The rollup engine of tasks/metrics.py: hour, six-hour and day rows per type ×
model (tasks/rollups.py keeps them) for the whole hours of the window, raw rows
for its partial edge hours and for the tasks the drain has not added yet. Counts,
sums, maxima, means and failure rates are exact; percentiles come from the
duration histograms, within 0.99% of the exact ones. On PostgreSQL the API and the
operator page read a window and its previous one in one statement (`window_pair`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum, Value

from tasks import histograms, rollups
from tasks.metrics_query import (
    FINISHED,
    AnyModel,
    Bucket,
    Key,
    Query,
    Stats,
    Window,
    bucket_start,
    ceil_bucket,
    finished_tasks,
)
from tasks.models import ExecutionTask, TaskMetricsRollup, TaskSource, TaskStatus


@dataclass(frozen=True)
class Cover:
    """How the rollups cover a window: `raw`, the partial edge hours to read from the raw
    rows (each within one hour); `rows`, a filter for the rollup rows of the whole hours
    [h0, h1) between (day rows for whole days, six-hour rows for whole blocks of the
    rest, hour rows for the rest; only hour rows when the answer is per hour), None
    when there is no whole hour."""

    raw: list[tuple[datetime, datetime]]
    rows: Q | None = None
    whole: tuple[datetime, datetime] | None = None
    # `rows` as (period, first start, end) ranges, for the one-statement read (`window_pair`).
    blocks: tuple[tuple[str, datetime, datetime], ...] = ()


def rollup_cover(window: Window, bucket: Bucket | None, *, rows: bool = True) -> Cover:
    """The cover of `window`; without `rows`, no `rows` filter (the one-statement read
    uses `blocks`, and building the Q objects costs more than the rest)."""
    if bucket_start(window.since, "hour") == bucket_start(window.until, "hour"):
        return Cover([(window.since, window.until)])
    h0, h1 = ceil_bucket(window.since, "hour"), bucket_start(window.until, "hour")
    raw = [(a, b) for a, b in ((window.since, h0), (h1, window.until)) if a < b]
    if h0 == h1:
        return Cover(raw)
    if bucket == "hour":
        blocks = [(TaskMetricsRollup.Period.HOUR, h0, h1)]
    else:
        blocks = _blocks(h0, h1)
    selected = Q() if rows else None
    if rows:
        for period, start, end in blocks:
            selected |= Q(period=period, start__gte=start, start__lt=end)
    return Cover(raw, selected, (h0, h1), tuple(blocks))


SIX_HOURS = timedelta(hours=6)


def _ceil_6h(moment: datetime) -> datetime:
    block = moment.replace(hour=moment.hour - moment.hour % 6)
    return block if block == moment else block + SIX_HOURS


def _blocks(h0: datetime, h1: datetime) -> list[tuple[str, datetime, datetime]]:
    """Whole hours [h0, h1) as the fewest rollup rows: whole days as day rows, then whole
    six-hour blocks, then single hours, each as (period, first start, end)."""
    period = TaskMetricsRollup.Period
    d0, d1 = ceil_bucket(h0, "day"), bucket_start(h1, "day")
    if d0 >= d1:
        return _six_hour_blocks(h0, h1)
    return [*_six_hour_blocks(h0, d0), (period.DAY, d0, d1), *_six_hour_blocks(d1, h1)]


def _six_hour_blocks(h0: datetime, h1: datetime) -> list[tuple[str, datetime, datetime]]:
    period = TaskMetricsRollup.Period
    if h0 >= h1:
        return []
    q0, q1 = _ceil_6h(h0), h1.replace(hour=h1.hour - h1.hour % 6)
    if q0 >= q1:
        return [(period.HOUR, h0, h1)]
    blocks = [(period.HOUR, h0, q0), (period.SIX_HOURS, q0, q1), (period.HOUR, q1, h1)]
    return [(p, a, b) for p, a, b in blocks if a < b]


def _selected_rollups(query: Query, rows: Q):
    """The rollup rows of `rows` that the query's task type and model select."""
    selected = TaskMetricsRollup.objects.filter(rows).order_by()
    if query.task_type is not None:
        selected = selected.filter(task_type=query.task_type)
    if query.ai_model is None:
        selected = selected.filter(has_model=False)
    elif not isinstance(query.ai_model, AnyModel):
        selected = selected.filter(has_model=True, model=query.ai_model)
    return selected


class _Groups(dict):
    """Totals per group key of a query, for the rollup engine."""

    def __init__(self, query: Query) -> None:
        super().__init__()
        self.query = query

    def at(self, moment: datetime | None, task_type: str, ai_model: str | None) -> histograms.Totals:
        start = bucket_start(moment, self.query.bucket) if self.query.bucket else None
        return self.in_bucket(start, task_type, ai_model)

    def in_bucket(self, start: datetime | None, task_type: str, ai_model: str | None) -> histograms.Totals:
        """`at` for a moment already turned into its bucket's start (None without buckets)."""
        query = self.query
        key = (start, task_type if query.by_type else None, ai_model if query.by_model else None)
        found = self.get(key)
        if found is None:
            found = self[key] = histograms.Totals()
        return found

    def add_pending(self, cover: Cover) -> None:
        """The finished tasks of the whole hours that the drain has not added to their
        rollup rows yet (few: the worker's lag), one by one from the raw rows."""
        if cover.whole is not None:
            pending = finished_tasks(self.query, *cover.whole).filter(rollups.pending())
            for finished_at, task_type, ai_model, status, duration, source in pending.values_list(
                "finished_at", "task_type", "ai_model", "status", "duration_ms", "source"
            ):
                self.at(finished_at, task_type, ai_model).add_task(status, duration, source)

    def stats(self, *, percentiles: bool) -> dict[Key, Stats]:
        return totals_stats(self, percentiles=percentiles)


def totals_stats(totals: dict[Key, histograms.Totals], *, percentiles: bool) -> dict[Key, Stats]:
    """Stats of each group that counts a task; p50 and p95 (one pass) only with `percentiles`."""
    result = {}
    for key, t in totals.items():
        if t.count:
            p50, p95 = t.median_and_p95() if percentiles else (None, None)
            result[key] = Stats(t.count, t.failed, t.timed, t.sum_ms, t.max_ms, p50, p95)
    return result


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Rollup rows and pending tasks read in one snapshot, so that a drain committing
    between the two reads neither counts a task twice nor loses it. On PostgreSQL a
    REPEATABLE READ transaction; SQLite's transactions read one snapshot anyway. Inside
    a caller's transaction, that transaction's isolation applies."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _edges(query: Query, cover: Cover, *fields: str, **grouped) -> list[tuple]:
    """The partial edge hours' rows, labelled by edge (0 or 1) rather than their times
    read: one range per branch of a UNION ALL keeps each an index-only scan."""
    parts = []
    for edge, (since, until) in enumerate(cover.raw):
        tasks = finished_tasks(query, since, until)
        if grouped:
            tasks = tasks.values("task_type", "ai_model").annotate(edge=Value(edge), **grouped)
        else:
            tasks = tasks.annotate(edge=Value(edge))
        parts.append(tasks.values_list("edge", *fields))
    if not parts:
        return []
    return list(parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0])


def aggregate_rollups(query: Query) -> dict[Key, Stats]:
    """The rollup engine with percentiles: rollup rows for whole hours (and days), their
    histograms merged here; raw rows for the partial edge hours and for the tasks still
    pending for the drain. Three queries at most, whatever the data size."""
    return rollup_totals(query).stats(percentiles=True)


def rollup_totals(query: Query, *, backfilled: bool = False) -> _Groups:
    """What `aggregate_rollups` reads, as Totals per group key (histograms kept, so that
    groups can be merged before their percentiles are taken). With `backfilled`, each
    Totals also counts its backfilled tasks: from the rollup rows, and from the pending
    and edge tasks' `source`."""
    cover = rollup_cover(query.window, query.bucket)
    groups = _Groups(query)
    fields = ["task_type", "has_model", "model", "count", "failed", "timed", "sum_ms", "max_ms", "histogram",
              "backfilled"]  # fmt: skip
    with _one_snapshot():
        if cover.rows is not None:
            moment = ["start"] if query.bucket else []
            for task_type, has_model, model, n, f, t, s, m, histogram, b, *at in _selected_rollups(
                query, cover.rows
            ).values_list(*fields, *moment):
                groups.at(at[0] if at else None, task_type, model if has_model else None).add(
                    n, f, t, s, m, histogram, b
                )
        groups.add_pending(cover)
    # The edges' `source` only when asked: it is not in the covering index, so reading it
    # leaves the index-only scan for the table's rows (the edge hours' few thousand).
    for edge, task_type, ai_model, status, duration, *source in _edges(
        query, cover, "task_type", "ai_model", "status", "duration_ms", *(["source"] if backfilled else [])
    ):
        groups.at(cover.raw[edge][0], task_type, ai_model).add_task(status, duration, *source)
    return groups


def sum_rollups(query: Query) -> dict[Key, Stats]:
    """The rollup engine without percentiles: the database adds the rollup rows and the
    edge hours up; the pending tasks are added here."""
    cover = rollup_cover(query.window, query.bucket)
    groups = _Groups(query)
    sums = {"n": Sum("count"), "f": Sum("failed"), "t": Sum("timed"), "s": Sum("sum_ms"), "m": Max("max_ms")}
    with _one_snapshot():
        if cover.rows is not None:
            moment = ["start"] if query.bucket else []
            grouped = _selected_rollups(query, cover.rows).values(*moment, "task_type", "has_model", "model")
            for *at, task_type, has_model, model, n, f, t, s, m in grouped.annotate(**sums).values_list(
                *moment, "task_type", "has_model", "model", *sums
            ):
                groups.at(at[0] if at else None, task_type, model if has_model else None).add(n, f, t, s, m, None)
        groups.add_pending(cover)
    counted = {
        # Counting a covered column (status is never null) keeps the scan index-only.
        "n": Count("status"),
        "f": Count("status", filter=Q(status=TaskStatus.FAILED)),
        "t": Count("duration_ms"),
        "s": Sum("duration_ms"),
        "m": Max("duration_ms"),
    }
    for edge, task_type, ai_model, n, f, t, s, m in _edges(query, cover, "task_type", "ai_model", *counted, **counted):
        groups.at(cover.raw[edge][0], task_type, ai_model).add(n, f, t, s or 0, m, None)
    return groups.stats(percentiles=False)


# --- Both windows in one statement (PostgreSQL) ------------------------------------------

_ROLLUP_TABLE = TaskMetricsRollup._meta.db_table
_TASK_TABLE = ExecutionTask._meta.db_table
# _EDGE: the current window's last, partial hour read from its rollup row (see `_end_edge`).
_CURRENT, _PREVIOUS, _TOTAL, _EDGE = 0, 1, 2, 3
# Never a parallel plan: its branches are small index scans, and starting parallel workers
# costs 10-20 ms, yet the planner chose a Parallel Append when the branches' estimates
# added up past the parallel setup cost (measured on a week of a million tasks: 2 ms
# serial, 21 ms parallel). A query calling a PARALLEL UNSAFE function is never planned
# in parallel (PostgreSQL's docs, "Parallel Safety"); current_schema() is one, and is
# never NULL where the statement's unqualified tables resolve at all. A test EXPLAINs
# the statement with parallel plans made free.
_SERIAL = "WHERE current_schema() IS NOT NULL"
_FINISHED_SQL = "(" + ", ".join(f"'{status}'" for status in FINISHED) + ")"  # constants, as literals
FAILED, BACKFILL = TaskStatus.FAILED.value, TaskSource.BACKFILL.value


def _filters(query: Query, *, rollup: bool) -> tuple[str, list]:
    """The query's task type and model filters as SQL on the rollup rows or the raw rows."""
    sql, params = "", []
    if query.task_type is not None:
        sql += " AND task_type = %s"
        params.append(query.task_type)
    if query.ai_model is None:
        sql += " AND NOT has_model" if rollup else " AND ai_model IS NULL"
    elif not isinstance(query.ai_model, AnyModel):
        sql += " AND has_model AND model = %s" if rollup else " AND ai_model = %s"
        params.append(query.ai_model)
    return sql, params


def _blocks_sql(cover: Cover) -> tuple[str, list]:
    params: list = []
    for block in cover.blocks:
        params.extend(block)
    return " OR ".join(["(period = %s AND start >= %s AND start < %s)"] * len(cover.blocks)), params


def _raw_branch(
    part: int, since: datetime, until: datetime, query: Query, *, pending: bool, backfilled: bool
) -> tuple[str, list]:
    """One range of raw rows added up per type × model (an index-only scan of
    tasks_finished_at_cover, or of tasks_rollup_pending for the pending tasks); the current
    window's durations come along as an array, for its histograms. An edge range lies
    within one hour, so within one bucket: its start stands for its tasks' time; pending
    tasks are grouped per bucket. `backfilled` is counted here for the pending tasks only
    (few; `source` is not in the edges' covering index: `_backfilled_branch`)."""
    filters, params = _filters(query, rollup=False)
    durations = (
        "array_agg(duration_ms) FILTER (WHERE duration_ms IS NOT NULL)" if part == _CURRENT else "NULL::bigint[]"
    )
    moment, group, moment_params = "%s::timestamptz", "", [since]
    if pending and query.bucket:
        moment, group, moment_params = "min(finished_at)", f", date_trunc('{query.bucket}', finished_at, 'UTC')", []
    counted = f"count(*) FILTER (WHERE source = '{BACKFILL}')" if pending and backfilled else "0"
    return (
        f"SELECT {part}, {moment}, task_type::text, ai_model::text, count(*), "
        f"count(*) FILTER (WHERE status = '{FAILED}'), count(duration_ms), coalesce(sum(duration_ms), 0)::bigint, "
        f"max(duration_ms), NULL::bigint[], {durations}, {counted} FROM {_TASK_TABLE} "
        f"WHERE finished_at >= %s AND finished_at < %s AND status IN {_FINISHED_SQL}"
        f"{' AND rollup_pending' if pending else ''}{filters} GROUP BY task_type, ai_model{group}",
        [*moment_params, since, until, *params],
    )


def _backfilled_branch(since: datetime, until: datetime, query: Query) -> tuple[str, list]:
    """The backfilled tasks of an edge range per type × model, from the partial index
    tasks_backfilled_finished alone (its condition written as literals, so that a prepared
    statement's generic plan can use it)."""
    filters, params = _filters(query, rollup=False)
    return (
        f"SELECT {_CURRENT}, %s::timestamptz, task_type::text, ai_model::text, 0, 0, 0, 0, NULL::bigint, "
        f"NULL::bigint[], NULL::bigint[], "
        f"count(*) FROM {_TASK_TABLE} WHERE finished_at >= %s AND finished_at < %s AND source = '{BACKFILL}' "
        f"AND status IN {_FINISHED_SQL}{filters} GROUP BY task_type, ai_model",
        [since, since, until, *params],
    )


def _guarded(branch: tuple[str, list], guard: tuple[str, list]) -> tuple[str, list]:
    """`branch` with a condition of its own, evaluated once (a one-time filter)."""
    return f"SELECT * FROM ({branch[0]}) AS guarded WHERE {guard[0]}", [*branch[1], *guard[1]]


def _end_edge(query: Query, since: datetime, until: datetime, *, backfilled: bool) -> list[tuple[str, list]]:
    """The current window's last, partial hour [since, until), since an hour's start, for
    a window ending now. Its rollup row (kept current by the drain, the pending tasks read
    raw beside it) holds exactly the hour's tasks finished before `until` when no task of
    that hour finished at or after `until`, which is the case for a window ending now: then
    the edge costs one rollup row and the few pending tasks, however many tasks the hour
    already holds (read raw, it grew all hour long: the soak's metrics read slowed every
    minute). Otherwise (a task finished later in that hour) the raw rows answer, as
    before. Both ways are branches of the one statement, so one snapshot decides."""
    later = (
        f"EXISTS (SELECT 1 FROM {_TASK_TABLE} WHERE finished_at >= %s AND finished_at < %s "
        f"AND status IN {_FINISHED_SQL})",
        [until, since + timedelta(hours=1)],
    )
    none_later = (f"NOT {later[0]}", later[1])
    rollup_filters, rollup_params = _filters(query, rollup=True)
    moment = "start" if query.bucket else "NULL::timestamptz"
    row = (
        f"SELECT {_EDGE}, {moment}, task_type::text, CASE WHEN has_model THEN model END, count, failed, timed, "
        f"sum_ms, max_ms, histogram, NULL::bigint[], {'backfilled' if backfilled else '0'} FROM {_ROLLUP_TABLE} "
        f"WHERE period = %s AND start = %s{rollup_filters}",
        [TaskMetricsRollup.Period.HOUR, since, *rollup_params],
    )
    branches = [
        _guarded(row, none_later),
        _guarded(_raw_branch(_CURRENT, since, until, query, pending=True, backfilled=backfilled), none_later),
        _guarded(_raw_branch(_CURRENT, since, until, query, pending=False, backfilled=backfilled), later),
    ]
    if backfilled:
        branches.append(_guarded(_backfilled_branch(since, until, query), later))
    return branches


def window_pair(
    query: Query, *, auto_max: int | None = None, backfilled: bool = False
) -> tuple[_Groups, _Groups] | None:
    """PostgreSQL: what the rollup engine reads for `query` (Totals per group key, with
    histograms) and for its previous window (per type × model as `query` groups them, no
    bucket, no histograms), from ONE statement: the rollup rows of both windows' whole
    hours, their pending tasks and their partial edge hours, a UNION ALL. One statement
    reads one snapshot, so a drain committing meanwhile neither counts a task twice nor
    loses it, without a REPEATABLE READ transaction. With `backfilled`, the current
    window's Totals count their backfilled tasks (as `rollup_totals(backfilled=True)`).

    With `auto_max` (the "auto" engine): None when the window's rollup rows count at most
    that many tasks (the caller answers exactly; the count `resolve_engine` takes, read in
    the same statement, plus, for an unfiltered read, the last partial hour's row: a new
    installation's first hour would otherwise be answered exactly however full it got)."""
    previous_query = replace(query, window=query.window.previous(), bucket=None)
    branches: list[tuple[str, list]] = []
    rollup_filters, rollup_params = _filters(query, rollup=True)
    # The current window's rollup rows are the ones the engine choice counts when nothing
    # filters them and they are those of `rollup_cover(window, None)` (not hour rows only):
    # their counts are added up here; otherwise the statement counts them in a branch.
    counted_here = query.task_type is None and isinstance(query.ai_model, AnyModel) and query.bucket != "hour"
    if auto_max is not None:
        everything = rollup_cover(query.window, None, rows=False)
        if not everything.blocks:
            return None  # no whole hour in the window: no rollup row to count, a small window
    if auto_max is not None and not counted_here:
        where, params = _blocks_sql(everything)
        branches.append(
            (
                f"SELECT {_TOTAL}, NULL::timestamptz, NULL, NULL, coalesce(sum(count), 0)::bigint, 0, 0, 0, NULL, "
                f"NULL, NULL, 0 FROM {_ROLLUP_TABLE} WHERE ({where})",
                params,
            )
        )
    for part, q in ((_CURRENT, query), (_PREVIOUS, previous_query)):
        cover = rollup_cover(q.window, q.bucket, rows=False)
        if cover.blocks:
            where, params = _blocks_sql(cover)
            if part == _CURRENT:
                moment = "start" if q.bucket else "NULL::timestamptz"
                columns = f"{moment}, task_type::text, CASE WHEN has_model THEN model END, count, failed, timed, "
                columns += f"sum_ms, max_ms, histogram, NULL::bigint[], {'backfilled' if backfilled else '0'}"
                grouping = ""
            else:
                columns = "NULL::timestamptz, task_type::text, CASE WHEN has_model THEN model END, "
                columns += "sum(count)::bigint, sum(failed)::bigint, sum(timed)::bigint, sum(sum_ms)::bigint, "
                columns += "max(max_ms), NULL::bigint[], NULL::bigint[], 0"
                grouping = " GROUP BY task_type, has_model, model"
            branches.append(
                (
                    f"SELECT {part}, {columns} FROM {_ROLLUP_TABLE} WHERE ({where}){rollup_filters}{grouping}",
                    [*params, *rollup_params],
                )
            )
            branches.append(_raw_branch(part, *cover.whole, q, pending=True, backfilled=backfilled))
        for since, until in cover.raw:
            if part == _CURRENT and since == bucket_start(until, "hour") and until == q.window.until:
                branches.extend(_end_edge(q, since, until, backfilled=backfilled))
                continue
            branches.append(_raw_branch(part, since, until, q, pending=False, backfilled=backfilled))
            if backfilled and part == _CURRENT:
                branches.append(_backfilled_branch(since, until, q))
    sql = (
        f"SELECT part, {_MICROSECONDS}, {_COLUMNS} FROM ({' UNION ALL '.join(f'({branch})' for branch, _ in branches)})"
        f" AS parts (part, moment, {_COLUMNS}) {_SERIAL}"
    )
    params = [p for _, branch_params in branches for p in branch_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    current, previous = _Groups(query), _Groups(previous_query)
    rolled_up = 0  # tasks in the current window's rollup rows (their histogram is never NULL)
    starts: dict[int, datetime] = {}  # per moment read, its bucket's start (the current window's)
    stored: list[tuple[histograms.Totals, str | list[int]]] = []
    for part, moment, task_type, ai_model, n, f, t, s, m, histogram, durations, b in rows:
        if part == _TOTAL:
            rolled_up = n
            continue
        if part != _PREVIOUS:  # the current window's, or its last hour's rollup row (_EDGE)
            if histogram is not None and counted_here:  # the last partial hour's row counts too
                rolled_up += n
            start = None
            if query.bucket:
                start = starts.get(moment)
                if start is None:
                    start = starts[moment] = bucket_start(_EPOCH + timedelta(microseconds=moment), query.bucket)
            totals = current.in_bucket(start, task_type, ai_model)
        else:
            totals = previous.in_bucket(None, task_type, ai_model)  # no bucket: the previous window's sums
        totals.add(n, f, t, s, m, None, b)
        if histogram is not None:
            stored.append((totals, histogram))
        if durations:
            totals.add_durations(durations)
    if auto_max is not None and rolled_up <= auto_max:
        return None
    for (totals, _), histogram in zip(stored, _decoded([histogram for _, histogram in stored]), strict=True):
        totals.add_histogram(histogram)
    return current, previous


# The moment as microseconds since the epoch (exact: extract() is numeric), read as an
# integer rather than as a timestamptz parsed per row; the other columns as the branches give them.
_MICROSECONDS = "(extract(epoch FROM moment) * 1000000)::bigint"
_COLUMNS = "task_type, ai_model, n, failed, timed, sum_ms, max_ms, histogram, durations, backfilled"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _decoded(stored: list) -> list:
    """The stored histograms of one read, decoded: on PostgreSQL they are bigint[] and come
    decoded as lists (psycopg); elsewhere (SQLite) a raw cursor reads the JSON text, all of
    it decoded in one json.loads."""
    if all(isinstance(histogram, str) for histogram in stored):
        return json.loads(f"[{','.join(stored)}]")
    return [json.loads(histogram) if isinstance(histogram, str) else histogram for histogram in stored]
