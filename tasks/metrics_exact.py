"""The two exact engines of tasks/metrics.py. On PostgreSQL one grouped SQL query
using `percentile_cont`; on other databases (SQLite) the window's rows are read and
the same formulas run here (`aggregate_rows`, `percentile_cont`). Count, sum and
max are integers in both; only percentiles are floating point."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection

from tasks.metrics_query import (
    FINISHED,
    AnyModel,
    Bucket,
    Key,
    Query,
    Stats,
    bucket_start,
    finished_tasks,
    percentile_cont,
)
from tasks.models import TaskStatus


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


def aggregate_sql(query: Query) -> dict[Key, Stats]:
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


def sum_sql(query: Query) -> dict[Key, Stats]:
    """PostgreSQL: counts, sums and maxima per type (and model) without percentiles:
    a plain grouped scan, no percentile sort."""
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


def aggregate_python(query: Query) -> dict[Key, Stats]:
    """Any database: read the window's rows (one query) and aggregate here."""
    qs = finished_tasks(query, query.window.since, query.window.until)
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
