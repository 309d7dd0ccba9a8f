"""Helpers for the tests of the indicator pages: series with points and a
detector reference, alerts fired through the service."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from indicators.catalog import SERIES, label_key
from indicators.models import AlertKind, Period, Point, Series
from indicators.services.alerts import alert_fire

DAY = timedelta(days=1)


def make_series(key: str, *, member=None, ai_model: str = "", task_type: str = "", ref=None, values=(), now=None):
    """A series of the catalog with daily `values` ending yesterday and, with
    `ref` = (mean, sd), the detector's reference in its state."""
    sdef = SERIES[key]
    labels = {}
    if sdef.scope == "model":
        labels = {"ai_model": ai_model or "coder-1", "task_type": task_type or "implement_idea"}
    elif sdef.scope == "reviewer":
        labels = {"member": str(member.pk)}
    series = Series.objects.create(
        key=key,
        label_key=label_key(labels),
        labels=labels,
        scope=sdef.scope,
        direction=sdef.direction,
        ai_model=labels.get("ai_model", ""),
        task_type=labels.get("task_type", ""),
        member=member,
        state={"ref": list(ref), "s": 0.2} if ref else {},
    )
    add_points(series, values, now=now)
    return series


def add_points(series: Series, values, *, now: datetime | None = None) -> None:
    today = (now or timezone.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - len(values) * DAY
    Point.objects.bulk_create(
        [Point(series=series, period=Period.DAY, start=start + i * DAY, value=v, n=50) for i, v in enumerate(values)]
    )


def drift_alert(series: Series, *, change_days_ago: int = 5):
    alert, _ = alert_fire(
        kind=AlertKind.DRIFT,
        dedup_key=f"drift:{series.key}:{series.label_key}",
        title=f"{SERIES[series.key].title} of {series.label_key} is up",
        series=series,
        ai_model=series.ai_model,
        value=2.4,
        threshold=1.75,
        change_at=timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - change_days_ago * DAY,
    )
    return alert


def reviewer_alert(member, series: Series | None = None):
    alert, _ = alert_fire(
        kind=AlertKind.TRUST_INFLATION,
        dedup_key=f"trust_inflation:member={member.pk}",
        title=f"Reviewer {member.get_username()}: approvals, speed and rationales moved together",
        series=series,
        member=member,
        value=4,
        threshold=0,
        change_at=timezone.now() - 4 * DAY,
        details={"moved": ["reviewer.approval_rate", "reviewer.vote_s", "reviewer.rationale_len"]},
    )
    return alert


def honeypot_alert(member, case_id: int = 424242):
    alert, _ = alert_fire(
        kind=AlertKind.HONEYPOT,
        dedup_key=f"honeypot:vote:{case_id}",
        title="A committee member approved a honeypot report",
        member=member,
        case_id=case_id,
    )
    return alert
