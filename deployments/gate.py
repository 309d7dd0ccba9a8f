"""The execution gate's model check: may a task run on its `ai_model`?

Composed in fsar/gate.py before the policy rules. It costs at most one indexed
query per registration (the version by its unique `ai_model`), and none once a
process has seen the version: answers are cached per process for one
`GateState.rules_version`, which every change of a version's status (and of
the policy) replaces, so every process reloads as it does its rules.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from deployments.models import DENIED_STATUSES, ModelVersion, VersionStatus
from tasks.gate import GateDecision, require_transaction

MODEL_POLICY = "model-version"
UNREGISTERED_POLICY = "model-unregistered"
UNREGISTERED_CHOICES = ("hold", "deny", "allow")
# An adversary can name any number of versions; the cache forgets them all past this.
CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Snapshot:
    """What the gate needs to know about one version."""

    pk: int
    ai_model: str
    status: str
    status_reason: str
    case_id: int | None
    approved_until: datetime | None


_lock = threading.Lock()
_cache: dict = {"version": None, "rows": {}}


def clear_cache() -> None:
    with _lock:
        _cache["version"] = None
        _cache["rows"] = {}
        _routes["version"] = None
        _routes["denied"] = {}


def snapshot(ai_model: str, *, rules_version: str) -> Snapshot | None:
    """The version named `ai_model` (None: not registered), cached for `rules_version`."""
    rows = _cache["rows"]
    if _cache["version"] == rules_version and ai_model in rows:
        return rows[ai_model]
    snap = _read(ModelVersion.objects.filter(ai_model=ai_model), ai_model)
    with _lock:
        if _cache["version"] != rules_version or len(_cache["rows"]) >= CACHE_MAX_ENTRIES:
            _cache["version"] = rules_version
            _cache["rows"] = {}
        _cache["rows"][ai_model] = snap
    return snap


def _read(queryset, ai_model: str) -> Snapshot | None:
    found = queryset.values_list("pk", "status", "status_reason", "case_id", "approved_until").first()
    return Snapshot(found[0], ai_model, *found[1:]) if found else None


def locked(snap: Snapshot) -> Snapshot:
    """The version as it is now, its row locked until the registration commits. A
    decision on the version's case locks the same row (its case_changed receiver)
    before it releases the tasks held on the case, so a task held here is either
    committed before that decision looks for held tasks, or decided after it with
    the new status: never left held on a decided case."""
    require_transaction()
    return _read(ModelVersion.objects.select_for_update().filter(pk=snap.pk), snap.ai_model) or snap


def unregistered_mode() -> str:
    return getattr(settings, "MODELS_UNREGISTERED", "hold")


def model_decision(ai_model: str | None, *, rules_version: str, now: datetime | None = None) -> GateDecision | None:
    """The gate's answer from the model alone, or None to let the policy rules decide.

    pending review → hold on the version's case; an approval that lapsed → hold on
    it (continuing review); rejected, blocked, revoked, retired → deny; not
    registered → settings.MODELS_UNREGISTERED (hold, deny or allow)."""
    if not ai_model:
        return None
    snap = snapshot(ai_model, rules_version=rules_version)
    if snap is None:
        mode = unregistered_mode()
        if mode == "allow":
            return None
        why = (
            f"model version {ai_model!r} is not registered: register the version "
            "(POST /api/v1/models/versions) for the committee to review it"
        )
        return GateDecision("deny" if mode == "deny" else "hold", why, UNREGISTERED_POLICY, None)
    now = now or timezone.now()
    if _holds(snap, now):
        snap = locked(snap)
    case = str(snap.case_id) if snap.case_id else None
    if snap.status in DENIED_STATUSES:
        why = f"model version {ai_model!r} is {snap.status}"
        return GateDecision("deny", f"{why}: {snap.status_reason}" if snap.status_reason else why, MODEL_POLICY, case)
    if snap.status == VersionStatus.PENDING_REVIEW:
        waiting = f"waiting on case {case}" if case else "no case is open for it"
        return GateDecision("hold", f"model version {ai_model!r} is pending review; {waiting}", MODEL_POLICY, case)
    if snap.approved_until is not None and snap.approved_until <= now:
        return GateDecision(
            "hold",
            f"the approval of model version {ai_model!r} lapsed at {snap.approved_until:%Y-%m-%d %H:%M} UTC; "
            f"continuing review on case {case}",
            MODEL_POLICY,
            case,
        )
    return route_decision(ai_model, rules_version=rules_version)


ROUTE_POLICY = "rollout"
_routes: dict = {"version": None, "denied": {}}


def unrouted(rules_version: str) -> dict[str, str]:
    """Candidates that get no traffic now, each with why: a rollout pending or at 0%,
    or rolled back or aborted (and not rolled out again since). Read in one query
    per rules version (every rollout transition replaces it), then from memory."""
    if _routes["version"] == rules_version:
        return _routes["denied"]
    from deployments.models import ACTIVE_STATES, WITHDRAWN_STATES, Rollout

    denied: dict[str, str] = {}
    rows = Rollout.objects.order_by("id").values_list(
        "pk", "family", "candidate__ai_model", "state", "weight", "reason"
    )
    for pk, family, ai_model, state, weight, reason in rows:
        if state in WITHDRAWN_STATES:
            event = "rolled back" if state == "rolled_back" else "aborted"
            denied[ai_model] = f"not routed: rollout {pk} of {family} was {event}: {reason}"
        elif state in ACTIVE_STATES and weight == 0:
            denied[ai_model] = f"not routed: rollout {pk} of {family} gives the candidate 0% ({state})"
        else:
            denied.pop(ai_model, None)
    with _lock:
        _routes["version"] = rules_version
        _routes["denied"] = denied
    return denied


def route_decision(ai_model: str, *, rules_version: str) -> GateDecision | None:
    """Deny a task on a rollout candidate that has no traffic now ("not routed"),
    so the AI side cannot send a candidate more than it was given."""
    why = unrouted(rules_version).get(ai_model)
    return GateDecision("deny", why, ROUTE_POLICY, None) if why else None


def _holds(snap: Snapshot, now: datetime) -> bool:
    return snap.status == VersionStatus.PENDING_REVIEW or (
        snap.status == VersionStatus.APPROVED and snap.approved_until is not None and snap.approved_until <= now
    )
