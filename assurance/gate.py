"""The execution gate's audit check: is the task's model version demoted by a
required audit suite (its latest run failed or errored, or no pass arrived
within the schedule plus grace)?

Composed in fsar/gate.py after the model-version check (deployments), in both
`decide` and `recheck`. Cost: on a miss, the version and one query for its
suites' standings (correlated subqueries on an index); after that nothing, for
one `GateState.rules_version`. Every run, case decision and suite change
replaces that token (reviews' `rules_changed`), so every process reloads. An
overdue suite needs no write to take effect: the snapshot keeps the moment the
grace ends and the check compares it with the clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from assurance import selectors
from deployments.models import ModelVersion
from tasks.gate import GateDecision

AUDIT_POLICY = "audit-suite"
CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Entry:
    suite: str
    action: str
    failing: str  # the reason, if the latest decisive run failed or errored
    overdue_at: datetime
    overdue_reason: str


_lock = threading.Lock()
_cache: dict = {"version": None, "rows": {}, "suites": None}


def clear_cache() -> None:
    with _lock:
        _cache.update(version=None, rows={}, suites=None)


def _entries(ai_model: str, rules_version: str) -> tuple[Entry, ...] | None:
    if _cache["version"] == rules_version and ai_model in _cache["rows"]:
        return _cache["rows"][ai_model]
    suites = _cache["suites"] if _cache["version"] == rules_version and _cache["suites"] is not None else None
    if suites is None:
        suites = list(selectors.suites().filter(required=True))
    version = ModelVersion.objects.filter(ai_model=ai_model).only("pk", "family", "ai_model", "registered_at").first()
    entries = None
    if version is not None:
        entries = tuple(
            Entry(s.suite, s.action, s.failing_reason(), s.overdue_at, s.overdue_reason())
            for s in selectors.required_standings(version, all_suites=suites)
        )
    with _lock:
        if _cache["version"] != rules_version or len(_cache["rows"]) >= CACHE_MAX_ENTRIES:
            _cache.update(version=rules_version, rows={}, suites=suites)
        _cache["rows"][ai_model] = entries
    return entries


def audit_decision(ai_model: str | None, *, rules_version: str, now: datetime | None = None) -> GateDecision | None:
    """Hold or deny (as the suite says) a task on a demoted version; None lets the
    policy rules decide. The reason names each suite, its verdict and the date."""
    if not ai_model:
        return None
    entries = _entries(ai_model, rules_version)
    if not entries:
        return None
    now = now or timezone.now()
    found = []
    for entry in entries:
        reason = entry.failing or (entry.overdue_reason if now >= entry.overdue_at else "")
        if reason:
            found.append((entry.action, reason))
    if not found:
        return None
    action = "deny" if any(a == "deny" for a, _ in found) else "hold"
    why = f"model version {ai_model!r} is demoted by its audits: " + "; ".join(r for _, r in found)
    return GateDecision(action, why, AUDIT_POLICY, None)
