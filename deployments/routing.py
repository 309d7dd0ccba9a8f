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
from datetime import datetime, timedelta

from django.conf import settings
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


def choose_live(latest: Rollout | None, approved: list[ModelVersion], withdrawn: set[int], counts: dict):
    """live_version's rule over rows already read (the /models/ page reads them for
    every family at once)."""
    if latest is not None:
        version = latest.candidate if latest.state == RolloutState.PROMOTED else latest.stable
        if version.status == VersionStatus.APPROVED:
            return version
    approved = [v for v in approved if v.pk not in withdrawn]
    if not approved:
        return None
    return max(approved, key=lambda v: (counts.get(v.ai_model, 0), v.pk))


def choose_target(rollouts_newest_first: list[Rollout]) -> ModelVersion | None:
    """rollback_target's rule over a family's rollouts, newest first."""
    for r in rollouts_newest_first:
        if r.state in ACTIVE_STATES:
            return r.stable
    for r in rollouts_newest_first:
        if r.state == RolloutState.PROMOTED:
            return r.stable if r.stable.status == VersionStatus.APPROVED else None
    return None


def recent_counts(ai_models: list[str]) -> dict[str, int]:
    """Finished tasks per model over the last LIVE_DAYS (one grouped query)."""
    if not ai_models:
        return {}
    since = timezone.now() - timedelta(days=LIVE_DAYS)
    return dict(
        ExecutionTask.objects.filter(
            ai_model__in=ai_models, status__in=(TaskStatus.SUCCEEDED, TaskStatus.FAILED), finished_at__gte=since
        )
        .values("ai_model")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("ai_model", "n")
    )


def live_version(family: str, *, rollout: Rollout | None = None) -> ModelVersion | None:
    """The version that takes the family's traffic when no candidate does: after its
    latest rollout, that rollout's stable (active, rolled back, aborted) or its
    candidate (promoted), while approved; else (no rollout yet, or that version is
    no longer approved) the approved version, not a withdrawn candidate, that ran
    the most tasks over the last 7 days (then the newest)."""
    latest = rollout or (
        Rollout.objects.select_related("stable", "candidate").filter(family=family).order_by("-id").first()
    )
    if latest is not None:
        found = choose_live(latest, [], set(), {})
        if found is not None:
            return found
    withdrawn = Rollout.objects.filter(family=family, state__in=WITHDRAWN_STATES).values("candidate_id")
    approved = list(
        ModelVersion.objects.filter(family=family, status=VersionStatus.APPROVED)
        .exclude(pk__in=withdrawn)
        .order_by("-id")[:50]
    )
    counts = recent_counts([v.ai_model for v in approved]) if len(approved) > 1 else {}
    return choose_live(None, approved, set(), counts)


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


# ------------------------------------------------------------------ drills (reads)


def human_age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86_400:
        return f"{seconds // 86_400} days"
    if seconds >= 2 * 3_600:
        return f"{seconds // 3_600} hours"
    return f"{max(seconds // 60, 0)} minutes"


def last_finished(version: ModelVersion) -> RollbackDrill | None:
    return (
        RollbackDrill.objects.filter(target=version).exclude(state=RollbackDrill.State.RUNNING).order_by("-id").first()
    )


_UNREAD = object()


def drill_refusal(version: ModelVersion, *, now: datetime, last=_UNREAD) -> str | None:
    """Why `version` may not be a rollback target now (None: it passed a drill
    within ROLLOUT_DRILL_MAX_AGE). Says when the last drill ran and how it ended.
    `last`: its last finished drill when already read (None: it has none)."""
    max_age = timedelta(seconds=settings.ROLLOUT_DRILL_MAX_AGE)
    last = last_finished(version) if last is _UNREAD else last
    name = f"rollback target {version.ai_model!r}"
    if last is None:
        return f"{name} has no rollback drill; run one (it must pass within the last {human_age(max_age)})"
    when = f"{last.finished_at:%Y-%m-%d %H:%M} UTC"
    if last.state != RollbackDrill.State.PASS:
        return f"the last rollback drill of {name} (drill {last.pk}, at {when}) ended {last.state}: {last.reason}"
    age = now - last.finished_at
    if age > max_age:
        return (
            f"the last rollback drill of {name} (drill {last.pk}, at {when}) passed, but {human_age(age)} ago: "
            f"older than ROLLOUT_DRILL_MAX_AGE ({human_age(max_age)})"
        )
    return None


def step_deadline(rollout: Rollout):
    """When the current step's analysis is due at the latest (too few tasks: inconclusive)."""
    step = rollout.steps[rollout.step]
    return rollout.step_started_at + timedelta(minutes=step["deadline_minutes"])
