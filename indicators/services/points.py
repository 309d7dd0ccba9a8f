"""Computing and storing a bucket's points (docs/indicators.md, "Series").

`bucket_compute(period, start)` reads the bucket's observations by index ranges
(indicators.sources), computes every series' point (indicators.observations)
and writes them: recomputing a bucket overwrites it (its points are replaced,
series without observations in it lose theirs), so the periodic job may run it
any number of times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from indicators import sources
from indicators.catalog import SERIES
from indicators.models import Period, Point, Series
from indicators.observations import DUPLICATE_LOOKBACK, Points, committee_points, points_of_groups, reviewer_points

LENGTH = {Period.HOUR: timedelta(hours=1), Period.DAY: timedelta(days=1)}


def bucket_start(period: str, moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    if period == Period.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_observations(start: datetime, end: datetime) -> Points:
    """Every series' point over [start, end), from the database."""
    points = points_of_groups(sources.model_groups(start, end))
    votes = sources.votes(start, end)
    points.update(committee_points(sources.decided_cases(start, end), sources.due_cases(start, end), votes))
    earlier = sources.votes(start - DUPLICATE_LOOKBACK, start)
    points.update(reviewer_points(votes, earlier))
    return points


def series_for(key: str, label_key: str, labels: dict, *, cache: dict | None = None) -> Series:
    """The Series row of (key, labels), created on first sight."""
    if cache is not None and (key, label_key) in cache:
        return cache[(key, label_key)]
    sdef = SERIES[key]
    member = None
    if "member" in labels:
        member = get_user_model().objects.filter(pk=int(labels["member"])).first()
    series, _ = Series.objects.get_or_create(
        key=key,
        label_key=label_key,
        defaults={
            "labels": labels,
            "scope": sdef.scope,
            "direction": sdef.direction,
            "ai_model": labels.get("ai_model", ""),
            "task_type": labels.get("task_type", ""),
            "member": member,
        },
    )
    if cache is not None:
        cache[(key, label_key)] = series
    return series


@transaction.atomic
def bucket_store(period: str, start: datetime, points: Points, *, now: datetime | None = None) -> int:
    """Replace the bucket's points with `points`. Returns how many were written."""
    now = now or timezone.now()
    cache = {(s.key, s.label_key): s for s in Series.objects.all()}
    wanted = {}
    for (key, lk), (value, n, labels) in points.items():
        wanted[series_for(key, lk, labels, cache=cache).pk] = (value, n)
    existing = {p.series_id: p for p in Point.objects.filter(period=period, start=start)}
    Point.objects.filter(period=period, start=start).exclude(series_id__in=wanted).delete()
    changed, new = [], []
    for series_id, (value, n) in wanted.items():
        point = existing.get(series_id)
        if point is None:
            new.append(Point(series_id=series_id, period=period, start=start, value=value, n=n, computed_at=now))
        elif point.value != value or point.n != n:
            point.value, point.n, point.computed_at = value, n, now
            changed.append(point)
    Point.objects.bulk_create(new)
    Point.objects.bulk_update(changed, ["value", "n", "computed_at"])
    if period == Period.DAY:
        # Each series' latest daily point (today's so far), for latest_values (/metrics); only moves forward.
        not_later = Q(last_at__isnull=True) | Q(last_at__lte=start)
        for series_id, (value, _) in wanted.items():
            Series.objects.filter(not_later, pk=series_id).update(last_value=value, last_at=start)
    return len(wanted)


def bucket_compute(period: str, start: datetime, *, now: datetime | None = None) -> int:
    """Recompute and store the bucket of `period` starting at `start`."""
    start = bucket_start(period, start)
    return bucket_store(period, start, bucket_observations(start, start + LENGTH[period]), now=now)
