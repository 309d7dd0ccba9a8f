"""Reads of execution tasks. Each list read is one query whatever the table size."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, QuerySet

from tasks.models import FINISHED_STATUSES, ExecutionTask, TaskSource, TaskStatus, TaskType


def task_page(
    *,
    status: str | None = None,
    task_type: str | None = None,
    ai_model: str | None = None,
    customer_ref: str | None = None,
    proposal_ref: str | None = None,
    external_id: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[ExecutionTask]:
    """Newest first (by id), keyset-paginated: `before_id` is the last id of the previous page."""
    qs: QuerySet[ExecutionTask] = ExecutionTask.objects.all()
    filters = {
        "status": status,
        "task_type": task_type,
        "ai_model": ai_model,
        "customer_ref": customer_ref,
        "proposal_ref": proposal_ref,
        "external_id": external_id,
    }
    qs = qs.filter(**{k: v for k, v in filters.items() if v is not None})
    if before_id is not None:
        qs = qs.filter(pk__lt=before_id)
    return list(qs.order_by("-pk")[:limit])


DECISION_FIELDS = (
    "external_id",
    "status",
    "submitted_by",
    "gate_decision",
    "gate_reason",
    "gate_policy",
    "gate_case",
)


def task_decision(task_id: int) -> ExecutionTask | None:
    """The task's status and gate fields, and whose key registered it: what the
    decision long-poll reads, each time it wakes (one query by primary key)."""
    return ExecutionTask.objects.only(*DECISION_FIELDS).filter(pk=task_id).first()


def status_counts_by_type() -> dict:
    """Counts of tasks by type and status for the dashboard: one grouped query.

    Returns {"types": [{"task_type", "label", "counts": {status: n}, "total"}], "statuses": [...],
    "totals": {status: n}, "total": n}.
    """
    rows = ExecutionTask.objects.values("task_type", "status").annotate(n=Count("pk")).order_by()
    counts: dict[str, dict[str, int]] = {t: {} for t in TaskType.values}
    for row in rows:
        counts.setdefault(row["task_type"], {})[row["status"]] = row["n"]
    labels = dict(TaskType.choices)
    types = []
    totals = {s: 0 for s in TaskStatus.values}
    for task_type, by_status in counts.items():
        for status, n in by_status.items():
            totals[status] = totals.get(status, 0) + n
        types.append(
            {
                "task_type": task_type,
                "label": labels.get(task_type, task_type),
                "counts": [by_status.get(s, 0) for s in TaskStatus.values],
                "total": sum(by_status.values()),
            }
        )
    return {
        "statuses": TaskStatus.choices,
        "types": types,
        "totals": [totals.get(s, 0) for s in TaskStatus.values],
        "total": sum(totals.values()),
    }


def backfilled_counts(
    *, since: datetime, until: datetime, task_type: str | None = None
) -> dict[tuple[str, str | None], int]:
    """How many of the finished tasks in `[since, until)` were backfilled (sent by the
    AI side as history, not seen run by FSAR), per (task type, AI model): what the
    metrics page marks. One grouped query on the partial index
    tasks_backfilled_finished, which holds backfilled rows only."""
    rows = ExecutionTask.objects.filter(
        source=TaskSource.BACKFILL, status__in=FINISHED_STATUSES, finished_at__gte=since, finished_at__lt=until
    )
    if task_type is not None:
        rows = rows.filter(task_type=task_type)
    grouped = rows.values_list("task_type", "ai_model").annotate(n=Count("pk")).order_by()
    return {(t, model): n for t, model, n in grouped}
