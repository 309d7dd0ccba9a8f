"""The analysis at each step of a rollout: candidate against stable over the
step's window (deployments.figures), stored with its figures, and what follows:

- pass → the next step (at once when the rollout's `auto_promote`, else the
  rollout waits for an operator's promote), or `promoted` after the last step;
- fail → automatic rollback (deployments.rollouts.rollout_rollback);
- inconclusive (fewer finished candidate tasks than the step's minimum by its
  deadline, too few on either side for the minimum sample, or a metric missing)
  → paused, and a committee case (kind `rollout`) is opened.

Run by the periodic loop (`deployments.jobs.rollouts_tick`, every minute).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from deployments import figures, rollouts
from deployments.drills import CASE_KIND
from deployments.models import Rollout, RolloutAnalysis, RolloutState, Verdict
from reviews import services as review_services

logger = logging.getLogger(__name__)


def subject_ref(rollout_id: int, step: int) -> str:
    return f"rollout:{rollout_id}:step:{step}"


def rollout_analyze(*, rollout_id: int, now=None) -> RolloutAnalysis | None:
    """Analyse the current step if it is due: its minimum duration passed and its
    minimum of candidate tasks finished, or its deadline passed. None when not due
    (or the rollout is not progressing, or waits for an operator's confirm)."""
    now = now or timezone.now()
    with transaction.atomic():
        rollout = rollouts._locked(rollout_id)
        if rollout.state != RolloutState.PROGRESSING or rollout.awaiting_confirm:
            return None
        step = rollout.steps[rollout.step]
        start = rollout.step_started_at
        if now < start + timedelta(minutes=step["min_minutes"]):
            return None
        candidate = figures.window_stats(rollout.candidate.ai_model, start, now)
        deadline = rollouts.step_deadline(rollout)
        if candidate["count"] < step["min_tasks"] and now < deadline:
            return None
        stable = figures.window_stats(rollout.stable.ai_model, start, now)
        t = figures.thresholds(rollout.thresholds)
        if candidate["count"] < step["min_tasks"]:
            verdict = Verdict.INCONCLUSIVE
            reason = (
                f"only {candidate['count']} of {step['min_tasks']} candidate tasks finished "
                f"by the step's deadline ({deadline:%Y-%m-%d %H:%M} UTC)"
            )
            _, _, criteria = figures.compare(candidate, stable, t, min_sample=t["min_sample"])
        else:
            verdict, reason, criteria = figures.compare(candidate, stable, t, min_sample=t["min_sample"])
        found = RolloutAnalysis.objects.create(
            rollout=rollout,
            step=rollout.step,
            weight=rollout.weight,
            window_start=start,
            window_end=now,
            verdict=verdict,
            reason=reason,
            figures={"candidate": candidate, "stable": stable, "thresholds": t, "criteria": criteria},
            created_at=now,
        )
        label = f"analysis {found.pk} of step {rollout.step + 1} ({rollout.weight}%)"
        if verdict == Verdict.PASS:
            if rollout.auto_promote:
                rollouts.advance(rollout, by=None, reason=f"{label} passed: {reason}", now=now)
            else:
                rollout.awaiting_confirm = True
                rollouts._record(rollout, "analysis_passed", by=None, reason=f"{label} passed; waiting for an operator")
        elif verdict == Verdict.FAIL:
            rollouts.rollout_rollback(rollout_id=rollout.pk, reason=f"{label} failed: {reason}", now=now)
        else:
            found.case = review_services.subject_case_open(
                kind=CASE_KIND,
                subject_ref=subject_ref(rollout.pk, rollout.step),
                title=f"Rollout {rollout.pk} of {rollout.family}: step {rollout.step + 1} inconclusive",
                reason=reason,
                quorum=1,
                sla_hours=24,
                rule_name="rollout-analysis",
                severity=30,
                actor="system",
            )
            found.save(update_fields=["case"])
            rollouts.rollout_pause(rollout_id=rollout.pk, reason=f"{label} inconclusive: {reason}", actor="system")
        return found


def analyze_rollouts(*, now=None) -> int:
    """Periodic: every progressing rollout's due analysis. Returns how many ran."""
    ids = Rollout.objects.filter(state=RolloutState.PROGRESSING, awaiting_confirm=False).values_list("pk", flat=True)
    ran = 0
    for rollout_id in list(ids):
        try:
            ran += rollout_analyze(rollout_id=rollout_id, now=now) is not None
        except Exception:  # one broken rollout must not stop the others' analyses; retried next tick
            logger.exception("analysis of rollout %s failed", rollout_id)
    return ran
