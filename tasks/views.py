"""Operator pages of the tasks app: task performance metrics."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.roles import OPERATORS, role_required
from tasks import metrics, metrics_display, selectors
from tasks.formatting import duration, exact_ms
from tasks.models import TaskStatus, TaskType


@role_required(OPERATORS)
@require_GET
def metrics_page(request: HttpRequest) -> HttpResponse:
    """The metrics table (per type, or per model of one type), highlights and charts
    for a window chosen from WINDOW_CHOICES, ending now."""
    choice = request.GET.get("window") or metrics_display.DEFAULT_WINDOW_CHOICE
    task_type = request.GET.get("task_type") or None
    errors = []
    if choice not in metrics_display.WINDOW_CHOICES:
        errors.append(f"window: choose one of {', '.join(metrics_display.WINDOW_CHOICES)}")
        choice = metrics_display.DEFAULT_WINDOW_CHOICE
    if task_type is not None and task_type not in TaskType.values:
        errors.append(f"task_type: no task type {task_type!r}")
        task_type = None
    window = metrics.default_window(timezone.now(), metrics_display.WINDOW_CHOICES[choice][1])
    overview = metrics_display.metrics_overview(window=window, task_type=task_type)
    backfilled = selectors.backfilled_counts(since=window.since, until=window.until, task_type=task_type)
    labels = dict(TaskType.choices)
    context = {
        **overview,
        "errors": errors,
        "window_choice": choice,
        "window_choices": [(key, label) for key, (label, _) in metrics_display.WINDOW_CHOICES.items()],
        "task_type_label": labels.get(task_type, task_type),
        "rows": [
            _with_backfilled(present(group, labels), backfilled, by_model=task_type is not None)
            for group in overview["groups"]
        ],
        "slowest_type": present(overview["slowest_type"], labels),
        "slowest_model": present(overview["slowest_model"], labels),
        "biggest_regression": present(overview["biggest_regression"], labels),
        "charts": [
            {
                "task_type": t,
                "label": labels.get(t, t),
                **chart(points, overview["chart_bucket"], title=labels.get(t, t), chart_id=f"trend-{t}"),
            }
            for t, points in overview["charts"].items()
        ],
        "model_trend": model_trend(
            overview["model_charts"],
            overview["chart_bucket"],
            title=f"{labels.get(task_type, task_type)}: mean duration per model",
        ),
    }
    return render(request, "tasks/metrics.html", context, status=400 if errors else 200)


def _with_backfilled(row: dict, counts: dict[tuple[str, str | None], int], *, by_model: bool) -> dict:
    """Mark how many of a row's finished tasks were backfilled: its model's on a
    type's page, every model's of its type on the per-type table."""
    if by_model:
        n = counts.get((row["task_type"], row["ai_model"]), 0)
    else:
        n = sum(count for (task_type, _), count in counts.items() if task_type == row["task_type"])
    return {**row, "backfilled": n, "backfilled_shown": f"{n:,}"}


def percent(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.1f}%" if signed else f"{value * 100:.2f}%"


def present(group: dict | None, labels: dict) -> dict | None:
    """A group with its figures formatted for people; raw values stay for sorting."""
    if group is None:
        return None
    return {
        **group,
        "label": labels.get(group["task_type"], group["task_type"]),
        "model_label": group["ai_model"] if group["ai_model"] is not None else "(no model recorded)",
        "shown": {
            "count": f"{group['count']:,}",
            **{f: duration(group[f]) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms")},
            "exact": {f: exact_ms(group[f]) for f in ("mean_ms", "p50_ms", "p95_ms", "max_ms")},
            "failure_rate": percent(group["failure_rate"]),
            "mean_ms_change": percent(group["mean_ms_change"], signed=True),
        },
    }


def chart(points: list[dict], bucket: str, *, title: str, chart_id: str) -> dict:
    """A task type's trend as chart data (static/fsar/charts.js draws it with uPlot):
    mean and p95 duration in ms, and failure rate, per bucket; None where a bucket
    has no finished task. The same points are the table shown without JavaScript."""
    return {
        "id": chart_id,
        "title": title,
        "bucket": bucket,
        "x": [int(p["start"].timestamp()) for p in points],
        "series": [
            {"label": "mean", "unit": "ms", "values": [p["mean_ms"] for p in points]},
            {"label": "p95", "unit": "ms", "values": [p["p95_ms"] for p in points]},
        ],
        "rate": {"label": "failure rate", "unit": "ratio", "values": [p["failure_rate"] for p in points]},
        "rows": [
            {
                "start": p["start"],
                "label": label_time(p["start"], bucket),
                "count": p["count"],
                "mean": duration(p["mean_ms"]),
                "p95": duration(p["p95_ms"]),
                "failure_rate": percent(p["failure_rate"]),
            }
            for p in points
        ],
    }


def model_trend(series: dict, bucket: str, *, title: str) -> dict | None:
    """The drill-down's per-model trend: one mean-duration series per model."""
    if not series:
        return None
    starts = [p["start"] for p in next(iter(series.values()))]
    names = {model: model if model is not None else "(no model recorded)" for model in series}
    return {
        "id": "trend-models",
        "title": title,
        "bucket": bucket,
        "x": [int(start.timestamp()) for start in starts],
        "series": [
            {"label": names[model], "unit": "ms", "values": [p["mean_ms"] for p in points]}
            for model, points in series.items()
        ],
        "columns": [names[model] for model in series],
        "rows": [
            {
                "label": label_time(start, bucket),
                "values": [duration(points[i]["mean_ms"]) for points in series.values()],
            }
            for i, start in enumerate(starts)
        ],
    }


def label_time(moment: datetime, bucket: str) -> str:
    return moment.strftime("%b %d %H:00" if bucket == "hour" else "%b %d")


HELD_PAGE_SIZE = 50


@role_required(OPERATORS)
@require_GET
def held_tasks(request: HttpRequest) -> HttpResponse:
    """Tasks the gate holds, newest first, each with its case and the reason; 50 a page (keyset)."""
    try:
        before = int(request.GET.get("before") or 0) or None
    except ValueError:
        before = None
    tasks = selectors.task_page(status=TaskStatus.HELD, before_id=before, limit=HELD_PAGE_SIZE + 1)
    more = len(tasks) > HELD_PAGE_SIZE
    tasks = tasks[:HELD_PAGE_SIZE]
    context = {"tasks": tasks, "next_before": tasks[-1].pk if more else None, "paged": before is not None}
    return render(request, "tasks/held.html", context)
