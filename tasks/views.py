"""Operator pages of the tasks app: task performance metrics."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.roles import OPERATORS, role_required
from tasks import metrics, metrics_display, selectors
from tasks.charts import chart, model_trend, present, table_rows, window_options, window_shown, with_backfilled
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
    backfilled = overview["backfilled"]
    labels = dict(TaskType.choices)
    context = {
        **overview,
        "errors": errors,
        "window_choice": choice,
        "window_options": window_options(metrics_display.WINDOW_CHOICES, choice),
        "window_shown": window_shown(window.since, window.until),
        "task_type_label": labels.get(task_type, task_type),
        "rows": [
            with_backfilled(present(group, labels), backfilled, by_model=task_type is not None)
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
    context["table_rows"] = table_rows(
        context["rows"],
        task_type=task_type,
        task_type_label=context["task_type_label"],
        window_choice=choice,
        slowest=context["slowest_model"] if task_type else context["slowest_type"],
    )
    return render(request, "tasks/metrics.html", context, status=400 if errors else 200)


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
