"""Reads of the tasks and reviews tables for one time range, as observations
(indicators.observations). Every read is an index range on a time column
(docs/indicators.md, "Reads"):

- finished tasks: `execution_tasks.finished_at` (tasks_finished_at_cover),
  API tasks only: the AI client's backfills never move a trend;
- registrations and the gate's answer: the task history's `history_date`
  (simple_history indexes it), the row written with the registration;
- votes: the vote history's `history_date` (the `+` row written with the vote);
- decisions: the case history's `history_date` (the row written with the decision);
- first views: CaseView by its unique (case, case_version, member) key;
- cases due: `reviews_case.due_at` (see docs/indicators.md on its index).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps

from indicators.observations import CaseObs, RegistrationObs, TaskObs, VoteObs
from reviews.models import DECIDED_STATUSES, Case, CaseStatus, Vote
from tasks.models import FINISHED_STATUSES, ExecutionTask, TaskSource, TaskStatus

# history_date is stamped in the same transaction as the row's own time; this much
# slack around a bucket lets a row whose two stamps straddle a bucket edge be read.
SLACK = timedelta(minutes=5)
HELD = (TaskStatus.HELD.value, TaskStatus.DENIED.value)


def finished_tasks(start: datetime, end: datetime) -> list[TaskObs]:
    rows = ExecutionTask.objects.filter(
        finished_at__gte=start, finished_at__lt=end, status__in=FINISHED_STATUSES, source=TaskSource.API
    ).values_list("finished_at", "task_type", "ai_model", "status", "duration_ms", "cost_micros")
    return [TaskObs(at, tt, model, status == TaskStatus.FAILED, ms, cost) for at, tt, model, status, ms, cost in rows]


def registrations(start: datetime, end: datetime) -> list[RegistrationObs]:
    history = ExecutionTask.history.model
    rows = history.objects.filter(
        history_type="+",
        history_date__gte=start - SLACK,
        history_date__lt=end + SLACK,
        created_at__gte=start,
        created_at__lt=end,
        source=TaskSource.API,
    ).values_list("created_at", "task_type", "ai_model", "status")
    return [RegistrationObs(at, tt, model, status in HELD) for at, tt, model, status in rows]


def _case_views():
    """reviews.CaseView (issue 17's first views), or None on a database without it."""
    try:
        return apps.get_model("reviews", "CaseView")
    except LookupError:
        return None


def _first_views(keys: set[tuple[int, int, int]]) -> dict[tuple[int, int, int], datetime]:
    """(case, version, member) → first_viewed_at, by the unique key's index."""
    model = _case_views()
    if model is None or not keys:
        return {}
    cases = {c for c, _, _ in keys}
    rows = model.objects.filter(case_id__in=cases).values_list(
        "case_id", "case_version", "member_id", "first_viewed_at"
    )
    return {(c, v, m): at for c, v, m, at in rows if (c, v, m) in keys}


def _first_view_of_cases(versions: dict[int, int]) -> dict[int, datetime]:
    model = _case_views()
    if model is None or not versions:
        return {}
    first: dict[int, datetime] = {}
    rows = model.objects.filter(case_id__in=versions).values_list("case_id", "case_version", "first_viewed_at")
    for case_id, version, at in rows:
        if version == versions[case_id] and (case_id not in first or at < first[case_id]):
            first[case_id] = at
    return first


def decided_cases(start: datetime, end: datetime) -> list[CaseObs]:
    history = Case.history.model
    rows = (
        history.objects.filter(
            history_date__gte=start - SLACK,
            history_date__lt=end + SLACK,
            status__in=DECIDED_STATUSES,
            decided_at__gte=start,
            decided_at__lt=end,
        )
        .order_by("history_date", "history_id")
        .values_list("id", "version", "decided_at", "status", "severity", "due_at")
    )
    decided: dict[int, tuple] = {}
    for row in rows:
        decided.setdefault(row[0], row)  # the row written with the decision
    firsts = _first_view_of_cases({case_id: row[1] for case_id, row in decided.items()})
    return [
        CaseObs(case_id, firsts.get(case_id), at, status == CaseStatus.APPROVED, severity, due)
        for case_id, (_, _, at, status, severity, due) in sorted(decided.items())
    ]


def due_cases(start: datetime, end: datetime) -> list[CaseObs]:
    rows = Case.objects.filter(due_at__gte=start, due_at__lt=end).values_list("id", "decided_at", "severity", "due_at")
    return [CaseObs(case_id, None, at, None, severity, due) for case_id, at, severity, due in rows]


def votes(start: datetime, end: datetime) -> list[VoteObs]:
    history = Vote.history.model
    rows = list(
        history.objects.filter(
            history_type="+",
            history_date__gte=start - SLACK,
            history_date__lt=end + SLACK,
            created_at__gte=start,
            created_at__lt=end,
        ).values_list("id", "case_id", "case_version", "member_id", "created_at", "choice", "rationale")
    )
    views = _first_views({(c, v, m) for _, c, v, m, *_ in rows})
    finals = dict(
        Case.objects.filter(pk__in={r[1] for r in rows}, status__in=DECIDED_STATUSES).values_list("pk", "status")
    )
    return [
        VoteObs(
            vote_id,
            case_id,
            member_id,
            at,
            choice == Vote.Choice.APPROVE,
            rationale,
            views.get((case_id, version, member_id)),
            None if case_id not in finals else finals[case_id] == CaseStatus.APPROVED,
        )
        for vote_id, case_id, version, member_id, at, choice, rationale in rows
    ]
