"""What the indicator pages may show to whom, and the data their charts draw
(docs/indicators.md, "Pages"). Reads only: it imports the models, the
selectors and the catalog, never a service.

Who sees what, in one place (the views and the dashboard ask only here):

- operators: every series and every alert;
- the committee chair (reviews' setting; when unset the chairs are the
  operators): every series and alert as well;
- other committee members: the task type × model and committee-wide series and
  the alerts about them, never a per-reviewer series nor an alert about a
  reviewer (trust inflation, a honeypot approval);
- nobody, operators included, sees the per-reviewer series about themselves or
  an alert about themselves: the member an alert is about hears of it from the
  chair, never from the system.

Acting on an alert (acknowledge, resolve): operators, and the chair for alerts
about a reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.roles import COMMITTEE, OPERATORS, has_role
from indicators import selectors
from indicators.catalog import DOWN, EWMA, SERIES
from indicators.models import Alert, AlertKind, Period, Point, Scope, Series

DAY = timedelta(days=1)
SPARK_DAYS = 28  # days of daily points a sparkline on /indicators/ shows
BEFORE_DAYS = 21  # days before the change point the alert page shows …
AFTER_DAYS = 14  # … and after it
REVIEWER_KINDS = (AlertKind.TRUST_INFLATION.value, AlertKind.HONEYPOT.value)


@dataclass(frozen=True)
class Viewer:
    user_id: int | None
    is_operator: bool
    is_committee: bool
    is_chair: bool

    @property
    def sees_reviewers(self) -> bool:
        return self.is_operator or self.is_chair

    @property
    def may_use(self) -> bool:
        return self.is_operator or self.is_committee


def viewer_for(user) -> Viewer:
    from reviews.selectors import committee_chairs

    is_operator = has_role(user, OPERATORS)
    is_committee = has_role(user, COMMITTEE)
    # Ask for the chair only when it changes the answer (a member who is not an operator).
    is_chair = bool(is_committee and not is_operator and any(u.pk == user.pk for u in committee_chairs()))
    return Viewer(
        user_id=user.pk if user.is_authenticated else None,
        is_operator=is_operator,
        is_committee=is_committee,
        is_chair=is_chair,
    )


def visible_scopes(viewer: Viewer) -> tuple[str, ...]:
    if viewer.sees_reviewers:
        return (Scope.MODEL.value, Scope.COMMITTEE.value, Scope.REVIEWER.value)
    if viewer.may_use:
        return (Scope.MODEL.value, Scope.COMMITTEE.value)
    return ()


def may_see_series(viewer: Viewer, series: Series) -> bool:
    if series.key not in SERIES or series.scope not in visible_scopes(viewer):
        return False
    return not (series.scope == Scope.REVIEWER and series.member_id is not None and series.member_id == viewer.user_id)


def is_about_a_reviewer(alert: Alert) -> bool:
    return (
        alert.kind in REVIEWER_KINDS
        or alert.member_id is not None
        or (alert.series is not None and alert.series.scope == Scope.REVIEWER)
    )


def may_see_alert(viewer: Viewer, alert: Alert) -> bool:
    if not viewer.may_use:
        return False
    if alert.member_id is not None and alert.member_id == viewer.user_id:
        return False  # never the member it is about, whatever their roles
    if is_about_a_reviewer(alert):
        return viewer.sees_reviewers
    return True


def may_act_on_alert(viewer: Viewer, alert: Alert) -> bool:
    if not may_see_alert(viewer, alert):
        return False
    return viewer.is_operator or (viewer.is_chair and is_about_a_reviewer(alert))


def visible_alerts(viewer: Viewer, alerts) -> list[Alert]:
    """`alerts` (a queryset with series selected) filtered for `viewer`, in its
    order, each with `shown_title` set (see shown_title)."""
    return [_shown(viewer, a) for a in alerts if may_see_alert(viewer, a)]


def shows_case(viewer: Viewer, alert: Alert) -> bool:
    """Which case a honeypot alert is about is for operators only: a chair who
    is a voting member could otherwise learn that a case still open to them is
    a honeypot."""
    return viewer.is_operator or alert.kind != AlertKind.HONEYPOT


def _shown(viewer: Viewer, alert: Alert) -> Alert:
    if shows_case(viewer, alert):
        alert.shown_title = alert.title
    else:
        who = alert.member.get_username() if alert.member else "A committee member"
        alert.shown_title = f"{who} approved a honeypot report"
    return alert


def open_alerts_for(viewer: Viewer) -> list[Alert]:
    """Open alerts the viewer may see, firing first (the dashboard and /indicators/)."""
    return visible_alerts(viewer, selectors.firing_alerts())


def alert_for(viewer: Viewer, alert_id: int) -> Alert | None:
    """The alert, or None when it does not exist or the viewer may not see it
    (the page then answers 404 either way: an alert's existence is not disclosed)."""
    alert = Alert.objects.select_related("series", "member", "acknowledged_by", "resolved_by").filter(pk=alert_id)
    alert = alert.first()
    if alert is None or not may_see_alert(viewer, alert):
        return None
    return _shown(viewer, alert)


def series_for(viewer: Viewer, series_id: int) -> Series | None:
    series = Series.objects.select_related("member").filter(pk=series_id).first()
    if series is None or not may_see_series(viewer, series):
        return None
    return series


# ---------------------------------------------------------------------------
# Chart data


def limits(series: Series) -> dict:
    """The detector's reference and thresholds in the series' own units, from
    the state it keeps on the series: the reference mean, the quiet band
    (mean ± resolve_l·σ_EWMA·sd: the smoothed series must stay inside it on the
    bad side for keep_firing_for days to resolve) and the firing threshold
    (mean + fire_l·σ_EWMA·sd on the bad side). Empty for series no drift
    detector watches (the per-reviewer ones feed the watch instead)."""
    sdef = SERIES.get(series.key)
    ref = (series.state or {}).get("ref")
    if sdef is None or not sdef.detect or not ref:
        return {}
    centre, sd = float(ref[0]), float(ref[1])
    sign = -1.0 if sdef.direction == DOWN else 1.0
    return {
        "mean": centre,
        "band": [centre - EWMA.resolve_at * sd, centre + EWMA.resolve_at * sd],
        "fire": centre + sign * EWMA.fire_at * sd,
        "resolve": centre + sign * EWMA.resolve_at * sd,
        "statistic": (series.state or {}).get("s"),
        "fire_at": EWMA.fire_at,
    }


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def chart(series: Series, points, *, change_at: datetime | None = None) -> dict:
    """What static/fsar/indicator-chart.js draws (one json_script block)."""
    sdef = SERIES[series.key]
    rows = list(points)
    return {
        "title": sdef.title,
        "unit": sdef.unit,
        "direction": sdef.direction,
        "x": [_epoch(p.start) for p in rows],
        "values": [p.value for p in rows],
        "n": [p.n for p in rows],
        "change": _epoch(change_at) if change_at else None,
        **limits(series),
    }


@dataclass
class SeriesRow:
    series: Series
    sdef: object
    chart: dict
    alert: Alert | None

    @property
    def subject(self) -> str:
        return subject_of(self.series)

    @property
    def chart_id(self) -> str:
        return f"spark-{self.series.pk}"

    @property
    def last(self) -> str:
        values = self.chart["values"]
        return formatted(values[-1] if values else None, self.sdef.unit)

    @property
    def fire(self) -> str:
        return formatted(self.chart.get("fire"), self.sdef.unit) if "fire" in self.chart else ""


def subject_of(series: Series) -> str:
    if series.scope == Scope.MODEL:
        return f"{series.task_type} × {series.ai_model}"
    if series.scope == Scope.REVIEWER:
        return series.member.get_username() if series.member else series.label_key
    return "Committee"


def overview(viewer: Viewer, *, now: datetime) -> dict:
    """/indicators/: the open alerts the viewer may see (firing first), then
    every series they may see with its last SPARK_DAYS daily points; series with
    an open alert first. Three queries whatever the number of series."""
    alerts = open_alerts_for(viewer)
    scopes = visible_scopes(viewer)
    all_series = [s for s in selectors.series_list(scopes=scopes) if may_see_series(viewer, s)]
    since = now - SPARK_DAYS * DAY
    by_series: dict[int, list[Point]] = {s.pk: [] for s in all_series}
    if all_series:
        pts = Point.objects.filter(period=Period.DAY, start__gte=since, series__in=[s.pk for s in all_series])
        for p in pts.order_by("series_id", "start").only("series_id", "start", "value", "n"):
            by_series[p.series_id].append(p)
    alert_by_series = {a.series_id: a for a in alerts if a.series_id}
    rows = [
        SeriesRow(series=s, sdef=SERIES[s.key], chart=chart(s, by_series[s.pk]), alert=alert_by_series.get(s.pk))
        for s in all_series
    ]
    order = {Scope.MODEL.value: 1, Scope.COMMITTEE.value: 0, Scope.REVIEWER.value: 2}
    rows.sort(key=lambda r: (r.alert is None, order.get(r.series.scope, 3), r.series.key, r.series.label_key))
    groups = []
    labels = ((Scope.COMMITTEE, "Committee-wide"), (Scope.MODEL, "Task type × model"), (Scope.REVIEWER, "Per reviewer"))
    for scope, label in labels:
        if scope.value in scopes:
            groups.append({"scope": scope.value, "label": label, "rows": [r for r in rows if r.series.scope == scope]})
    return {"alerts": alerts, "groups": groups, "spark_days": SPARK_DAYS}


def _window(alert: Alert, now: datetime) -> tuple[datetime, datetime, datetime]:
    change = alert.change_at or alert.fired_at
    return change, change - BEFORE_DAYS * DAY, min(change + (AFTER_DAYS + 1) * DAY, now + DAY)


def alert_charts(viewer: Viewer, alert: Alert, *, now: datetime) -> list[dict]:
    """The series around the alert's change point: the alert's own series (a
    drift alert), the committee's approval rate and the models' series with an
    open alert (committee inflation), or the member's five behaviour series (an
    alert about a reviewer, which only those who may see it reach)."""
    change, since, until = _window(alert, now)
    if alert.series is not None and alert.series.key in SERIES:
        targets = [alert.series]
    elif alert.kind == AlertKind.COMMITTEE_INFLATION:
        targets = list(Series.objects.filter(key="committee.approval_rate").order_by("label_key")[:1])
        firing_models = Alert.objects.filter(kind=AlertKind.DRIFT, state__in=("firing", "acknowledged"))
        targets += list(
            Series.objects.filter(pk__in=firing_models.values("series_id"), scope=Scope.MODEL).order_by("key")[:4]
        )
    elif alert.member_id is not None:
        targets = list(
            Series.objects.filter(scope=Scope.REVIEWER, member_id=alert.member_id, key__in=list(SERIES)).order_by("key")
        )
    else:
        targets = []
    targets = [s for s in targets if may_see_series(viewer, s)]
    return [
        figure(s, pts, cid=f"alert-chart-{i}", change_at=change)
        for i, (s, pts) in enumerate(
            (s, selectors.points(s, period=Period.DAY, since=since, until=until)) for s in targets
        )
    ]


def figure(series: Series, points, *, cid: str, change_at: datetime | None = None) -> dict:
    """A full chart and the same numbers as a table (templates/indicators/_chart.html)."""
    rows = list(points)
    unit = SERIES[series.key].unit
    change_day = change_at.date() if change_at else None
    return {
        "series": series,
        "subject": subject_of(series),
        "cid": cid,
        "chart": chart(series, rows, change_at=change_at),
        "rows": [
            {"day": p.start, "value": formatted(p.value, unit), "n": p.n, "change": p.start.date() == change_day}
            for p in rows
        ],
    }


def formatted(value: float | None, unit: str) -> str:
    """A value in its unit, as the pages print it (the charts use the same rules)."""
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        from tasks.formatting import duration

        return duration(round(value))
    if unit == "s":
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    if unit == "micro-units":
        return f"{value / 1_000_000:.4f}"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2f}"
