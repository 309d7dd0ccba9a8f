"""A suite's criteria and schedule: checked when a suite is saved (so the committee
never approves one the gate could not use), evaluated when a run arrives."""

from __future__ import annotations

import math
import operator
import re
from datetime import datetime, timedelta

from croniter import croniter

from assurance.models import Source, Verdict

COMPARISONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_CRITERIA = 20
# What each source can measure (a criterion on another metric could never be met).
METRICS = {
    Source.BUILTIN: ("task_count", "failure_rate", "p95_ms", "cost_per_task", "held_share", "denied_share"),
    Source.PROMPTFOO: ("attack_success_rate", "pass_rate", "error_count", "test_count", "failure_count"),
    Source.GARAK: ("attack_success_rate", "pass_rate", "error_count", "test_count", "failure_count"),
}


def check_schedule(schedule: str) -> None:
    if not croniter.is_valid(schedule or ""):
        raise ValueError(f"schedule {schedule!r} is not cron syntax (five fields, e.g. '0 3 * * *')")


def check_criteria(criteria, *, source: str) -> None:
    if not isinstance(criteria, list) or not criteria:
        raise ValueError('criteria must be a non-empty list of {"metric", "comparison", "threshold"}')
    if len(criteria) > MAX_CRITERIA:
        raise ValueError(f"at most {MAX_CRITERIA} criteria")
    known = METRICS.get(source, ())
    for i, item in enumerate(criteria):
        where = f"criteria[{i}]"
        if not isinstance(item, dict) or set(item) != {"metric", "comparison", "threshold"}:
            raise ValueError(f"{where} must have exactly metric, comparison and threshold")
        if not isinstance(item["metric"], str) or not METRIC.match(item["metric"]):
            raise ValueError(f"{where}.metric must be lower case letters, digits and _")
        if item["metric"] not in known:
            raise ValueError(
                f"{where}.metric {item['metric']!r} is not measured by {source}: one of {', '.join(known)}"
            )
        if item["comparison"] not in COMPARISONS:
            raise ValueError(f"{where}.comparison must be one of {' '.join(COMPARISONS)}")
        threshold = item["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
            raise ValueError(f"{where}.threshold must be a finite number")


def check_suite(suite) -> None:
    """reviews.governed's check: raise ValueError naming what the gate could not use."""
    if suite.source not in Source.values:
        raise ValueError(f"source must be one of {', '.join(Source.values)}")
    check_schedule(suite.schedule)
    check_criteria(suite.criteria, source=suite.source)


def next_due(schedule: str, after: datetime) -> datetime:
    """The first scheduled time strictly after `after` (UTC)."""
    return croniter(schedule, after).get_next(datetime)


def overdue_at(schedule: str, grace_minutes: int, after: datetime) -> datetime:
    return next_due(schedule, after) + timedelta(minutes=grace_minutes)


def evaluate(criteria: list[dict], figures: dict) -> tuple[str, list[dict]]:
    """(verdict, per-criterion results). Any criterion missed → fail; else any metric
    missing → inconclusive (fail closed: never a pass on what was not measured)."""
    results = []
    missed = missing = False
    for item in criteria:
        value = figures.get(item["metric"])
        if value is None:
            outcome, missing = "missing", True
        elif COMPARISONS[item["comparison"]](value, item["threshold"]):
            outcome = "met"
        else:
            outcome, missed = "missed", True
        results.append({**item, "value": value, "outcome": outcome})
    if missed:
        return Verdict.FAIL, results
    if missing:
        return Verdict.INCONCLUSIVE, results
    return Verdict.PASS, results


def describe(result: dict) -> str:
    value = "missing" if result["value"] is None else f"{result['value']:g}"
    return f"{result['metric']} {result['comparison']} {result['threshold']:g} (was {value}): {result['outcome']}"
