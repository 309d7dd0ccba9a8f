"""Indicator series, detectors' state and alerts (docs/indicators.md).

A `Series` is one indicator for one subject (a task type × model, the committee,
one reviewer). Its `Point`s are stored per UTC hour and per UTC day; recomputing
a bucket overwrites it. The detector's running state lives on the series (small
JSON), so a tick reads one row per series and the new points only.

An `Alert` goes firing → acknowledged → resolved, only through the services in
indicators/services.py, which write its history (simple_history), an
`AlertEvent` and an audit-chain entry in the same transaction.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords


class Period(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class Scope(models.TextChoices):
    MODEL = "model", "Task type × model"
    COMMITTEE = "committee", "Committee"
    REVIEWER = "reviewer", "Reviewer"


class Direction(models.TextChoices):
    """Which way of moving is bad (the detector watches that side only)."""

    UP = "up", "A rise is bad"
    DOWN = "down", "A fall is bad"


class Series(models.Model):
    """One indicator for one subject. `key` names the indicator ("model.p95_ms",
    "committee.approval_rate", "reviewer.median_vote_s", …; see
    indicators/catalog.py); `labels` its subject, canonically encoded in
    `label_key` so that (key, label_key) is unique on every database."""

    key = models.CharField(max_length=60)
    label_key = models.CharField(max_length=300, blank=True, default="")
    labels = models.JSONField(default=dict)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    direction = models.CharField(max_length=4, choices=Direction.choices, default=Direction.UP)
    # The subject, for cheap filters: the model for model series, the member for reviewer series.
    ai_model = models.CharField(max_length=200, blank=True, default="")
    task_type = models.CharField(max_length=40, blank=True, default="")
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Detector state (indicators/detectors.py): reference mean/sd, statistic, counters,
    # the last point fed. Rebuilt from the points when lost.
    state = models.JSONField(default=dict, blank=True)
    state_at = models.DateTimeField(null=True, blank=True, help_text="The last daily point the detector read.")
    # The latest point (any period), kept with the points so /metrics reads one row per series.
    last_value = models.FloatField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "series"
        constraints = [models.UniqueConstraint(fields=["key", "label_key"], name="indicators_series_key")]
        indexes = [models.Index(fields=["scope", "key"], name="indicators_series_scope")]

    def __str__(self) -> str:
        return f"{self.key} {self.label_key}".strip()


class Point(models.Model):
    """A series' value over one UTC hour or day. `n` is how many observations it
    summarises (tasks, votes, cases); a bucket with none is not stored."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="points")
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    value = models.FloatField()
    n = models.BigIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "period", "start"], name="indicators_point_key"),
        ]
        indexes = [
            # latest_values and the pages: a period range across series.
            models.Index(fields=["period", "start"], name="indicators_point_period"),
        ]

    def __str__(self) -> str:
        return f"{self.series_id} {self.period} {self.start:%Y-%m-%d %H:00} = {self.value:g}"


class AlertKind(models.TextChoices):
    DRIFT = "drift", "Trend change in a series"
    TRUST_INFLATION = "trust_inflation", "Reviewer behaviour (trust inflation)"
    COMMITTEE_INFLATION = "committee_inflation", "Committee approves more while models worsen"
    HONEYPOT = "honeypot", "Approval of a honeypot report"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (AlertState.FIRING.value, AlertState.ACKNOWLEDGED.value)


class Alert(models.Model):
    """An alert about a series, a reviewer, the committee or a honeypot vote.
    `dedup_key` says what it is about: at most one alert per key is open (not
    resolved), so a detector that keeps seeing the condition does not open a
    second one."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    state = models.CharField(max_length=12, choices=AlertState.choices, default=AlertState.FIRING)
    dedup_key = models.CharField(max_length=400)
    title = models.CharField(max_length=300)
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    ai_model = models.CharField(max_length=200, blank=True, default="", help_text="The model it is about, if any.")
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The reviewer it is about, if any (told only after the chair).",
    )
    case_id_ref = models.BigIntegerField(null=True, blank=True, help_text="The review case (honeypot alerts).")
    value = models.FloatField(null=True, blank=True, help_text="The statistic when it fired.")
    threshold = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    fired_at = models.DateTimeField(default=timezone.now)
    # The simulated/series time the condition started holding (the change point shown on the alert page).
    change_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledge_reason = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when the detector resolved it (below the lower threshold).",
    )
    resolve_reason = models.TextField(blank=True)
    # Until when a cleared condition keeps the alert firing (keep_firing_for).
    keep_until = models.DateTimeField(null=True, blank=True)
    chair_notified_at = models.DateTimeField(null=True, blank=True)
    member_notified_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=models.Q(state__in=OPEN_STATES),
                name="indicators_alert_one_open",
            ),
        ]
        indexes = [
            # model_alert_firing: one indexed probe on the open alerts of a model.
            models.Index(
                fields=["ai_model"], condition=models.Q(state__in=OPEN_STATES), name="indicators_alert_model_open"
            ),
            models.Index(fields=["state", "-fired_at"], name="indicators_alert_state"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class AlertEvent(models.Model):
    """What happened to an alert, in order: fired, still firing, cleared (kept
    firing), acknowledged, resolved, notified. The alert page's timeline."""

    class Type(models.TextChoices):
        FIRED = "fired", "Fired"
        CLEARED = "cleared", "Condition cleared (kept firing)"
        REFIRED = "refired", "Condition back while kept firing"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        NOTIFIED = "notified", "Notified"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=20, choices=Type.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["alert", "at"], name="indicators_event_alert")]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.type} {self.at:%Y-%m-%d %H:%M}"
