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

The modules: tasks/metrics_query.py (the window, the query, a group's `Stats`,
buckets), tasks/metrics_exact.py (the two exact engines), tasks/metrics_rollup.py
(the rollup engine), and this one, which picks the engine and answers the API
(`task_metrics`, `task_series`); it re-exports the names other modules import
from `tasks.metrics`. What the operator page and the dashboard make of these
figures is in tasks/metrics_display.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.db.models import Sum

from tasks.metrics_exact import aggregate_python, aggregate_rows, aggregate_sql, sum_sql
from tasks.metrics_query import (
    ANY_MODEL,
    BUCKET_SIZES,
    DEFAULT_WINDOW,
    FINISHED,
    MAX_POINTS,
    MAX_WINDOW,
    AnyModel,
    Bucket,
    Engine,
    GroupBy,
    Key,
    Query,
    Stats,
    Window,
    bucket_start,
    bucket_starts,
    default_window,
    percentile_cont,
    relative_change,
    series_point_count,
)
from tasks.metrics_rollup import aggregate_rollups, rollup_cover, sum_rollups, window_pair
from tasks.models import TaskMetricsRollup, TaskType

__all__ = [
    "ANY_MODEL",
    "BUCKET_SIZES",
    "DEFAULT_WINDOW",
    "FINISHED",
    "MAX_POINTS",
    "MAX_WINDOW",
    "AnyModel",
    "Bucket",
    "Engine",
    "GroupBy",
    "Key",
    "Query",
    "Stats",
    "Window",
    "aggregate",
    "aggregate_rows",
    "bucket_start",
    "bucket_starts",
    "default_window",
    "exact_engine",
    "exact_max_tasks",
    "percentile_cont",
    "relative_change",
    "resolve_engine",
    "series_point_count",
    "task_metrics",
    "task_series",
]


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
    cover = rollup_cover(window, None)
    tasks = 0
    if cover.rows is not None:
        tasks = TaskMetricsRollup.objects.filter(cover.rows).aggregate(n=Sum("count"))["n"] or 0
    return exact_engine() if tasks <= exact_max_tasks() else "rollup"


def aggregate(query: Query, *, engine: Engine | None = None) -> dict[Key, Stats]:
    """Figures per group (and per bucket when `query.bucket` is set) for the window."""
    engine = resolve_engine(engine, query.window)
    if engine == "rollup":
        return aggregate_rollups(query)
    if engine == "sql":
        return aggregate_sql(query)
    return aggregate_python(query)


# Each task type's place in TaskType (an unknown type after them), and the bucket that sorts
# first: looked up per group rather than built again (TaskType.values is a new list on every read).
_TYPE_RANK = {task_type: rank for rank, task_type in enumerate(TaskType.values)}
_FIRST = datetime.min.replace(tzinfo=UTC)


def _group_order(key: Key) -> tuple:
    bucket, task_type, ai_model = key
    type_rank = _TYPE_RANK.get(task_type, len(_TYPE_RANK))
    return (bucket or _FIRST, type_rank, task_type, ai_model is None, ai_model or "")


def _totals(query: Query, engine: Engine | None) -> dict[Key, Stats]:
    """Counts, sums and maxima without percentiles: enough for means, failure rates
    and changes. On PostgreSQL a plain grouped scan, no percentile sort; from the
    rollups, their rows without histograms."""
    engine = resolve_engine(engine, query.window)
    if engine == "rollup":
        return sum_rollups(query)
    if engine == "python":
        totals = aggregate_python(query)
        for stats in totals.values():
            stats.p50_ms = stats.p95_ms = None
        return totals
    return sum_sql(query)


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
    if connection.vendor == "postgresql" and engine in (None, "auto", "rollup"):
        # Both windows from one statement; "auto" learns there whether the window is small.
        auto_max = None if engine == "rollup" else exact_max_tasks()
        pair = window_pair(Query(window=window, by_model=by_model, task_type=task_type), auto_max=auto_max)
        if pair is not None:
            current, previous = pair
            groups = _groups(current.stats(percentiles=True), previous.stats(percentiles=False))
            return {"window": window.as_dict(), "group_by": group_by, "groups": groups}
        engine = exact_engine()
    engine = resolve_engine(engine, window)
    current = aggregate(Query(window=window, by_model=by_model, task_type=task_type), engine=engine)
    previous = _totals(Query(window=window.previous(), by_model=by_model, task_type=task_type), engine)
    return {"window": window.as_dict(), "group_by": group_by, "groups": _groups(current, previous)}


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
