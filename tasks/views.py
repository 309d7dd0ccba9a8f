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

CHART_WIDTH = 300
CHART_HEIGHT = 90
RATE_HEIGHT = 28
PAD = 4


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
            {"task_type": t, "label": labels.get(t, t), **chart(points, overview["chart_bucket"])}
            for t, points in overview["charts"].items()
        ],
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


def chart(points: list[dict], bucket: str) -> dict:
    """A small server-side SVG: mean and p95 lines over the buckets, and failure-rate
    bars below. Gaps (empty buckets) break the lines."""
    n = len(points)
    top = max([p["p95_ms"] or 0 for p in points] + [p["mean_ms"] or 0 for p in points] + [1])
    worst_rate = max([p["failure_rate"] or 0 for p in points] + [0.0])
    step = (CHART_WIDTH - 2 * PAD) / max(n - 1, 1)

    def x(i: int) -> float:
        return round(PAD + i * step, 1)

    def y(value: float) -> float:
        return round(CHART_HEIGHT - PAD - (value / top) * (CHART_HEIGHT - 2 * PAD), 1)

    def lines(field: str) -> list[str]:
        segments, current = [], []
        for i, point in enumerate(points):
            if point[field] is None:
                if current:
                    segments.append(" ".join(current))
                current = []
            else:
                current.append(f"{x(i)},{y(point[field])}")
        if current:
            segments.append(" ".join(current))
        return segments

    bar_width = max(round(step * 0.7, 1), 1.0) if n > 1 else 8.0
    bars = []
    for i, point in enumerate(points):
        rate = point["failure_rate"]
        height = round((rate / worst_rate) * (RATE_HEIGHT - 2), 1) if rate and worst_rate else 0
        bars.append(
            {
                "x": round(x(i) - bar_width / 2, 1),
                "y": round(RATE_HEIGHT - height, 1),
                "height": height,
                "title": f"{label_time(point['start'], bucket)}: {percent(rate)} failed of {point['count']:,}",
            }
        )
    dots = [
        {"x": x(i), "y": y(p["p95_ms"]), "title": f"{label_time(p['start'], bucket)}: mean {duration(p['mean_ms'])}, "
         f"p95 {duration(p['p95_ms'])}, {p['count']:,} tasks"}
        for i, p in enumerate(points)
        if p["p95_ms"] is not None
    ]  # fmt: skip
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "rate_height": RATE_HEIGHT,
        "bar_width": bar_width,
        "mean_lines": lines("mean_ms"),
        "p95_lines": lines("p95_ms"),
        "dots": dots,
        "bars": bars,
        "top": duration(float(top)),
        "worst_rate": percent(worst_rate),
        "first": label_time(points[0]["start"], bucket) if points else "",
        "last": label_time(points[-1]["start"], bucket) if points else "",
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
