"""What the operator metrics page (tasks/views.py) and the dashboard show, built
from the engines behind tasks/metrics.py: the window choices, the per-type and
per-model tables with their highlights (slowest, biggest regression), the chart
series, and the dashboard's per-type summary."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tasks.metrics import _by_type, _group_order, _groups, _totals, aggregate, resolve_engine
from tasks.metrics_query import (
    Bucket,
    Engine,
    Query,
    Stats,
    Window,
    bucket_starts,
    default_window,
    relative_change,
    round_ms,
)
from tasks.models import TaskType

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


def series_by_type(*, window: Window, bucket: Bucket, engine: Engine | None = None) -> dict[str, list[dict]]:
    """Per task type, its points over the window (one grouped query for all types)."""
    stats = aggregate(Query(window=window, bucket=bucket), engine=engine)
    starts = bucket_starts(window, bucket)
    result: dict[str, list[dict]] = {}
    for task_type in sorted({key[1] for key in stats}, key=lambda t: _group_order((None, t, None))):
        result[task_type] = [
            {"start": start, **stats.get((start, task_type, None), Stats()).figures()} for start in starts
        ]
    return result


def series_by_model(
    *, window: Window, bucket: Bucket, task_type: str, engine: Engine | None = None
) -> dict[str | None, list[dict]]:
    """Per AI model of one task type, its points over the window (one grouped query):
    the drill-down's per-model trend."""
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


def metrics_overview(*, window: Window, task_type: str | None = None, engine: Engine | None = None) -> dict:
    """The operator page: per type (or, drilled down, per model of one type) the table,
    the slowest type and model, the biggest regression, and per type a chart series."""
    engine = resolve_engine(engine, window)
    # One previous-window read serves both tables: per-type sums are the per-model sums added up.
    previous = _totals(Query(window=window.previous(), by_model=True, task_type=task_type), engine)
    if task_type is None:
        table = _groups(aggregate(Query(window=window), engine=engine), _by_type(previous))
        # The highlights only need means: no percentile sort for the per-model groups here.
        by_model = {"groups": _groups(_totals(Query(window=window, by_model=True), engine), previous)}
    else:
        by_model = {
            "groups": _groups(
                aggregate(Query(window=window, by_model=True, task_type=task_type), engine=engine), previous
            )
        }
        table = by_model["groups"]
    bucket = chart_bucket(window)
    charts = series_by_type(window=window, bucket=bucket, engine=engine)
    model_charts = {}
    if task_type is not None:
        charts = {k: v for k, v in charts.items() if k == task_type}
        model_charts = series_by_model(window=window, bucket=bucket, task_type=task_type, engine=engine)
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
