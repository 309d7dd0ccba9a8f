"""Reads for reviews: the gate's state, model metrics for rules, and what the
dashboard and pages show."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from reviews.models import QUEUE_STATUSES, CallbackDelivery, Case, CaseStatus, GateState, MetricKind, Report
from tasks.models import ExecutionTask, TaskStatus


def gate_state() -> GateState:
    state = GateState.objects.filter(pk=1).first()
    if state is None:
        state, _ = GateState.objects.get_or_create(pk=1)
    return state


def model_metric(ai_model: str, kind: str, window: int) -> float | None:
    """Failure rate (0–1) or p95 duration (ms) over the model's last `window`
    finished tasks; None when it has none. One indexed query (ai_model, -id)."""
    rows = list(
        ExecutionTask.objects.filter(ai_model=ai_model, status__in=(TaskStatus.SUCCEEDED, TaskStatus.FAILED))
        .order_by("-id")
        .values_list("status", "duration_ms")[:window]
    )
    if not rows:
        return None
    if kind == MetricKind.FAILURE_RATE:
        return sum(1 for status, _ in rows if status == TaskStatus.FAILED) / len(rows)
    durations = sorted(d for _, d in rows if d is not None)
    if not durations:
        return None
    index = max(0, -(-95 * len(durations) // 100) - 1)  # nearest-rank p95
    return float(durations[index])


def report_by_id(report_id: str) -> Report | None:
    return Report.objects.select_related("case", "rejected_precedent").filter(report_id=report_id).first()


def held_tasks_for_case(case_id: int) -> QuerySet[ExecutionTask]:
    return ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_case=str(case_id)).order_by("id")


def dashboard_context() -> dict:
    state = gate_state()
    case_counts = Case.objects.aggregate(
        open=Count("pk", filter=Q(status=CaseStatus.OPEN)),
        changes_requested=Count("pk", filter=Q(status=CaseStatus.CHANGES_REQUESTED)),
        advisory=Count("pk", filter=Q(status=CaseStatus.ADVISORY)),
    )
    return {
        "gate_state": state,
        "case_counts": case_counts,
        "held_task_count": ExecutionTask.objects.filter(status=TaskStatus.HELD).count(),
        "failed_callback_count": CallbackDelivery.objects.filter(status=CallbackDelivery.Status.FAILED).count(),
        "recent_reports": list(Report.objects.select_related("case").order_by("-id")[:5]),
        "short_cases": list(Case.objects.filter(short_of_members=True, status__in=QUEUE_STATUSES).order_by("-id")[:20]),
    }
