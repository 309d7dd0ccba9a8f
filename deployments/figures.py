"""The figures a rollout analysis and a rollback drill compare: per version, over a
window, its finished tasks' count, failure rate, p95 duration (PostgreSQL's
`percentile_cont`, as the metrics pages: tasks.metrics.percentile_cont) and mean
cost per task; and the verdict of candidate against baseline under thresholds
relative to the baseline. Reads only."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from tasks.metrics import percentile_cont
from tasks.models import ExecutionTask, TaskStatus

CRITERIA = ("failure_rate", "p95_ms", "mean_cost_micros")


def window_stats(ai_model: str, start: datetime, end: datetime) -> dict:
    """Finished tasks (succeeded or failed) of `ai_model` with start ≤ finished_at < end."""
    rows = ExecutionTask.objects.filter(
        ai_model=ai_model,
        status__in=(TaskStatus.SUCCEEDED, TaskStatus.FAILED),
        finished_at__gte=start,
        finished_at__lt=end,
    ).values_list("status", "duration_ms", "cost_micros")
    count = failed = 0
    durations, costs = [], []
    for status, duration, cost in rows.iterator():
        count += 1
        failed += status == TaskStatus.FAILED
        if duration is not None:
            durations.append(duration)
        if cost is not None:
            costs.append(cost)
    durations.sort()
    p95 = percentile_cont(durations, 0.95)
    return {
        "ai_model": ai_model,
        "count": count,
        "failed": failed,
        "failure_rate": round(failed / count, 6) if count else None,
        "p95_ms": round(p95, 3) if p95 is not None else None,
        "mean_cost_micros": round(sum(costs) / len(costs), 3) if costs else None,
    }


def thresholds(overrides: dict | None = None) -> dict:
    """The thresholds relative to the baseline (settings, overridden per rollout)."""
    values = {
        "failure_ratio": settings.ROLLOUT_MAX_FAILURE_RATIO,
        "failure_slack": settings.ROLLOUT_FAILURE_RATE_SLACK,
        "p95_ratio": settings.ROLLOUT_MAX_P95_RATIO,
        "cost_ratio": settings.ROLLOUT_MAX_COST_RATIO,
        "min_sample": settings.ROLLOUT_MIN_SAMPLE,
    }
    values.update({k: v for k, v in (overrides or {}).items() if k in values})
    return values


def limit(criterion: str, baseline: float, t: dict) -> float:
    """The highest value of `criterion` that passes against `baseline`."""
    if criterion == "failure_rate":
        return max(baseline * t["failure_ratio"], baseline + t["failure_slack"])
    if criterion == "p95_ms":
        return baseline * t["p95_ratio"]
    return baseline * t["cost_ratio"]


def compare(
    candidate: dict, baseline: dict, t: dict, *, min_sample: int, criteria: tuple[str, ...] = CRITERIA
) -> tuple[str, str, list[dict]]:
    """(verdict, reason, per-criterion rows). Fail if any criterion is over its limit;
    else inconclusive if a side has fewer than `min_sample` tasks or a metric is
    missing; else pass."""
    rows, over, missing = [], [], []
    for name in criteria:
        value, base = candidate.get(name), baseline.get(name)
        if value is None or base is None:
            rows.append({"criterion": name, "candidate": value, "baseline": base, "limit": None, "result": "missing"})
            missing.append(name)
            continue
        top = limit(name, base, t)
        ok = value <= top
        rows.append(
            {
                "criterion": name,
                "candidate": value,
                "baseline": base,
                "limit": round(top, 6),
                "result": "pass" if ok else "fail",
            }
        )
        if not ok:
            over.append(f"{name} {value:g} > {top:g} (baseline {base:g})")
    few = [
        f"{side} has {figures.get('count', 0)} finished tasks (minimum {min_sample})"
        for side, figures in (("candidate", candidate), ("baseline", baseline))
        if figures.get("count", 0) < min_sample
    ]
    if over and not few:
        return "fail", "; ".join(over), rows
    if few or missing:
        parts = few + ([f"missing: {', '.join(missing)}"] if missing else [])
        return "inconclusive", "; ".join(parts), rows
    return (
        "pass",
        "every criterion within its threshold: "
        + ", ".join(f"{r['criterion']} {r['candidate']:g} ≤ {r['limit']:g}" for r in rows),
        rows,
    )
