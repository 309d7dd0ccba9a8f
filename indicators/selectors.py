"""Reads: open alerts (for the gate, the dashboard, /metrics, the pages), the
latest value of every series, and series points over a range."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count

from indicators.models import OPEN_STATES, Alert, AlertState, Period, Point, Scope, Series


def model_alert_firing(ai_model: str) -> bool:
    """True when an alert about `ai_model` is firing or acknowledged but not
    resolved. One probe of a partial index on the open alerts (fsar/gate.py asks
    this only when a rule uses the condition)."""
    if not ai_model:
        return False
    return Alert.objects.filter(ai_model=ai_model, state__in=OPEN_STATES).exists()


def firing_alerts():
    """Open alerts (firing first, then acknowledged), newest first."""
    return (
        Alert.objects.filter(state__in=OPEN_STATES)
        .select_related("series", "member", "acknowledged_by")
        .order_by("-state", "-fired_at", "-id")  # "firing" > "acknowledged"
    )


def alert_counts() -> dict[tuple[str, str, str], int]:
    """{(kind, state, model): count} over open alerts, counted by the database (for
    /metrics: no alert rows, no joins). The model is "" for an alert about none."""
    rows = Alert.objects.filter(state__in=OPEN_STATES).values("kind", "state", "ai_model").annotate(n=Count("id"))
    return {(r["kind"], r["state"], r["ai_model"] or ""): r["n"] for r in rows}


def latest_values(*, scopes: tuple[str, ...] | None = None) -> list[tuple[str, dict, float, datetime]]:
    """The latest point of every series: (series key, labels, value, at). One
    query over the series table (the latest point is kept on the series)."""
    qs = Series.objects.filter(last_at__isnull=False)
    if scopes is not None:
        qs = qs.filter(scope__in=scopes)
    return [
        (s.key, dict(s.labels), s.last_value, s.last_at)
        for s in qs.order_by("key", "label_key").only("key", "labels", "last_value", "last_at")
    ]


def series_list(*, scopes: tuple[str, ...] = (Scope.MODEL, Scope.COMMITTEE, Scope.REVIEWER)):
    return Series.objects.filter(scope__in=scopes).select_related("member").order_by("scope", "key", "label_key")


def points(series: Series, *, period: str = Period.DAY, since: datetime | None = None, until: datetime | None = None):
    """A series' points in [since, until), oldest first: an index range."""
    qs = Point.objects.filter(series=series, period=period)
    if since is not None:
        qs = qs.filter(start__gte=since)
    if until is not None:
        qs = qs.filter(start__lt=until)
    return qs.order_by("start")


def alert_history(alert: Alert):
    return alert.events.select_related("actor").order_by("at", "id")


def open_alert(dedup_key: str) -> Alert | None:
    return Alert.objects.filter(dedup_key=dedup_key, state__in=OPEN_STATES).first()


__all__ = [
    "AlertState",
    "alert_counts",
    "alert_history",
    "firing_alerts",
    "latest_values",
    "model_alert_firing",
    "open_alert",
    "points",
    "series_list",
]
