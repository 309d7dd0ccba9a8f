"""Reads: which suites a version must pass, each suite's standing for a version
(last verdict, last pass, next due, overdue), the grid and the status API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from django.db.models import CharField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from assurance import criteria
from assurance.models import FAILING, AuditRun, AuditSuite, Verdict, VersionStanding
from deployments.models import ModelVersion

# A run that decided something: not an inconclusive one still waiting on its case.
DECISIVE = Q(verdict__in=[Verdict.PASS, Verdict.FAIL, Verdict.ERROR]) | ~Q(decided_verdict="")
PASSED = Q(verdict=Verdict.PASS, decided_verdict="") | Q(decided_verdict=Verdict.PASS)


def suites(*, enabled_only: bool = True):
    qs = AuditSuite.objects.all()
    return qs.filter(enabled=True) if enabled_only else qs


def suite_targets(suite: AuditSuite, *, family: str, ai_model: str) -> bool:
    return (not suite.family_glob or fnmatchcase(family, suite.family_glob)) and (
        not suite.ai_model_glob or fnmatchcase(ai_model, suite.ai_model_glob)
    )


def suites_for(version: ModelVersion, *, required_only: bool = False, all_suites=None) -> list[AuditSuite]:
    rows = all_suites if all_suites is not None else list(suites())
    return [
        s
        for s in rows
        if s.enabled
        and (s.required or not required_only)
        and suite_targets(s, family=version.family, ai_model=version.ai_model)
    ]


@dataclass(frozen=True)
class SuiteStanding:
    suite_id: int
    suite: str
    source: str
    required: bool
    action: str
    last_verdict: str | None  # the latest decisive run's (effective) verdict
    last_at: datetime | None
    last_run_id: int | None
    latest_verdict: str | None  # the latest run of any kind (an inconclusive one may wait on its case)
    latest_run_id: int | None
    latest_case_id: int | None
    last_pass_at: datetime | None
    due_at: datetime
    overdue_at: datetime

    def failing_reason(self) -> str:
        if self.last_verdict in FAILING:
            return f"audit suite {self.suite!r}: {self.last_verdict} on {self.last_at:%Y-%m-%d %H:%M} UTC"
        return ""

    def overdue(self, now: datetime) -> bool:
        return now >= self.overdue_at

    def overdue_reason(self) -> str:
        since = f"last pass {self.last_pass_at:%Y-%m-%d %H:%M} UTC" if self.last_pass_at else "never passed"
        return (
            f"audit suite {self.suite!r}: overdue ({since}; due {self.due_at:%Y-%m-%d %H:%M} UTC, "
            f"grace ended {self.overdue_at:%Y-%m-%d %H:%M} UTC)"
        )

    def demotion(self, now: datetime) -> str:
        return self.failing_reason() or (self.overdue_reason() if self.overdue(now) else "")

    def state(self, now: datetime) -> str:
        if self.failing_reason():
            return self.last_verdict or ""
        if self.overdue(now):
            return "overdue"
        if self.latest_verdict == Verdict.INCONCLUSIVE and self.latest_run_id != self.last_run_id:
            return "inconclusive"
        return self.last_verdict or "none"


def _latest(version_id: int, condition: Q | None, field: str):
    runs = AuditRun.objects.filter(model_version_id=version_id, suite_id=OuterRef("pk"))
    if condition is not None:
        runs = runs.filter(condition)
    return Subquery(runs.order_by("-received_at", "-id").values(field)[:1])


EFFECTIVE = Coalesce(NullIf("decided_verdict", Value("")), "verdict", output_field=CharField())


def standings(version: ModelVersion, suite_rows: list[AuditSuite]) -> list[SuiteStanding]:
    """Each suite's standing for `version`: one query (correlated subqueries on the
    runs' (ai_model, suite, received_at) index), whatever the number of runs."""
    if not suite_rows:
        return []
    effective = AuditRun.objects.filter(model_version_id=version.pk, suite_id=OuterRef("pk")).filter(DECISIVE)
    effective = effective.annotate(effective=EFFECTIVE).order_by("-received_at", "-id").values("effective")[:1]
    rows = (
        AuditSuite.objects.filter(pk__in=[s.pk for s in suite_rows])
        .annotate(
            last_verdict=Subquery(effective),
            last_at=_latest(version.pk, DECISIVE, "received_at"),
            last_run_id=_latest(version.pk, DECISIVE, "id"),
            latest_verdict=_latest(version.pk, None, "verdict"),
            latest_run_id=_latest(version.pk, None, "id"),
            latest_case_id=_latest(version.pk, None, "case_id"),
            last_pass_at=_latest(version.pk, PASSED, "received_at"),
        )
        .values(
            "pk",
            "name",
            "source",
            "required",
            "action",
            "schedule",
            "grace_minutes",
            "created_at",
            "last_verdict",
            "last_at",
            "last_run_id",
            "latest_verdict",
            "latest_run_id",
            "latest_case_id",
            "last_pass_at",
        )
    )
    out = []
    for row in sorted(rows, key=lambda r: r["name"]):
        base = row["last_pass_at"] or max(row["created_at"], version.registered_at)
        due = criteria.next_due(row["schedule"], base)
        out.append(
            SuiteStanding(
                suite_id=row["pk"],
                suite=row["name"],
                source=row["source"],
                required=row["required"],
                action=row["action"],
                last_verdict=row["last_verdict"],
                last_at=row["last_at"],
                last_run_id=row["last_run_id"],
                latest_verdict=row["latest_verdict"],
                latest_run_id=row["latest_run_id"],
                latest_case_id=row["latest_case_id"],
                last_pass_at=row["last_pass_at"],
                due_at=due,
                overdue_at=criteria.overdue_at(row["schedule"], row["grace_minutes"], base),
            )
        )
    return out


def required_standings(version: ModelVersion, *, all_suites=None) -> list[SuiteStanding]:
    return standings(version, suites_for(version, required_only=True, all_suites=all_suites))


def demotion(version: ModelVersion, *, now: datetime | None = None, all_suites=None) -> tuple[str, str]:
    """(action, reason) if a required suite demotes the version now, else ("", "").
    A suite that denies outranks one that holds."""
    now = now or timezone.now()
    found = [(s.action, s.demotion(now)) for s in required_standings(version, all_suites=all_suites)]
    found = [f for f in found if f[1]]
    if not found:
        return "", ""
    action = "deny" if any(a == "deny" for a, _ in found) else "hold"
    return action, "; ".join(reason for _, reason in found)


def missing_passes(version: ModelVersion) -> list[str]:
    """Required suites whose latest decisive run is not a pass (the model case's approval guard)."""
    return [s.suite for s in required_standings(version) if s.last_verdict != Verdict.PASS]


def version_by_ai_model(ai_model: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(ai_model=ai_model).first()


def run(run_id: int) -> AuditRun | None:
    return (
        AuditRun.objects.select_related("suite", "model_version", "case", "sent_by_key", "sent_by_user")
        .filter(pk=run_id)
        .first()
    )


def run_evidence(run_id: int):
    from assurance.models import AuditEvidence

    return AuditEvidence.objects.filter(run_id=run_id).first()


def suite_runs(suite: AuditSuite, limit: int = 50):
    return AuditRun.objects.filter(suite=suite).select_related("model_version")[:limit]


def grid(*, now: datetime | None = None, versions_limit: int = 50) -> dict:
    """Suites × model versions (the newest not retired), each cell the suite's standing."""
    now = now or timezone.now()
    suite_rows = list(suites())
    versions = list(ModelVersion.objects.exclude(status="retired").order_by("-id")[:versions_limit])
    rows = []
    for version in versions:
        by_suite = {s.suite_id: s for s in standings(version, suites_for(version, all_suites=suite_rows))}
        cells = []
        for suite in suite_rows:
            standing = by_suite.get(suite.pk)
            cells.append({"suite": suite, "standing": standing, "state": standing.state(now) if standing else "n/a"})
        rows.append({"version": version, "cells": cells})
    return {"suites": suite_rows, "rows": rows, "now": now}


def problems(*, now: datetime | None = None) -> list[dict]:
    """Failed and overdue required audits of versions that are approved (the dashboard)."""
    now = now or timezone.now()
    suite_rows = list(suites())
    out = []
    for version in ModelVersion.objects.filter(status="approved").order_by("-id")[:200]:
        for standing in required_standings(version, all_suites=suite_rows):
            reason = standing.demotion(now)
            if reason:
                out.append({"version": version, "standing": standing, "state": standing.state(now), "reason": reason})
    return out


def standing_row(version_id: int) -> VersionStanding | None:
    return VersionStanding.objects.filter(model_version_id=version_id).first()


# Built-in suites: FSAR's own task data -----------------------------------------

# held/denied share: over the model's last N registered tasks (the (ai_model, id) index).
GATE_SAMPLE = 1000
# cost per task: over the model's latest finished API tasks in the window, at most this many.
COST_SAMPLE = 5000


def builtin_figures(*, ai_model: str, since: datetime, until: datetime) -> dict:
    """The built-in metrics of `ai_model` over a window, without scanning the table:

    - task_count, failure_rate, p95_ms: tasks.metrics over the finished_at window
      (exact from the covering index for a small window, the hour/day rollups for a
      large one), for this model only;
    - cost_per_task (micros): the model's latest COST_SAMPLE finished API tasks in the
      window, an index range on (ai_model, finished_at) (the gate's partial index);
    - held_share, denied_share: the gate's decision on the model's last GATE_SAMPLE
      registered tasks (an index range on (ai_model, id)).
    """
    from django.db.models import Avg, Count
    from django.db.models import Q as _Q

    from tasks import metrics
    from tasks.models import ExecutionTask

    query = metrics.Query(window=metrics.Window(since, until), by_model=True, by_type=False, ai_model=ai_model)
    groups = metrics.aggregate(query)
    count = sum(s.count for s in groups.values())
    failed = sum(s.failed for s in groups.values())
    p95 = next((s.p95_ms for s in groups.values() if s.count), None) if len(groups) == 1 else None
    latest = (
        ExecutionTask.objects.filter(
            ai_model=ai_model,
            finished_at__gte=since,
            finished_at__lt=until,
            status__in=metrics.FINISHED,
            source="api",
        )
        .order_by("-finished_at", "-id")
        .values("id")[:COST_SAMPLE]
    )
    cost = ExecutionTask.objects.filter(pk__in=latest).aggregate(avg=Avg("cost_micros"))["avg"]
    recent = ExecutionTask.objects.filter(ai_model=ai_model).order_by("-id").values("id")[:GATE_SAMPLE]
    gate = ExecutionTask.objects.filter(pk__in=recent).aggregate(
        total=Count("id"),
        held=Count("id", filter=_Q(gate_decision="hold")),
        denied=Count("id", filter=_Q(gate_decision="deny")),
    )
    total = gate["total"] or 0
    return {
        "task_count": count,
        "failure_rate": round(failed / count, 4) if count else None,
        "p95_ms": round(p95, 1) if p95 is not None else None,
        "cost_per_task": round(cost, 1) if cost is not None else None,
        "held_share": round(gate["held"] / total, 4) if total else None,
        "denied_share": round(gate["denied"] / total, 4) if total else None,
    }
