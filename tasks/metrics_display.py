"""What the operator metrics page (tasks/views.py) and the dashboard show, built
from the engines behind tasks/metrics.py: the window choices, the per-type and
per-model tables with their highlights (slowest, biggest regression), the chart
series, and the dashboard's per-type summary."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db import connection

from tasks import selectors
from tasks.metrics import (
    _by_type,
    _group_order,
    _groups,
    _totals,
    aggregate,
    exact_engine,
    exact_max_tasks,
    resolve_engine,
)
from tasks.metrics_query import (
    Bucket,
    Engine,
    Key,
    Query,
    Stats,
    Window,
    bucket_starts,
    default_window,
    relative_change,
    round_ms,
)
from tasks.metrics_rollup import rollup_totals, totals_stats, window_pair
from tasks.models import TaskType
from tasks.rollups import Totals

WINDOW_CHOICES: dict[str, tuple[str, timedelta]] = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "90d": ("Last 90 days", timedelta(days=90)),
}
DEFAULT_WINDOW_CHOICE = "7d"
# A group whose mean got at least this much slower than in the previous window is flagged.
REGRESSION_THRESHOLD = 0.10


def chart_bucket(window: Window) -> Bucket:
    return "hour" if window.length <= timedelta(days=2) else "day"


def series_by_type(
    *, window: Window, bucket: Bucket, engine: Engine | None = None, stats: dict[Key, Stats] | None = None
) -> dict[str, list[dict]]:
    """Per task type, its points over the window (one grouped query for all types, unless
    the caller has the figures per bucket and type already: `stats`)."""
    if stats is None:
        stats = aggregate(Query(window=window, bucket=bucket), engine=engine)
    starts = bucket_starts(window, bucket)
    result: dict[str, list[dict]] = {}
    for task_type in sorted({key[1] for key in stats}, key=lambda t: _group_order((None, t, None))):
        result[task_type] = [
            {"start": start, **stats.get((start, task_type, None), Stats()).figures()} for start in starts
        ]
    return result


def series_by_model(
    *,
    window: Window,
    bucket: Bucket,
    task_type: str,
    engine: Engine | None = None,
    stats: dict[Key, Stats] | None = None,
) -> dict[str | None, list[dict]]:
    """Per AI model of one task type, its points over the window (one grouped query):
    the drill-down's per-model trend."""
    if stats is None:
        stats = aggregate(Query(window=window, bucket=bucket, by_model=True, task_type=task_type), engine=engine)
    starts = bucket_starts(window, bucket)
    models = sorted({key[2] for key in stats}, key=lambda m: (m is None, m or ""))
    return {
        model: [{"start": start, **stats.get((start, task_type, model), Stats()).figures()} for start in starts]
        for model in models
    }


def _slowest(groups: list[dict]) -> dict | None:
    timed = [g for g in groups if g["mean_ms"] is not None]
    return max(timed, key=lambda g: g["mean_ms"]) if timed else None


def _biggest_regression(groups: list[dict]) -> dict | None:
    worse = [g for g in groups if g["mean_ms_change"] is not None and g["mean_ms_change"] > 0]
    return max(worse, key=lambda g: g["mean_ms_change"]) if worse else None


def _summed(totals: dict[Key, Totals], key, *, histograms: bool) -> dict[Key, Totals]:
    """Totals per key added up per `key(k)` (so per type, per model or per bucket); their
    histograms only when `histograms` (a table without percentiles needs none)."""
    summed: dict[Key, Totals] = {}
    for k, t in totals.items():
        into = summed.get(key(k))
        if into is None:
            into = summed[key(k)] = Totals()
        if histograms:
            into.merge(t)
        else:
            into.add(t.count, t.failed, t.timed, t.sum_ms, t.max_ms, None, t.backfilled)
    return summed


def _rollup_reads(window: Window, bucket: Bucket, task_type: str | None, fine: dict[Key, Totals] | None = None) -> dict:
    """Everything the page shows of the window, from one read of the rollup engine at
    the finest grain the page needs (per bucket × type × model, histograms kept: `fine`
    when the caller has it), then added up per table row, per chart point and per model:
    one set of queries where the page used to read the window four times (docs/metrics.md)."""
    if fine is None:
        fine = rollup_totals(Query(window=window, bucket=bucket, by_model=True, task_type=task_type), backfilled=True)
    backfilled: dict[tuple[str, str | None], int] = {}
    for (_, group_type, ai_model), t in fine.items():
        if t.backfilled:
            backfilled[(group_type, ai_model)] = backfilled.get((group_type, ai_model), 0) + t.backfilled
    per_model = task_type is not None
    # Histograms are merged only where percentiles are shown, and the per-type table from
    # the per-bucket sums rather than from every fine group again. The stored rows' histograms
    # are added up once, where a percentile is taken (Totals keeps them as they are until
    # then): the per-bucket percentiles first, so that the table adds up their sums.
    by_bucket = _summed(fine, lambda k: (k[0], k[1], None), histograms=True)
    by_bucket_stats = totals_stats(by_bucket, percentiles=True)
    by_model = _summed(fine, lambda k: (None, k[1], k[2]), histograms=per_model)
    if per_model:
        table = by_model
    else:
        table = _summed(by_bucket, lambda k: (None, k[1], None), histograms=True)
    return {
        "table": totals_stats(table, percentiles=True),
        "by_model": totals_stats(by_model, percentiles=per_model),
        "by_bucket": by_bucket_stats,
        "by_bucket_model": totals_stats(fine, percentiles=False) if per_model else None,
        "backfilled": backfilled,
    }


def metrics_overview(*, window: Window, task_type: str | None = None, engine: Engine | None = None) -> dict:
    """The operator page: per type (or, drilled down, per model of one type) the table,
    the slowest type and model, the biggest regression, per type a chart series, and
    per (type, model) how many of the window's tasks were backfilled."""
    bucket = chart_bucket(window)
    fine = previous = None
    if connection.vendor == "postgresql" and engine in (None, "auto", "rollup"):
        # The window at the page's grain and the previous window's totals in one statement;
        # "auto" learns there whether the window is small (then answered exactly).
        pair = window_pair(
            Query(window=window, bucket=bucket, by_model=True, task_type=task_type),
            auto_max=None if engine == "rollup" else exact_max_tasks(),
            backfilled=True,
        )
        if pair is None:
            engine = exact_engine()
        else:
            fine, previous_totals = pair
            previous = previous_totals.stats(percentiles=False)
            engine = "rollup"
    engine = resolve_engine(engine, window)
    if previous is None:
        # One previous-window read serves both tables: per-type sums are the per-model sums added up.
        previous = _totals(Query(window=window.previous(), by_model=True, task_type=task_type), engine)
    if engine == "rollup":
        reads = _rollup_reads(window, bucket, task_type, fine)
        backfilled = reads["backfilled"]
    else:
        backfilled = selectors.backfilled_counts(since=window.since, until=window.until, task_type=task_type)
        reads = {"table": None, "by_model": None, "by_bucket": None, "by_bucket_model": None}
    if task_type is None:
        current = reads["table"]
        if current is None:
            current = aggregate(Query(window=window), engine=engine)
        table = _groups(current, _by_type(previous))
        # The highlights only need means: no percentile sort for the per-model groups here.
        models = reads["by_model"]
        if models is None:
            models = _totals(Query(window=window, by_model=True), engine)
        by_model = {"groups": _groups(models, previous)}
    else:
        current = reads["table"]
        if current is None:
            current = aggregate(Query(window=window, by_model=True, task_type=task_type), engine=engine)
        by_model = {"groups": _groups(current, previous)}
        table = by_model["groups"]
    charts = series_by_type(window=window, bucket=bucket, engine=engine, stats=reads["by_bucket"])
    model_charts = {}
    if task_type is not None:
        charts = {k: v for k, v in charts.items() if k == task_type}
        model_charts = series_by_model(
            window=window, bucket=bucket, task_type=task_type, engine=engine, stats=reads["by_bucket_model"]
        )
    for group in table:
        change = group["mean_ms_change"]
        group["regressed"] = change is not None and change >= REGRESSION_THRESHOLD
    type_groups = table if task_type is None else []
    return {
        "window": window,
        "task_type": task_type,
        "group_by": "ai_model" if task_type else "task_type",
        "groups": table,
        "slowest_type": _slowest(type_groups),
        "slowest_model": _slowest(by_model["groups"]),
        "biggest_regression": _biggest_regression(by_model["groups"]),
        "chart_bucket": bucket,
        "charts": charts,
        "model_charts": model_charts,
        "backfilled": backfilled,
    }


def _range(values: list[float | None]) -> tuple[float, float] | None:
    known = [v for v in values if v is not None]
    return (min(known), max(known)) if known else None


def dashboard_summary(*, now: datetime, engine: Engine | None = None) -> list[dict]:
    """Per task type: mean and p95 over the last 24 hours against the 24 before."""
    last = default_window(now, timedelta(hours=24))
    engine = resolve_engine(engine, last)
    current = aggregate(Query(window=last), engine=engine)
    previous = aggregate(Query(window=last.previous()), engine=engine)
    hourly = series_by_type(window=last, bucket="hour", engine=engine)
    labels = dict(TaskType.choices)
    rows = []
    types = sorted(
        {key[1] for key in current} | {key[1] for key in previous}, key=lambda t: _group_order((None, t, None))
    )
    for task_type in types:
        now_stats = current.get((None, task_type, None), Stats())
        before = previous.get((None, task_type, None), Stats())
        mean_change = relative_change(now_stats.mean_ms, before.mean_ms)
        p95_change = relative_change(round_ms(now_stats.p95_ms), round_ms(before.p95_ms))
        rows.append(
            {
                "task_type": task_type,
                "label": labels.get(task_type, task_type),
                "count": now_stats.count,
                "mean_ms": now_stats.mean_ms,
                "p95_ms": round_ms(now_stats.p95_ms),
                "previous_count": before.count,
                "previous_mean_ms": before.mean_ms,
                "previous_p95_ms": round_ms(before.p95_ms),
                "mean_change": mean_change,
                "p95_change": p95_change,
                # For display: percent, as the template cannot multiply.
                "mean_change_pct": None if mean_change is None else round(mean_change * 100, 1),
                "p95_change_pct": None if p95_change is None else round(p95_change * 100, 1),
                # The sparkline: hourly means over the 24 hours (None for an hour with none finished),
                # as JSON for a data- attribute (static/fsar/charts.js draws it).
                "hourly_json": json.dumps(
                    [[int(point["start"].timestamp()), point["mean_ms"]] for point in hourly.get(task_type, [])]
                ),
                "hourly_range": _range([point["mean_ms"] for point in hourly.get(task_type, [])]),
            }
        )
    return rows
