"""RQ jobs of the tasks app. Each is safe to run twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from tasks import rollups, services

REPAIR_WINDOW = timedelta(hours=48)


def fail_abandoned_tasks() -> int:
    return services.fail_abandoned_tasks()


def drain_metrics_pending() -> int:
    """Add the tasks finished since the last run to the metrics rollups (tasks.rollups)."""
    return rollups.drain_pending()


def rebuild_metrics_rollups(since: datetime | str | None = None, until: datetime | str | None = None) -> int:
    """Recompute the metrics rollups of every UTC day overlapping [since, until) from
    the raw rows (default: the last 48 hours, run nightly). Idempotent; returns the
    number of finished tasks counted. Accepts ISO 8601 strings, as RQ stores arguments."""
    until = _moment(until) or timezone.now()
    since = _moment(since) or until - REPAIR_WINDOW
    return rollups.rebuild(since, until)


def _moment(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value
