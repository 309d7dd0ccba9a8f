"""Reads for model versions: the /models/ list, a version's page, the panel on
its committee case, and the dashboard. Each list read makes the same number of
queries whatever the number of versions."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, QuerySet

from audit.models import AuditEntry
from deployments.models import ModelVersion, VersionStatus
from tasks import metrics
from tasks.models import ExecutionTask, TaskStatus

PAGE_SIZE = 100
# Metrics where a higher value is better; every other metric is better lower
# (failure rates, latencies, refusal rates, cost).
HIGHER_IS_BETTER_SUFFIXES = ("pass_rate", "success_rate", "accuracy", "score", "win_rate")


def higher_is_better(metric: str) -> bool:
    return metric.endswith(HIGHER_IS_BETTER_SUFFIXES)


def versions(*, family: str = "", status: str = "", before_id: int | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.select_related("case").order_by("-id")
    if family:
        qs = qs.filter(family=family)
    if status:
        qs = qs.filter(status=status)
    if before_id is not None:
        qs = qs.filter(pk__lt=before_id)
    return qs


def version_by_ai_model(ai_model: str) -> ModelVersion | None:
    if "\x00" in ai_model:  # never stored, and PostgreSQL refuses it in a query
        return None
    return ModelVersion.objects.select_related("case").filter(ai_model=ai_model).first()


def held_counts(case_ids: list[int]) -> dict[int, int]:
    """Tasks held on each of these cases: one grouped query on the (status, id) index."""
    if not case_ids:
        return {}
    rows = (
        ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_case__in=[str(c) for c in case_ids])
        .values("gate_case")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {int(row["gate_case"]): row["n"] for row in rows}


def finished_by_model(*, now: datetime, hours: int = 24) -> dict[str, metrics.Stats]:
    """Finished tasks per AI model over the last `hours` (the metrics engine: rollups when large)."""
    window = metrics.Window(now - timedelta(hours=hours), now)
    stats = metrics.aggregate(metrics.Query(window=window, by_model=True, by_type=False))
    return {ai_model: s for (_, _, ai_model), s in stats.items() if ai_model is not None}


def models_page(*, family: str, status: str, before_id: int | None, now: datetime, size: int = PAGE_SIZE) -> dict:
    """One page of versions, newest first, grouped by family in the template: status,
    approval expiry, case, tasks held on it and finished in the last 24 hours.
    Four queries whatever the number of versions (the page, held counts, and the
    metrics engine's one or two)."""
    rows = list(versions(family=family, status=status, before_id=before_id)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    held = held_counts([v.case_id for v in rows if v.case_id])
    finished = finished_by_model(now=now)
    for v in rows:
        v.held = held.get(v.case_id, 0) if v.case_id else 0
        v.last_24h = finished.get(v.ai_model)
        v.approval_lapsed = bool(v.approved_until and v.approved_until <= now)
    rows.sort(key=lambda v: (v.family, -v.pk))
    return {"versions": rows, "next_before": rows[-1].pk if more and rows else None}


def approved_peer(version: ModelVersion) -> ModelVersion | None:
    """The family's currently approved version (the newest one), other than `version`."""
    return (
        ModelVersion.objects.filter(family=version.family, status=VersionStatus.APPROVED)
        .exclude(pk=version.pk)
        .order_by("-id")
        .first()
    )


def number_text(value: float | None, *, signed: bool = False) -> str:
    """A metric as a person reads it: 0.03, 4200, 0.9525 (six significant digits at most)."""
    if value is None:
        return ""
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def evaluation_diff(current: dict, baseline: dict | None) -> list[dict]:
    """Per metric: this version's value, the baseline's, the difference, and whether it is worse."""
    baseline = baseline or {}
    rows = []
    for name in sorted(set(current) | set(baseline)):
        value, base = current.get(name), baseline.get(name)
        delta = value - base if value is not None and base is not None else None
        worse = None
        if delta is not None and delta != 0:
            worse = delta < 0 if higher_is_better(name) else delta > 0
        rows.append(
            {
                "name": name,
                "value": value,
                "baseline": base,
                "delta": delta,
                "value_text": number_text(value),
                "baseline_text": number_text(base),
                "delta_text": number_text(None if delta is None else round(delta, 10), signed=True),
                "worse": worse,
                "better_when": "higher" if higher_is_better(name) else "lower",
            }
        )
    return rows


def family_metrics(version: ModelVersion, *, now: datetime, days: int = 7) -> list[dict]:
    """The family's finished tasks over the last `days`, per version (the metrics engine)."""
    names = dict(ModelVersion.objects.filter(family=version.family).values_list("ai_model", "status"))
    window = metrics.Window(now - timedelta(days=days), now)
    stats = metrics.aggregate(metrics.Query(window=window, by_model=True, by_type=False))
    rows = [
        {"ai_model": ai_model, "status": names[ai_model], **s.figures()}
        for (_, _, ai_model), s in stats.items()
        if ai_model in names
    ]
    return sorted(rows, key=lambda r: r["ai_model"])


def chain_entries(version: ModelVersion) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(subject=f"model_version:{version.pk}").order_by("seq"))


def version_page(version: ModelVersion, *, now: datetime) -> dict:
    peer = approved_peer(version)
    return {
        "version": version,
        "peer": peer,
        "diff": evaluation_diff(version.evaluation, peer.evaluation if peer else None),
        "history": list(version.history.select_related("history_user", "history_api_key").order_by("-history_date")),
        "chain": chain_entries(version),
        "held": held_counts([version.case_id]).get(version.case_id, 0) if version.case_id else 0,
        "family_metrics": family_metrics(version, now=now),
        "approval_lapsed": bool(version.approved_until and version.approved_until <= now),
    }


def case_panel(*, case, user, now: datetime | None = None) -> dict:
    """What the committee sees about a model version on its case page."""
    from django.utils import timezone

    from deployments.models import version_id_of

    version = ModelVersion.objects.filter(pk=version_id_of(case.subject_ref)).first()
    if version is None:
        return {"version": None}
    now = now or timezone.now()
    peer = approved_peer(version)
    return {
        "version": version,
        "peer": peer,
        "diff": evaluation_diff(version.evaluation, peer.evaluation if peer else None),
        "family_metrics": family_metrics(version, now=now),
    }


def dashboard_context() -> dict:
    """Versions waiting for the committee, with the tasks held on each, and tasks held
    because their model version is not registered."""
    from deployments.gate import UNREGISTERED_POLICY

    waiting = list(
        ModelVersion.objects.filter(status=VersionStatus.PENDING_REVIEW).select_related("case").order_by("-id")[:20]
    )
    held = held_counts([v.case_id for v in waiting if v.case_id])
    for v in waiting:
        v.held = held.get(v.case_id, 0)
    unregistered = ExecutionTask.objects.filter(status=TaskStatus.HELD, gate_policy=UNREGISTERED_POLICY).count()
    from django.utils import timezone

    from deployments.models import ACTIVE_STATES, Rollout

    return {
        "models_waiting": waiting,
        "models_unregistered_held": unregistered,
        "drills_failed": failed_drills(now=timezone.now()),
        "rollouts_active": list(
            Rollout.objects.filter(state__in=ACTIVE_STATES).select_related("candidate", "stable").order_by("family")
        ),
    }


# ------------------------------------------------------------------ rollouts


def rollout_chart(analyses: list) -> dict:
    """Candidate against stable per analysis (x: the window's end, UTC seconds), with
    the threshold each was held to: failure rate and p95 (json_script data)."""
    x, cand_rate, stable_rate, rate_limit, cand_p95, stable_p95, p95_limit = [], [], [], [], [], [], []
    for a in analyses:
        limits = {row["criterion"]: row.get("limit") for row in a.figures.get("criteria", [])}
        cand, stable = a.figures.get("candidate", {}), a.figures.get("stable", {})
        x.append(int(a.window_end.timestamp()))
        cand_rate.append(cand.get("failure_rate"))
        stable_rate.append(stable.get("failure_rate"))
        rate_limit.append(limits.get("failure_rate"))
        cand_p95.append(cand.get("p95_ms"))
        stable_p95.append(stable.get("p95_ms"))
        p95_limit.append(limits.get("p95_ms"))
    return {
        "x": x,
        "rate": {"candidate": cand_rate, "stable": stable_rate, "limit": rate_limit},
        "p95": {"candidate": cand_p95, "stable": stable_p95, "limit": p95_limit},
    }


def rollout_page(rollout, *, now: datetime) -> dict:
    from deployments import routing
    from deployments.models import RollbackDrill

    analyses = list(rollout.analyses.select_related("case").order_by("id"))
    history = list(rollout.history.select_related("history_user").order_by("history_date"))
    steps = []
    for index, step in enumerate(rollout.steps):
        done = [a for a in analyses if a.step == index]
        steps.append({"n": index + 1, **step, "current": index == rollout.step and rollout.active, "analyses": done})
    return {
        "rollout": rollout,
        "steps": steps,
        "analyses": analyses,
        "chart": rollout_chart(analyses),
        "history": history,
        "chain": list(AuditEntry.objects.filter(subject=f"rollout:{rollout.pk}").order_by("seq")),
        "drills": list(
            RollbackDrill.objects.filter(target=rollout.stable).select_related("target").order_by("-id")[:20]
        ),
        "drill_refusal": routing.drill_refusal(rollout.stable, now=now),
        "deadline": routing.step_deadline(rollout) if rollout.active and rollout.step >= 0 else None,
        "live": routing.live_version(rollout.family),
    }


def families_overview(families: list[str], *, now: datetime) -> list[dict]:
    """Per family: its live split (candidate weight), the active rollout, the rollback
    target and that target's last drill, and the approved versions a rollout may take.
    Six queries whatever the number of families (routing's rules over rows read at once)."""
    from deployments import routing
    from deployments.models import ACTIVE_STATES, WITHDRAWN_STATES, RollbackDrill, Rollout

    families = sorted(set(families))
    if not families:
        return []
    by_family: dict[str, list] = {f: [] for f in families}
    for r in Rollout.objects.filter(family__in=families).select_related("stable", "candidate").order_by("-id"):
        by_family[r.family].append(r)
    approved: dict[str, list] = {f: [] for f in families}
    for v in ModelVersion.objects.filter(family__in=families, status=VersionStatus.APPROVED).order_by("-id"):
        approved[v.family].append(v)
    counts = routing.recent_counts([v.ai_model for vs in approved.values() for v in vs])
    running_drills = RollbackDrill.objects.filter(family__in=families, state=RollbackDrill.State.RUNNING)
    running = {d.family: d for d in running_drills.select_related("target")}
    rows, targets = [], {}
    for family in families:
        history = by_family[family]
        active = next((r for r in history if r.state in ACTIVE_STATES), None)
        withdrawn = {r.candidate_id for r in history if r.state in WITHDRAWN_STATES}
        live = routing.choose_live(history[0] if history else None, approved[family], withdrawn, counts)
        target = routing.choose_target(history) or live
        if target is not None:
            targets[target.pk] = None
        rows.append(
            {
                "family": family,
                "rollout": active,
                "live": live,
                "weight": active.weight if active else 0,
                "stable_weight": 100 - (active.weight if active else 0),
                "target": target,
                "running_drill": running.get(family),
                "candidates": [v for v in approved[family][:20] if live is None or v.pk != live.pk],
                "recent": history[:5],
            }
        )
    finished = RollbackDrill.objects.filter(target_id__in=list(targets)).exclude(state=RollbackDrill.State.RUNNING)
    for drill in finished.order_by("id"):
        targets[drill.target_id] = drill
    for row in rows:
        target = row["target"]
        row["last_drill"] = targets.get(target.pk) if target else None
        row["refusal"] = (
            routing.drill_refusal(target, now=now, last=row["last_drill"]) if target and not row["rollout"] else None
        )
    return rows


def failed_drills(*, now: datetime, days: int = 7) -> list:
    """Rollback drills that failed in the last `days` and have not passed since (the dashboard)."""
    from deployments.models import RollbackDrill

    recent = RollbackDrill.objects.filter(finished_at__gte=now - timedelta(days=days)).select_related("target")
    latest: dict[int, RollbackDrill] = {}
    for drill in recent.order_by("id"):
        latest[drill.target_id] = drill
    return [d for d in latest.values() if d.state == RollbackDrill.State.FAIL]
