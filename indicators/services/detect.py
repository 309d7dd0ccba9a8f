"""Running the detectors over the stored daily points (docs/indicators.md,
"Detection"): each complete day once, in order, with the detectors' state kept
on the Series rows, and their transitions turned into alerts."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from indicators import detectors
from indicators.catalog import EWMA, SERIES, UP, WATCH
from indicators.models import OPEN_STATES, Alert, AlertEvent, AlertKind, Period, Point, Scope, Series
from indicators.services import alerts
from indicators.services.points import bucket_start

DAY = timedelta(days=1)
GRACE = timedelta(hours=1)  # a day is judged once it has been over this long (late finishes)
ENGINE = ("engine", "")  # a pseudo-series holding the last day judged
HISTORY_DAYS = (
    max(EWMA.reference_days + EWMA.reference_lag, WATCH.reference_days + WATCH.reference_lag) + WATCH.window_days
)


def _pseudo(key: str, label_key: str, scope: str, *, member=None) -> Series:
    series, _ = Series.objects.get_or_create(
        key=key, label_key=label_key, defaults={"scope": scope, "member": member, "labels": {}}
    )
    return series


def dedup_key(subject: detectors.Key) -> str:
    key, label_key = subject
    if key == detectors.TRUST:
        return f"trust_inflation:{label_key}"
    if key == detectors.COMMITTEE_WATCH:
        return "committee_inflation"
    return f"drift:{key}:{label_key}"


def _title(t: detectors.Transition, series: Series) -> str:
    if t.kind == AlertKind.TRUST_INFLATION:
        who = series.member.get_username() if series.member else series.label_key
        return f"Reviewer {who}: approvals, speed and rationales moved together ({', '.join(t.details['moved'])})"
    if t.kind == AlertKind.COMMITTEE_INFLATION:
        return "The committee approves more while the models' indicators get worse"
    sdef = SERIES[series.key]
    way = "up" if sdef.direction == UP else "down"
    if sdef.scope == Scope.MODEL:
        return f"{sdef.title} of {series.task_type} × {series.ai_model} is {way}"
    return f"Committee: {sdef.title.lower()} is {way}"


def _series_rows(subjects) -> dict[detectors.Key, Series]:
    rows = {(s.key, s.label_key): s for s in Series.objects.select_related("member")}
    for key, label_key in subjects:
        if (key, label_key) in rows:
            continue
        if key == detectors.TRUST:
            member = get_user_model().objects.filter(pk=int(label_key.split("=", 1)[1])).first()
            rows[(key, label_key)] = _pseudo(key, label_key, Scope.REVIEWER, member=member)
        elif key == detectors.COMMITTEE_WATCH:
            rows[(key, label_key)] = _pseudo(key, label_key, Scope.COMMITTEE)
    return rows


def _forget_closed(states: dict, rows: dict) -> None:
    """A detector that thinks its alert is firing while a person resolved it starts
    afresh: the condition must hold `for` points again before it fires again."""
    open_keys = set(Alert.objects.filter(state__in=OPEN_STATES).values_list("dedup_key", flat=True))
    for subject, state in states.items():
        if subject != ENGINE and state.get("firing") and dedup_key(subject) not in open_keys:
            state.update(firing=False, pending=0, clearing=0, change_at=None)
            state.pop("base", None)


def _apply(t: detectors.Transition, series: Series, *, at: datetime) -> None:
    key = dedup_key(t.subject)
    details = {**t.details, "day": t.day.date().isoformat()}
    if t.what == "fire":
        alerts.alert_fire(
            kind=t.kind,
            dedup_key=key,
            title=_title(t, series),
            at=at,
            series=series,
            ai_model=series.ai_model if series.scope == Scope.MODEL else "",
            member=series.member if t.kind == AlertKind.TRUST_INFLATION else None,
            value=t.value,
            threshold=t.threshold,
            change_at=t.change_at,
            details=details,
        )
        return
    alert = Alert.objects.filter(dedup_key=key, state__in=OPEN_STATES).first()
    if alert is None:
        return
    if t.what == "resolve":
        alerts.alert_resolve(
            alert_id=alert.pk, by=None, reason="below the lower threshold for keep_firing_for points", at=at
        )
    else:
        kind = AlertEvent.Type.CLEARED if t.what == "clear" else AlertEvent.Type.REFIRED
        alerts.alert_note(alert_id=alert.pk, type_=kind, at=at, data={"value": t.value, "day": details["day"]})


@transaction.atomic
def detectors_run(*, now: datetime | None = None, first_day: datetime | None = None) -> list[detectors.Transition]:
    """Judge every complete day not judged yet, in order. Safe to run twice: the
    last day judged is kept (row-locked while running), a day is never judged again."""
    live = now is None
    now = now or timezone.now()
    engine_row = _pseudo(*ENGINE, Scope.COMMITTEE)
    engine_row = Series.objects.select_for_update().get(pk=engine_row.pk)
    last_day = bucket_start(Period.DAY, now - GRACE) - DAY
    done = engine_row.state.get("day")
    if done:
        start = datetime.fromisoformat(done) + DAY
    else:
        earliest = Point.objects.filter(period=Period.DAY).order_by("start").values_list("start", flat=True).first()
        start = first_day or earliest
    if start is None or start > last_day:
        return []
    history: detectors.History = defaultdict(dict)
    points = Point.objects.filter(
        period=Period.DAY, start__gte=start - HISTORY_DAYS * DAY, start__lte=last_day
    ).select_related("series")
    for p in points:
        history[(p.series.key, p.series.label_key)][p.start] = (p.value, p.n)
    rows = {(s.key, s.label_key): s for s in Series.objects.select_related("member")}
    states = {k: dict(s.state) for k, s in rows.items() if s.state}
    _forget_closed(states, rows)
    engine = detectors.Engine(states)
    out = []
    day = start
    while day <= last_day:
        transitions = engine.run_day(day, history)
        rows.update(_series_rows(t.subject for t in transitions))
        at = now if live else min(now, day + DAY + GRACE)
        for t in transitions:
            _apply(t, rows[t.subject], at=at)
        out.extend(transitions)
        day += DAY
    engine.states[ENGINE] = {"day": last_day.isoformat()}
    rows.update(_series_rows(engine.states))
    changed = []
    for subject, state in engine.states.items():
        row = rows.get(subject)
        if row is not None and row.state != state:
            row.state = state
            row.state_at = last_day
            changed.append(row)
    Series.objects.bulk_update(changed, ["state", "state_at"])
    return out
