"""Task performance metrics for the AI side and dashboards: `GET /api/v1/metrics/tasks`
and `GET /api/v1/metrics/tasks/series`. Definitions: docs/metrics.md."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.errors import ValidationError
from pydantic import ConfigDict

from tasks import metrics
from tasks.api import QueryText, TaskTypeName, UtcDatetime
from tasks.auth import ApiKeyAuth

router = Router(tags=["metrics"])


class WindowQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    since: UtcDatetime | None = Field(
        None,
        description="Start, inclusive (RFC 3339 with a time zone). Before `until`; without `until`, in the past. "
        f"Default: `until` less {metrics.DEFAULT_WINDOW.days} days.",
    )
    until: UtcDatetime | None = Field(
        None,
        description="End, exclusive (RFC 3339 with a time zone). Default: now. "
        f"The window is at most {metrics.MAX_WINDOW.days} days long.",
    )
    exact: bool = Field(
        False, description="Exact percentiles from the raw rows, however many (slower on large windows)."
    )


class MetricsQuery(WindowQuery):
    group_by: Literal["task_type", "ai_model"] = "task_type"


class SeriesQuery(WindowQuery):
    task_type: TaskTypeName | None = None
    ai_model: QueryText | None = Field(
        None, description="Only this model; an empty value means tasks with no model recorded."
    )
    bucket: Literal["hour", "day"] = Field(
        "day", description=f"At most {metrics.MAX_POINTS} buckets in the window (hours: about 83 days)."
    )


class WindowOut(Schema):
    since: datetime
    until: datetime


class Figures(Schema):
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    max_ms: int | None
    failure_rate: float | None
    mean_ms_change: float | None


class GroupOut(Figures):
    task_type: str
    ai_model: str | None


class MetricsOut(Schema):
    window: WindowOut
    group_by: str
    groups: list[GroupOut]


class PointOut(Figures):
    start: datetime


class SeriesOut(Schema):
    window: WindowOut
    bucket: str
    task_type: str | None
    ai_model: str | None
    points: list[PointOut]


class ErrorOut(Schema):
    detail: str


ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut}


def invalid(field: str, message: str) -> ValidationError:
    """A 422 in the API's usual shape (fsar/api.py), naming the query parameter."""
    return ValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


def window_from(query: WindowQuery) -> metrics.Window:
    """The requested window: default the 7 days ending now (or ending `until`).
    `since` and `until` are in the years 1970 to 9998 (their type, UtcDatetime), so
    the previous window and the bucket ends stay within what datetime holds."""
    until = query.until or timezone.now()
    since = query.since or until - metrics.DEFAULT_WINDOW
    if query.since is not None and query.until is None and since >= until:
        raise invalid("since", "must be in the past when until is not given")
    if since >= until:
        raise invalid("since", "must be before until")
    if until - since > metrics.MAX_WINDOW:
        raise invalid("until", f"the window may be at most {metrics.MAX_WINDOW.days} days long")
    return metrics.Window(since, until)


def engine(query: WindowQuery) -> metrics.Engine | None:
    """`exact=true`: the raw rows' exact figures; otherwise rollups for large windows."""
    return "exact" if query.exact else None


@router.get(
    "/tasks",
    auth=ApiKeyAuth("read"),
    response={200: MetricsOut, **ERRORS},
    summary="Durations and failure rates per task type, or per task type and AI model",
)
def task_metrics(request: HttpRequest, filters: Query[MetricsQuery]):
    """Finished tasks (by `finished_at`, `since` ≤ t < `until`) grouped by `group_by`:
    count, mean, p50, p95 (percentile_cont), max, failure rate, and `mean_ms_change`
    against the previous window of the same length (null when that window is empty).
    On large windows p50 and p95 come from rollup histograms (within 0.99%);
    `exact=true` computes them from the raw rows."""
    return metrics.task_metrics(window=window_from(filters), group_by=filters.group_by, engine=engine(filters))


@router.get(
    "/tasks/series",
    auth=ApiKeyAuth("read"),
    response={200: SeriesOut, **ERRORS},
    summary="The same figures per hour or day, for charts",
)
def task_series(request: HttpRequest, filters: Query[SeriesQuery]):
    """One point per `bucket` (UTC) overlapping the window, empty buckets included
    with count 0. Optionally only one `task_type` and/or one `ai_model`."""
    window = window_from(filters)
    if metrics.series_point_count(window, filters.bucket) > metrics.MAX_POINTS:
        raise invalid("bucket", f"more than {metrics.MAX_POINTS} {filters.bucket}s in the window; use a larger bucket")
    ai_model = metrics.ANY_MODEL if filters.ai_model is None else (filters.ai_model or None)
    return metrics.task_series(
        window=window, bucket=filters.bucket, task_type=filters.task_type, ai_model=ai_model, engine=engine(filters)
    )
