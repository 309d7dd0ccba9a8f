"""Which version of a family a request goes to: deterministic, by a hash of the
caller's key, never a random draw.

A key's bucket is the first 8 bytes of SHA-256(family NUL key) modulo 10,000.
The candidate of the family's active rollout takes the buckets below
`weight × 100`; a running rollback drill takes the top `share × 100` buckets
for its target; the rest go to the live version. So raising the weight only
adds buckets: a key on the candidate at 25% is on it at 50% too.

Reads only (no writes): the route API and the pages call these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from deployments.models import (
    ACTIVE_STATES,
    WITHDRAWN_STATES,
    ModelVersion,
    RollbackDrill,
    Rollout,
    RolloutState,
    VersionStatus,
)
from tasks.models import ExecutionTask, TaskStatus

BUCKETS = 10_000
LIVE_DAYS = 7


def bucket(family: str, key: str) -> int:
    """0 to 9,999, the same for the same family and key in every process."""
    digest = hashlib.sha256(f"{family}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def active_rollout(family: str) -> Rollout | None:
    return (
        Rollout.objects.select_related("stable", "candidate")
        .filter(family=family, state__in=ACTIVE_STATES)
        .order_by("-id")
        .first()
    )


def last_promoted(family: str) -> Rollout | None:
    return (
        Rollout.objects.select_related("stable", "candidate")
        .filter(family=family, state=RolloutState.PROMOTED)
        .order_by("-id")
        .first()
    )


def live_version(family: str, *, rollout: Rollout | None = None) -> ModelVersion | None:
    """The version that takes the family's traffic when no candidate does: after its
    latest rollout, that rollout's stable (active, rolled back, aborted) or its
    candidate (promoted), while approved; else (no rollout yet, or that version is
    no longer approved) the family's newest approved version that is not a
    withdrawn candidate and ran the most tasks over the last 7 days (then the newest)."""
    latest = rollout or (
        Rollout.objects.select_related("stable", "candidate").filter(family=family).order_by("-id").first()
    )
    if latest is not None:
        version = latest.candidate if latest.state == RolloutState.PROMOTED else latest.stable
        if version.status == VersionStatus.APPROVED:
            return version
    withdrawn = Rollout.objects.filter(family=family, state__in=WITHDRAWN_STATES).values("candidate_id")
    approved = list(
        ModelVersion.objects.filter(family=family, status=VersionStatus.APPROVED)
        .exclude(pk__in=withdrawn)
        .order_by("-id")[:50]
    )
    if len(approved) <= 1:
        return approved[0] if approved else None
    # What the family actually runs: the most finished tasks over the last 7 days, then the newest.
    since = timezone.now() - timedelta(days=LIVE_DAYS)
    counts = dict(
        ExecutionTask.objects.filter(
            ai_model__in=[v.ai_model for v in approved],
            status__in=(TaskStatus.SUCCEEDED, TaskStatus.FAILED),
            finished_at__gte=since,
        )
        .values("ai_model")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("ai_model", "n")
    )
    return max(approved, key=lambda v: (counts.get(v.ai_model, 0), v.pk))


def rollback_target(family: str) -> ModelVersion | None:
    """What the family falls back to: the stable of its active rollout; after a
    promotion, the previous stable (while approved); None when there is none."""
    rollout = active_rollout(family)
    if rollout is not None:
        return rollout.stable
    promoted = last_promoted(family)
    if promoted is not None and promoted.stable.status == VersionStatus.APPROVED:
        return promoted.stable
    return None


def running_drill(family: str) -> RollbackDrill | None:
    return (
        RollbackDrill.objects.select_related("target")
        .filter(family=family, state=RollbackDrill.State.RUNNING)
        .order_by("-id")
        .first()
    )


@dataclass(frozen=True)
class Route:
    ai_model: str
    role: str  # "candidate", "stable" or "drill"
    rollout: int | None
    weight: int  # the candidate's weight now, in percent (0 without an active rollout)
    bucket: int


def route(family: str, key: str) -> Route | None:
    """The version `key` goes to now (None: the family has no approved version)."""
    b = bucket(family, key)
    rollout = active_rollout(family)
    weight = rollout.weight if rollout is not None else 0
    if rollout is not None and b < weight * (BUCKETS // 100):
        return Route(rollout.candidate.ai_model, "candidate", rollout.pk, weight, b)
    live = live_version(family, rollout=rollout)
    drill = running_drill(family)
    if drill is not None and drill.target_id != getattr(live, "pk", None):
        if b >= BUCKETS - round(drill.share * (BUCKETS // 100)):
            return Route(drill.target.ai_model, "drill", rollout.pk if rollout else None, weight, b)
    if live is None:
        return None
    return Route(live.ai_model, "stable", rollout.pk if rollout else None, weight, b)
