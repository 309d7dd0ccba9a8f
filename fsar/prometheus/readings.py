"""What `/metrics` reads: one query per function, each bounded by an index or a
small table, never by the size of `execution_tasks` (docs/deployment.md).

Each function returns plain values; `collector.py` turns them into metric
families. Label values come only from rows the AI client cannot write freely:
rule names (the policy tables, which change only through the committee),
case kinds (registered in code), suite names (governed), and model names bounded
by `model_labels` (below).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models
from django.db.models import Count, Min, Q

from assurance.models import AuditRun, AuditSuite
from billing.models import StripeEvent
from deployments.models import ModelVersion, VersionStatus
from indicators import selectors as indicator_selectors
from indicators.models import Scope
from reviews.models import QUEUE_STATUSES, CallbackDelivery, Case
from tasks.models import ExecutionTask, TaskStatus

# The gate-decision window: the registrations of the last hour (see gate_decisions).
GATE_WINDOW = timedelta(hours=1)
# At most this many model versions give `model` label values (see model_labels).
MODEL_LABELS_MAX = 50
# Open cases by age: (label, lower bound), youngest first; the last bucket has no upper bound.
CASE_AGE_BUCKETS = (
    ("lt_1h", timedelta(0)),
    ("1h_to_1d", timedelta(hours=1)),
    ("1d_to_7d", timedelta(days=1)),
    ("ge_7d", timedelta(days=7)),
)


def model_labels() -> list[str]:
    """The model names /metrics may use as label values: model versions that are
    not retired, the approved ones first (the committee approved them, so the AI
    client cannot add to them), then the newest, at most MODEL_LABELS_MAX. The AI
    side can register versions and writes `execution_tasks.ai_model` freely, so a
    name outside this list is never a label value: a series about it is left out
    and counted in fsar_metrics_omitted_series. One query (deployments_version_status)."""
    approved_first = models.Case(
        models.When(status=VersionStatus.APPROVED, then=models.Value(0)),
        default=models.Value(1),
        output_field=models.IntegerField(),
    )
    rows = (
        ModelVersion.objects.exclude(status=VersionStatus.RETIRED)
        .annotate(approved_first=approved_first)
        .order_by("approved_first", "-id")
        .values_list("ai_model", flat=True)[:MODEL_LABELS_MAX]
    )
    return list(rows)


def gate_decisions(now: datetime) -> list[tuple[str, str, int]]:
    """(action, rule, count): the gate's decisions on the tasks registered in the
    last GATE_WINDOW, from their registration history rows (history_type "+", which
    carry the decision as stored). A range of the history's `history_date` index:
    the cost follows the registrations in the window, not the size of the table.
    Later re-decisions (a held task released or denied by its case, a start the
    gate refused) are not counted here; held tasks are their own family."""
    history = ExecutionTask.history.model
    rows = (
        history.objects.filter(history_date__gte=now - GATE_WINDOW, history_type="+", gate_decision__isnull=False)
        .values_list("gate_decision", "gate_policy")
        .annotate(n=Count("*"))
        .order_by()
    )
    summed: dict[tuple[str, str], int] = {}
    for action, rule, n in rows:  # a NULL rule and an empty one are the same label value
        summed[(action, rule or "")] = summed.get((action, rule or ""), 0) + n
    return [(action, rule, n) for (action, rule), n in summed.items()]


@dataclass(frozen=True)
class Held:
    by_rule: list[tuple[str, int]]
    oldest: datetime | None


def held_tasks() -> Held:
    """Tasks held for review, by the rule that holds them, and the oldest one's
    registration time. The (status, id) index's `held` range: held tasks are a
    queue the committee works down, not history."""
    rows = list(
        ExecutionTask.objects.filter(status=TaskStatus.HELD)
        .values_list("gate_policy")
        .annotate(n=Count("*"), oldest=Min("created_at"))
        .order_by()
    )
    oldest = min((row[2] for row in rows if row[2] is not None), default=None)
    summed: dict[str, int] = {}
    for rule, n, _ in rows:  # a NULL rule and an empty one are the same label value
        summed[rule or ""] = summed.get(rule or "", 0) + n
    return Held(by_rule=list(summed.items()), oldest=oldest)


@dataclass(frozen=True)
class OpenCases:
    # kind -> {age bucket label: count}
    by_age: dict[str, dict[str, int]]
    overdue: dict[str, int]
    oldest: dict[str, datetime]


def open_cases(now: datetime) -> OpenCases:
    """Cases in the committee's queue (open, changes requested, expired approval
    in continuing review, advisory) by kind and age since opened, the overdue ones
    (past due_at), and each kind's oldest. One query on the queue's partial index
    or the (status, id) one: the queue, not the decided history."""
    buckets = {}
    for position, (label, lower) in enumerate(CASE_AGE_BUCKETS):
        condition = Q(opened_at__lte=now - lower)
        if position + 1 < len(CASE_AGE_BUCKETS):
            condition &= Q(opened_at__gt=now - CASE_AGE_BUCKETS[position + 1][1])
        buckets[label] = Count("id", filter=condition)
    rows = (
        Case.objects.filter(status__in=QUEUE_STATUSES)
        .values("kind")
        .annotate(**buckets, overdue=Count("id", filter=Q(due_at__lt=now)), oldest=Min("opened_at"))
        .order_by()
    )
    by_age, overdue, oldest = {}, {}, {}
    for row in rows:
        by_age[row["kind"]] = {label: row[label] for label, _ in CASE_AGE_BUCKETS}
        overdue[row["kind"]] = row["overdue"]
        oldest[row["kind"]] = row["oldest"]
    return OpenCases(by_age=by_age, overdue=overdue, oldest=oldest)


@dataclass(frozen=True)
class Backlog:
    by_status: dict[str, int]
    oldest: datetime | None


def stripe_backlog() -> Backlog:
    """Stored Stripe events not yet applied (pending, or failed and waiting for a
    replay) and the oldest one's arrival. The (status, id) index's two ranges."""
    statuses = (StripeEvent.Status.PENDING, StripeEvent.Status.FAILED)
    rows = list(
        StripeEvent.objects.filter(status__in=statuses)
        .values_list("status")
        .annotate(n=Count("*"), oldest=Min("received_at"))
        .order_by()
    )
    return _backlog(statuses, rows)


def callback_backlog() -> Backlog:
    """Signed callbacks to the AI side still to deliver (pending) or given up on
    (failed), and the oldest pending one's creation. The (status, next_attempt_at)
    index's ranges."""
    statuses = (CallbackDelivery.Status.PENDING, CallbackDelivery.Status.FAILED)
    rows = list(
        CallbackDelivery.objects.filter(status__in=statuses)
        .values_list("status")
        .annotate(n=Count("*"), oldest=Min("created_at", filter=Q(status=CallbackDelivery.Status.PENDING)))
        .order_by()
    )
    return _backlog(statuses, rows)


def _backlog(statuses, rows) -> Backlog:
    by_status = dict.fromkeys((str(s) for s in statuses), 0)
    oldest = None
    for status, n, first in rows:
        by_status[status] = n
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return Backlog(by_status=by_status, oldest=oldest)


@dataclass(frozen=True)
class Verdict:
    model: str
    suite: str
    verdict: str
    received_at: datetime


def audit_verdicts(models: list[str]) -> list[Verdict]:
    """The latest verdict (a committee's decision on an inconclusive run counts)
    of every enabled suite on every model version in `models`: one query, two
    probes of the runs' (model_version, suite, -received_at) index per pair, so
    its cost follows versions × suites, never the number of runs."""
    if not models:
        return []
    qn = connection.ops.quote_name
    runs, versions, suites = (qn(m._meta.db_table) for m in (AuditRun, ModelVersion, AuditSuite))
    latest = (
        f"SELECT {{}} FROM {runs} r WHERE r.model_version_id = v.id AND r.suite_id = s.id "
        "ORDER BY r.received_at DESC, r.id DESC LIMIT 1"
    )
    verdict = latest.format("COALESCE(NULLIF(r.decided_verdict, ''), r.verdict)")
    received = latest.format("r.received_at")
    marks = ", ".join(["%s"] * len(models))
    sql = (
        f"SELECT v.ai_model, s.name, ({verdict}) AS verdict, ({received}) AS received_at "
        f"FROM {versions} v CROSS JOIN {suites} s "
        f"WHERE v.ai_model IN ({marks}) AND s.enabled = %s"
    )
    field = AuditRun._meta.get_field("received_at")
    converters = connection.ops.get_db_converters(field.get_col(AuditRun._meta.db_table))
    out = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [*models, True])
        for model, suite, verdict_value, received_at in cursor.fetchall():
            if verdict_value is None:
                continue  # never run
            for convert in converters:
                received_at = convert(received_at, field, connection)
            out.append(Verdict(model=model, suite=suite, verdict=verdict_value, received_at=received_at))
    return out


@dataclass(frozen=True)
class IndicatorValue:
    series: str
    labels: dict
    value: float
    at: datetime


def indicator_values() -> list[IndicatorValue]:
    """The latest point of every model and committee series (one query over the
    series table, indicators.selectors.latest_values). Per-reviewer series are not
    read at all: only operators and the chair may see them, and a scrape goes to
    whoever runs the Prometheus."""
    rows = indicator_selectors.latest_values(scopes=(Scope.MODEL, Scope.COMMITTEE))
    return [IndicatorValue(key, labels, value, at) for key, labels, value, at in rows if value is not None]


def open_alert_counts() -> dict[tuple[str, str, str], int]:
    """Alerts firing or acknowledged, counted by kind, state and the model an alert is
    about (one grouped query, indicators.selectors.alert_counts); never the member."""
    return indicator_selectors.alert_counts()
