"""Reads of the tasks and reviews tables for one time range, as observations
(indicators.observations), and for the model series as sums per task type × model
(`model_groups`: the database aggregates, so memory does not grow with the
rows). Every read is an index range on a time column
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

from collections import defaultdict
from datetime import datetime, timedelta

from django.apps import apps
from django.db import connection
from django.db.models import Aggregate, Count, ExpressionWrapper, F, FloatField, Q, Sum, TextField, Value, Window
from django.db.models.functions import Coalesce, NullIf, RowNumber

from indicators.observations import NO_MODEL, P95, CaseObs, GroupKey, ModelGroup, VoteObs, percentile_of
from reviews.models import DECIDED_STATUSES, Case, CaseStatus, Vote
from tasks.models import FINISHED_STATUSES, ExecutionTask, TaskSource, TaskStatus

# history_date is stamped in the same transaction as the row's own time; this much
# slack around a bucket lets a row whose two stamps straddle a bucket edge be read.
SLACK = timedelta(minutes=5)
HELD = (TaskStatus.HELD.value, TaskStatus.DENIED.value)


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression), in
    float8: the same operations as observations.percentile_of."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s::float8) WITHIN GROUP (ORDER BY (%(expressions)s)::float8)"
    output_field = FloatField()

    def __init__(self, expression, *, fraction: float):
        super().__init__(expression, fraction=float(fraction))


# The group's model label: a task naming no model (null or empty) is NO_MODEL's, as in observations.
MODEL_LABEL = Coalesce(NullIf("ai_model", Value("")), Value(NO_MODEL), output_field=TextField())


def _finished_api_tasks(start: datetime, end: datetime):
    return ExecutionTask.objects.filter(
        finished_at__gte=start, finished_at__lt=end, status__in=FINISHED_STATUSES, source=TaskSource.API
    ).order_by()


def _p95_by_ranks(start: datetime, end: datetime) -> dict[GroupKey, float]:
    """Without percentile_cont (SQLite): per group, only the rows at the ranks around
    P95·(n − 1) (window functions), interpolated as percentile_of does."""
    group = [F("task_type"), F("model_label")]
    position = ExpressionWrapper((F("size") - 1) * Value(P95), output_field=FloatField())
    rows = (
        _finished_api_tasks(start, end)
        .filter(duration_ms__isnull=False)
        .annotate(model_label=MODEL_LABEL)
        .annotate(
            rank=Window(RowNumber(), partition_by=group, order_by=F("duration_ms").asc()),
            size=Window(Count("pk"), partition_by=group),
        )
        # ROW_NUMBER counts from 1: the rows whose index (from 0) is within one of the
        # position, its floor and its ceiling among them (two or three rows a group).
        .filter(rank__gte=position, rank__lte=position + 2)
        .values_list("task_type", "model_label", "rank", "size", "duration_ms")
    )
    ranked: dict[GroupKey, dict[int, float]] = defaultdict(dict)
    sizes: dict[GroupKey, int] = {}
    for task_type, model, rank, size, ms in rows:
        ranked[(task_type, model)][rank - 1] = float(ms)
        sizes[(task_type, model)] = size
    return {key: percentile_of(sizes[key], P95, values.__getitem__) for key, values in ranked.items()}


def model_groups(start: datetime, end: datetime) -> list[ModelGroup]:
    """The finished API tasks (by finished_at) and API registrations (the history's
    `+` rows) of [start, end), summed per task type × model by the database: the
    rows never come into Python, whatever a day's traffic."""
    postgres = connection.vendor == "postgresql"
    sums = {
        "finished": Count("pk"),
        "failed": Count("pk", filter=Q(status=TaskStatus.FAILED)),
        "timed": Count("duration_ms"),
        "sum_ms": Sum("duration_ms"),
        "costed": Count("cost_micros"),
        "sum_cost": Sum("cost_micros"),
    }
    if postgres:
        sums["p95_ms"] = PercentileCont("duration_ms", fraction=P95)
    tasks = _finished_api_tasks(start, end).annotate(model_label=MODEL_LABEL).values("task_type", "model_label")
    groups: dict[GroupKey, ModelGroup] = {}
    for row in tasks.annotate(**sums):
        key = (row["task_type"], row["model_label"])
        groups[key] = ModelGroup(
            *key,
            finished=row["finished"],
            failed=row["failed"],
            timed=row["timed"],
            sum_ms=int(row["sum_ms"] or 0),  # PostgreSQL's sum of a bigint is an exact numeric
            p95_ms=row.get("p95_ms"),
            costed=row["costed"],
            sum_cost=int(row["sum_cost"] or 0),
        )
    if not postgres:
        for key, p95 in _p95_by_ranks(start, end).items():
            groups[key].p95_ms = p95
    registered = (
        _added_in(ExecutionTask.history.model, start, end)
        .filter(source=TaskSource.API)
        .order_by()
        .annotate(model_label=MODEL_LABEL)
        .values("task_type", "model_label")
        .annotate(registered=Count("pk"), held=Count("pk", filter=Q(status__in=HELD)))
    )
    for row in registered:
        key = (row["task_type"], row["model_label"])
        group = groups.get(key) or groups.setdefault(key, ModelGroup(*key))
        group.registered, group.held = row["registered"], row["held"]
    return list(groups.values())


def _added_in(history_model, start: datetime, end: datetime):
    """The history rows of the rows created in [start, end): their "+" rows, by the
    history date's index (within SLACK of the creation time they copy)."""
    return history_model.objects.filter(
        history_type="+",
        history_date__gte=start - SLACK,
        history_date__lt=end + SLACK,
        created_at__gte=start,
        created_at__lt=end,
    )


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
    rows = list(
        _added_in(Vote.history.model, start, end).values_list(
            "id", "case_id", "case_version", "member_id", "created_at", "choice", "rationale"
        )
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
