"""What a metrics question is and the shape of its answer, shared by the engines
(tasks/metrics_exact.py, tasks/metrics_rollup.py) and the figures built from them
(tasks/metrics.py, tasks/metrics_display.py): the window, the query (grouping,
bucket, task type and model filters), a group's `Stats`, buckets, and the finished
tasks a query selects. Definitions: docs/metrics.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tasks.models import FINISHED_STATUSES as FINISHED
from tasks.models import ExecutionTask

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
            "p50_ms": round_ms(self.p50_ms),
            "p95_ms": round_ms(self.p95_ms),
            "max_ms": self.max_ms,
            "failure_rate": self.failure_rate,
        }


def round_ms(value: float | None) -> float | None:
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


def bucket_start(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_bucket(moment: datetime, bucket: Bucket) -> datetime:
    start = bucket_start(moment, bucket)
    return start if start == moment else start + BUCKET_SIZES[bucket]


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


def finished_tasks(query: Query, since: datetime, until: datetime):
    """The finished tasks in [since, until) that the query's task type and model select."""
    tasks = ExecutionTask.objects.filter(finished_at__gte=since, finished_at__lt=until, status__in=FINISHED)
    if query.task_type is not None:
        tasks = tasks.filter(task_type=query.task_type)
    if query.ai_model is None:
        tasks = tasks.filter(ai_model__isnull=True)
    elif not isinstance(query.ai_model, AnyModel):
        tasks = tasks.filter(ai_model=query.ai_model)
    return tasks.order_by()
