"""Task performance metrics: durations and failures per task type and AI model.

The definitions are in docs/metrics.md. In short: a task counts in a window
`since <= finished_at < until` when it finished (`succeeded` or `failed`);
durations are the recorded `duration_ms`; percentiles follow PostgreSQL's
`percentile_cont` (linear interpolation between the two nearest ranks).

Two exact engines: on PostgreSQL the figures come from one grouped SQL query
using `percentile_cont`; on other databases (SQLite) the window's rows are
read and the same formulas run in Python. A test runs both engines on the
same PostgreSQL data and compares (tasks/tests/test_metrics.py). Count, sum
and max are integers in both, so means and failure rates are computed here
from them identically; only percentiles are floating point and are rounded
to 0.1 ms.

And the rollup engine (tasks/rollups.py): hour and day rows per type × model
for the whole hours of the window, raw rows for its partial edge hours.
Counts, sums, maxima, means and failure rates are exact; percentiles come
from duration histograms, within 0.99% of the exact ones. By default
(`engine=None`, "auto") a window holding at most METRICS_EXACT_MAX_TASKS
finished tasks is answered exactly from the raw rows, a larger one from the
rollups; `engine="exact"` always answers exactly.

What the operator page and the dashboard make of these figures is in
tasks/metrics_display.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q, Sum, Value

from tasks import rollups
from tasks.models import FINISHED_STATUSES as FINISHED
from tasks.models import ExecutionTask, TaskMetricsRollup, TaskStatus, TaskType

Bucket = Literal["hour", "day"]
GroupBy = Literal["task_type", "ai_model"]
Engine = Literal["sql", "python", "exact", "rollup", "auto"]

DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=400)
MAX_POINTS = 2000
BUCKET_SIZES: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


class AnyModel:
    """Sentinel: do not filter by AI model (None means "tasks with no model")."""

    def __repr__(self) -> str:
        return "ANY_MODEL"


ANY_MODEL = AnyModel()


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    def previous(self) -> Window:
        """The window of the same length that ends where this one starts."""
        return Window(self.since - self.length, self.since)

    def as_dict(self) -> dict:
        return {"since": self.since, "until": self.until}


def default_window(now: datetime, length: timedelta = DEFAULT_WINDOW) -> Window:
    return Window(now - length, now)


@dataclass
class Stats:
    """Integer totals of one group, and its two percentiles."""

    count: int = 0
    failed: int = 0
    timed: int = 0  # finished tasks with a recorded duration
    sum_ms: int = 0
    max_ms: int | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def mean_ms(self) -> float | None:
        return round(self.sum_ms / self.timed, 1) if self.timed else None

    @property
    def failure_rate(self) -> float | None:
        return round(self.failed / self.count, 4) if self.count else None

    def figures(self) -> dict:
        return {
            "count": self.count,
            "mean_ms": self.mean_ms,
            "p50_ms": _round_ms(self.p50_ms),
            "p95_ms": _round_ms(self.p95_ms),
            "max_ms": self.max_ms,
            "failure_rate": self.failure_rate,
        }


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def relative_change(current: float | None, previous: float | None) -> float | None:
    """(current − previous) / previous, rounded to 4 places; None without a previous mean."""
    if current is None or previous is None or previous == 0:
        return None
    return round((current - previous) / previous, 4)


def percentile_cont(ordered: list[int], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont over already sorted values, step for step
    (utils/adt/orderedsetaggs.c: floor and ceil of fraction·(n−1), then lerp)."""
    n = len(ordered)
    if n == 0:
        return None
    position = fraction * (n - 1)
    first = math.floor(position)
    second = math.ceil(position)
    low = float(ordered[first])
    if first == second:
        return low
    high = float(ordered[second])
    return low + (high - low) * (position - first)


# Group keys: (bucket start or None, task_type or None, ai_model or None).
Key = tuple[datetime | None, str | None, str | None]


@dataclass
class Query:
    window: Window
    by_model: bool = False
    by_type: bool = True
    bucket: Bucket | None = None
    task_type: str | None = None
    ai_model: str | None | AnyModel = ANY_MODEL


def exact_engine() -> Engine:
    return "sql" if connection.vendor == "postgresql" else "python"


def exact_max_tasks() -> int:
    return settings.METRICS_EXACT_MAX_TASKS


def resolve_engine(engine: Engine | None, window: Window) -> Engine:
    """The engine that answers: "auto" (the default) is exact for a window holding at
    most METRICS_EXACT_MAX_TASKS finished tasks (by the rollups' count, one small
    query), rollups above that; "exact" is the database's exact engine."""
    if engine in ("sql", "python", "rollup"):
        return engine
    if engine == "exact":
        return exact_engine()
    cover = _rollup_cover(window, None)
    tasks = 0
    if cover.rows is not None:
        tasks = TaskMetricsRollup.objects.filter(cover.rows).aggregate(n=Sum("count"))["n"] or 0
    return exact_engine() if tasks <= exact_max_tasks() else "rollup"


def aggregate(query: Query, *, engine: Engine | None = None) -> dict[Key, Stats]:
    """Figures per group (and per bucket when `query.bucket` is set) for the window."""
    engine = resolve_engine(engine, query.window)
    if engine == "rollup":
        return _aggregate_rollups(query)
    if engine == "sql":
        return _aggregate_sql(query)
    return _aggregate_python(query)


def _filters(query: Query) -> tuple[list[str], list]:
    where = ["finished_at >= %s", "finished_at < %s", "status IN (%s, %s)"]
    params: list = [query.window.since, query.window.until, *FINISHED]
    if query.task_type is not None:
        where.append("task_type = %s")
        params.append(query.task_type)
    if query.ai_model is None:
        where.append("ai_model IS NULL")
    elif not isinstance(query.ai_model, AnyModel):
        where.append("ai_model = %s")
        params.append(query.ai_model)
    return where, params


def _aggregate_sql(query: Query) -> dict[Key, Stats]:
    """PostgreSQL: one grouped query over the finished_at index range."""
    where, params = _filters(query)
    bucket = f"date_trunc('{query.bucket}', finished_at AT TIME ZONE 'UTC')" if query.bucket else "NULL::timestamp"
    model = "ai_model" if query.by_model else "NULL::text"
    task_type = "task_type" if query.by_type else "NULL::text"
    sql = f"""
        SELECT {bucket} AS bucket, {task_type} AS task_type, {model} AS model,
               count(*), count(*) FILTER (WHERE status = 'failed'), count(duration_ms),
               coalesce(sum(duration_ms), 0)::bigint, max(duration_ms),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
          FROM execution_tasks
         WHERE {" AND ".join(where)}
         GROUP BY 1, 2, 3
    """  # noqa: S608 - only fixed fragments are interpolated; values are parameters
    result: dict[Key, Stats] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for bucket_start, task_type, ai_model, count, failed, timed, sum_ms, max_ms, p50, p95 in cursor.fetchall():
            if bucket_start is not None:
                bucket_start = bucket_start.replace(tzinfo=UTC)
            result[(bucket_start, task_type, ai_model)] = Stats(
                count=count,
                failed=failed,
                timed=timed,
                sum_ms=int(sum_ms),
                max_ms=max_ms,
                p50_ms=p50,
                p95_ms=p95,
            )
    return result


def bucket_start(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _aggregate_python(query: Query) -> dict[Key, Stats]:
    """Any database: read the window's rows (one query) and aggregate here."""
    qs = _finished_tasks(query, query.window.since, query.window.until)
    rows = qs.values_list("finished_at", "task_type", "ai_model", "status", "duration_ms").order_by()
    return aggregate_rows(
        rows.iterator(chunk_size=5000), by_model=query.by_model, by_type=query.by_type, bucket=query.bucket
    )


def aggregate_rows(
    rows: Iterable[tuple[datetime, str, str | None, str, int | None]],
    *,
    by_model: bool,
    bucket: Bucket | None,
    by_type: bool = True,
) -> dict[Key, Stats]:
    """The aggregate over (finished_at, task_type, ai_model, status, duration_ms) rows
    already filtered to the window."""
    durations: dict[Key, list[int]] = defaultdict(list)
    result: dict[Key, Stats] = {}
    for finished_at, task_type, ai_model, status, duration in rows:
        key = (
            bucket_start(finished_at, bucket) if bucket else None,
            task_type if by_type else None,
            ai_model if by_model else None,
        )
        stats = result.get(key)
        if stats is None:
            stats = result[key] = Stats()
        stats.count += 1
        if status == TaskStatus.FAILED:
            stats.failed += 1
        if duration is not None:
            stats.timed += 1
            stats.sum_ms += duration
            stats.max_ms = duration if stats.max_ms is None else max(stats.max_ms, duration)
            durations[key].append(duration)
    for key, values in durations.items():
        values.sort()
        result[key].p50_ms = percentile_cont(values, 0.5)
        result[key].p95_ms = percentile_cont(values, 0.95)
    return result


def _ceil(moment: datetime, bucket: Bucket) -> datetime:
    start = bucket_start(moment, bucket)
    return start if start == moment else start + BUCKET_SIZES[bucket]


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


def _rollup_cover(window: Window, bucket: Bucket | None) -> Cover:
    if bucket_start(window.since, "hour") == bucket_start(window.until, "hour"):
        return Cover([(window.since, window.until)])
    h0, h1 = _ceil(window.since, "hour"), bucket_start(window.until, "hour")
    raw = [(a, b) for a, b in ((window.since, h0), (h1, window.until)) if a < b]
    if h0 == h1:
        return Cover(raw)
    if bucket == "hour":
        return Cover(raw, Q(period=TaskMetricsRollup.Period.HOUR, start__gte=h0, start__lt=h1), (h0, h1))
    rows = Q()
    for period, start, end in _blocks(h0, h1):
        rows |= Q(period=period, start__gte=start, start__lt=end)
    return Cover(raw, rows, (h0, h1))


SIX_HOURS = timedelta(hours=6)


def _ceil_6h(moment: datetime) -> datetime:
    block = moment.replace(hour=moment.hour - moment.hour % 6)
    return block if block == moment else block + SIX_HOURS


def _blocks(h0: datetime, h1: datetime) -> list[tuple[str, datetime, datetime]]:
    """Whole hours [h0, h1) as the fewest rollup rows: whole days as day rows, then whole
    six-hour blocks, then single hours, each as (period, first start, end)."""
    period = TaskMetricsRollup.Period
    d0, d1 = _ceil(h0, "day"), bucket_start(h1, "day")
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


def _finished_tasks(query: Query, since: datetime, until: datetime):
    """The finished tasks in [since, until) that the query's task type and model select."""
    tasks = ExecutionTask.objects.filter(finished_at__gte=since, finished_at__lt=until, status__in=FINISHED)
    if query.task_type is not None:
        tasks = tasks.filter(task_type=query.task_type)
    if query.ai_model is None:
        tasks = tasks.filter(ai_model__isnull=True)
    elif not isinstance(query.ai_model, AnyModel):
        tasks = tasks.filter(ai_model=query.ai_model)
    return tasks.order_by()


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

    def at(self, moment: datetime | None, task_type: str, ai_model: str | None) -> rollups.Totals:
        query = self.query
        key = (
            bucket_start(moment, query.bucket) if query.bucket else None,
            task_type if query.by_type else None,
            ai_model if query.by_model else None,
        )
        found = self.get(key)
        if found is None:
            found = self[key] = rollups.Totals()
        return found

    def add_pending(self, cover: Cover) -> None:
        """The finished tasks of the whole hours that the drain has not added to their
        rollup rows yet (few: the worker's lag), one by one from the raw rows."""
        if cover.whole is not None:
            pending = _finished_tasks(self.query, *cover.whole).filter(rollup_pending=True)
            for finished_at, task_type, ai_model, status, duration in pending.values_list(
                "finished_at", "task_type", "ai_model", "status", "duration_ms"
            ):
                self.at(finished_at, task_type, ai_model).add_task(status, duration)

    def stats(self, *, percentiles: bool) -> dict[Key, Stats]:
        return {
            key: Stats(
                count=t.count,
                failed=t.failed,
                timed=t.timed,
                sum_ms=t.sum_ms,
                max_ms=t.max_ms,
                p50_ms=t.percentile(0.5) if percentiles else None,
                p95_ms=t.percentile(0.95) if percentiles else None,
            )
            for key, t in self.items()
            if t.count
        }


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
        tasks = _finished_tasks(query, since, until)
        if grouped:
            tasks = tasks.values("task_type", "ai_model").annotate(edge=Value(edge), **grouped)
        else:
            tasks = tasks.annotate(edge=Value(edge))
        parts.append(tasks.values_list("edge", *fields))
    if not parts:
        return []
    return list(parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0])


def _aggregate_rollups(query: Query) -> dict[Key, Stats]:
    """The rollup engine with percentiles: rollup rows for whole hours (and days), their
    histograms merged here; raw rows for the partial edge hours and for the tasks still
    pending for the drain. Three queries at most, whatever the data size."""
    cover = _rollup_cover(query.window, query.bucket)
    groups = _Groups(query)
    fields = ["task_type", "has_model", "model", "count", "failed", "timed", "sum_ms", "max_ms", "histogram"]
    with _one_snapshot():
        if cover.rows is not None:
            moment = ["start"] if query.bucket else []
            for task_type, has_model, model, n, f, t, s, m, histogram, *at in _selected_rollups(
                query, cover.rows
            ).values_list(*fields, *moment):
                groups.at(at[0] if at else None, task_type, model if has_model else None).add(n, f, t, s, m, histogram)
        groups.add_pending(cover)
    for edge, task_type, ai_model, status, duration in _edges(
        query, cover, "task_type", "ai_model", "status", "duration_ms"
    ):
        groups.at(cover.raw[edge][0], task_type, ai_model).add_task(status, duration)
    return groups.stats(percentiles=True)


def _sum_rollups(query: Query) -> dict[Key, Stats]:
    """The rollup engine without percentiles: the database adds the rollup rows and the
    edge hours up; the pending tasks are added here."""
    cover = _rollup_cover(query.window, query.bucket)
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


def _group_order(key: Key) -> tuple:
    bucket, task_type, ai_model = key
    type_rank = TaskType.values.index(task_type) if task_type in TaskType.values else len(TaskType.values)
    return (bucket or datetime.min.replace(tzinfo=UTC), type_rank, task_type, ai_model is None, ai_model or "")


def _totals(query: Query, engine: Engine | None) -> dict[Key, Stats]:
    """Counts, sums and maxima without percentiles: enough for means, failure rates
    and changes. On PostgreSQL a plain grouped scan, no percentile sort; from the
    rollups, their rows without histograms."""
    engine = resolve_engine(engine, query.window)
    if engine == "rollup":
        return _sum_rollups(query)
    if engine == "python":
        totals = _aggregate_python(query)
        for stats in totals.values():
            stats.p50_ms = stats.p95_ms = None
        return totals
    where, params = _filters(query)
    model = "ai_model" if query.by_model else "NULL::text"
    sql = f"""
        SELECT task_type, {model}, count(*), count(*) FILTER (WHERE status = 'failed'), count(duration_ms),
               coalesce(sum(duration_ms), 0)::bigint, max(duration_ms)
          FROM execution_tasks WHERE {" AND ".join(where)} GROUP BY 1, 2
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {
            (None, task_type, ai_model): Stats(
                count=count, failed=failed, timed=timed, sum_ms=int(sum_ms), max_ms=max_ms
            )
            for task_type, ai_model, count, failed, timed, sum_ms, max_ms in cursor.fetchall()
        }


def _by_type(totals: dict[Key, Stats]) -> dict[Key, Stats]:
    """Per-model counts and sums added up per type (percentiles are not additive, and not needed)."""
    result: dict[Key, Stats] = {}
    for (bucket, task_type, _), stats in totals.items():
        into = result.setdefault((bucket, task_type, None), Stats())
        into.timed += stats.timed
        into.sum_ms += stats.sum_ms
    return result


def _groups(current: dict[Key, Stats], previous: dict[Key, Stats]) -> list[dict]:
    groups = []
    for key in sorted(current, key=_group_order):
        _, group_type, ai_model = key
        stats = current[key]
        before = previous.get(key)
        groups.append(
            {
                "task_type": group_type,
                "ai_model": ai_model,
                **stats.figures(),
                "mean_ms_change": relative_change(stats.mean_ms, before.mean_ms if before else None),
            }
        )
    return groups


def task_metrics(
    *,
    window: Window,
    group_by: GroupBy = "task_type",
    task_type: str | None = None,
    engine: Engine | None = None,
) -> dict:
    """The figures per group for `window`, each with `mean_ms_change` against the
    previous window of the same length (the API's `GET /metrics/tasks`)."""
    by_model = group_by == "ai_model"
    engine = resolve_engine(engine, window)
    current = aggregate(Query(window=window, by_model=by_model, task_type=task_type), engine=engine)
    previous = _totals(Query(window=window.previous(), by_model=by_model, task_type=task_type), engine)
    return {"window": window.as_dict(), "group_by": group_by, "groups": _groups(current, previous)}


def bucket_starts(window: Window, bucket: Bucket) -> list[datetime]:
    """Every bucket that overlaps the window, oldest first."""
    step = BUCKET_SIZES[bucket]
    start = bucket_start(window.since, bucket)
    starts = []
    while start < window.until:
        starts.append(start)
        start += step
    return starts


def series_point_count(window: Window, bucket: Bucket) -> int:
    step = BUCKET_SIZES[bucket]
    first = bucket_start(window.since, bucket)
    return math.ceil((window.until - first) / step)


def task_series(
    *,
    window: Window,
    bucket: Bucket = "day",
    task_type: str | None = None,
    ai_model: str | None | AnyModel = ANY_MODEL,
    engine: Engine | None = None,
) -> dict:
    """The same figures per bucket (the API's `GET /metrics/tasks/series`). Every
    bucket overlapping the window is present, empty ones with count 0; the first
    and last only count tasks inside the window. `mean_ms_change` is against the
    point before (None for the first point, or when the point before is empty)."""
    engine = resolve_engine(engine, window)
    query = Query(window=window, bucket=bucket, task_type=task_type, ai_model=ai_model, by_type=False)
    by_bucket = {start: value for (start, _, _), value in aggregate(query, engine=engine).items()}
    points = []
    previous_mean = None
    for start in bucket_starts(window, bucket):
        stats = by_bucket.get(start, Stats())
        points.append(
            {"start": start, **stats.figures(), "mean_ms_change": relative_change(stats.mean_ms, previous_mean)}
        )
        previous_mean = stats.mean_ms
    return {
        "window": window.as_dict(),
        "bucket": bucket,
        "task_type": task_type,
        "ai_model": None if isinstance(ai_model, AnyModel) else ai_model,
        "points": points,
    }
