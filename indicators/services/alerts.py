"""An alert's lifecycle: firing → acknowledged (by whom, why) → resolved
(docs/indicators.md, "Alerts"). Each transition is one atomic function that
locks the alert, checks the move is allowed, saves it with its history row, adds
an AlertEvent and an audit-chain entry, and sends its mails after commit.

Mail goes to the operators; for an alert about a reviewer (trust inflation, a
honeypot approval) to the committee chair (reviews.selectors.committee_chairs)
first and the operators, never to the member it is about.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.chain import actor_name, audit_append
from core.errors import Refused
from core.history import save_with_history
from core.jobs import enqueue_on_commit
from indicators.models import OPEN_STATES, Alert, AlertEvent, AlertKind, AlertState, Series

MAIL_JOB = "indicators.jobs.send_alert_mail"
ABOUT_A_REVIEWER = (AlertKind.TRUST_INFLATION.value, AlertKind.HONEYPOT.value)


class AlertRefused(Refused):
    status_code = 409


def _event(alert: Alert, type_: str, *, at: datetime, actor=None, reason: str = "", data: dict | None = None) -> None:
    AlertEvent.objects.create(alert=alert, type=type_, at=at, actor=actor, reason=reason, data=data or {})


def _audit(alert: Alert, what: str, *, actor=None, reason: str = "", data: dict | None = None) -> None:
    audit_append(
        kind=f"indicator_alert.{what}",
        subject=f"alert:{alert.pk}",
        actor=actor_name(user=actor),
        data={
            "kind": alert.kind,
            "title": alert.title,
            "dedup_key": alert.dedup_key,
            "state": alert.state,
            "reason": reason,
            **(data or {}),
        },
    )


@transaction.atomic
def alert_fire(
    *,
    kind: str,
    dedup_key: str,
    title: str,
    at: datetime | None = None,
    series: Series | None = None,
    ai_model: str = "",
    member=None,
    case_id: int | None = None,
    value: float | None = None,
    threshold: float | None = None,
    change_at: datetime | None = None,
    details: dict | None = None,
) -> tuple[Alert, bool]:
    """Open an alert about `dedup_key`, or return the one already open (created=False).
    Mails are enqueued after commit."""
    at = at or timezone.now()
    existing = Alert.objects.select_for_update().filter(dedup_key=dedup_key, state__in=OPEN_STATES).first()
    if existing is not None:
        return existing, False
    alert = Alert(
        kind=kind,
        dedup_key=dedup_key,
        title=title[:300],
        series=series,
        ai_model=ai_model or "",
        member=member,
        case_id_ref=case_id,
        value=value,
        threshold=threshold,
        details=details or {},
        fired_at=at,
        change_at=change_at,
    )
    try:
        with transaction.atomic():
            save_with_history(alert, reason="fired", user=None)
    except IntegrityError:
        # Another run opened it a moment ago (one open alert per dedup_key).
        return Alert.objects.get(dedup_key=dedup_key, state__in=OPEN_STATES), False
    _event(alert, AlertEvent.Type.FIRED, at=at, data={"value": value, "threshold": threshold})
    _audit(alert, "fired", data={"value": value, "threshold": threshold, "ai_model": alert.ai_model})
    enqueue_on_commit(MAIL_JOB, alert.pk, AlertEvent.Type.FIRED.value)
    return alert, True


def _locked(alert_id: int) -> Alert:
    try:
        return Alert.objects.select_for_update().get(pk=alert_id)
    except Alert.DoesNotExist:
        raise AlertRefused(f"No alert {alert_id}.", field="alert") from None


def _need_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AlertRefused("Say why (the reason is kept in the alert's history).", field="reason")
    return reason


@transaction.atomic
def alert_acknowledge(*, alert_id: int, by, reason: str) -> Alert:
    """A person takes the alert: firing → acknowledged. It stays open (the gate's
    'alert firing for this model' still holds) until resolved."""
    reason = _need_reason(reason)
    alert = _locked(alert_id)
    if alert.state != AlertState.FIRING:
        raise AlertRefused(f"Alert {alert.pk} is {alert.get_state_display().lower()}, not firing.", field="state")
    now = timezone.now()
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_at, alert.acknowledged_by, alert.acknowledge_reason = now, by, reason
    save_with_history(alert, reason=f"acknowledged: {reason}", user=by)
    _event(alert, AlertEvent.Type.ACKNOWLEDGED, at=now, actor=by, reason=reason)
    _audit(alert, "acknowledged", actor=by, reason=reason)
    return alert


@transaction.atomic
def alert_resolve(*, alert_id: int, by=None, reason: str, at: datetime | None = None) -> Alert:
    """Close the alert: by a person (`by`, with a reason), or by the detector
    (`by` None) once its statistic stayed below the lower threshold for
    keep_firing_for points."""
    reason = _need_reason(reason)
    alert = _locked(alert_id)
    if alert.state not in OPEN_STATES:
        raise AlertRefused(f"Alert {alert.pk} is already resolved.", field="state")
    at = at or timezone.now()
    alert.state = AlertState.RESOLVED
    alert.resolved_at, alert.resolved_by, alert.resolve_reason = at, by, reason
    alert.keep_until = None
    save_with_history(alert, reason=f"resolved: {reason}", user=by)
    _event(alert, AlertEvent.Type.RESOLVED, at=at, actor=by, reason=reason)
    _audit(alert, "resolved", actor=by, reason=reason)
    enqueue_on_commit(MAIL_JOB, alert.pk, AlertEvent.Type.RESOLVED.value)
    return alert


@transaction.atomic
def alert_note(*, alert_id: int, type_: str, at: datetime, data: dict | None = None) -> None:
    """The detector's condition cleared (kept firing) or came back: an event on the
    timeline, no state change, no mail."""
    alert = _locked(alert_id)
    if alert.state in OPEN_STATES:
        _event(alert, type_, at=at, data=data)


def notification_recipients(alert: Alert) -> list:
    """Who is mailed about `alert` (active users with an address): the chair (or
    every operator when none is set) for alerts about a reviewer, and the
    operators; never the member the alert is about."""
    from django.contrib.auth import get_user_model

    from core.roles import OPERATORS

    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    operators = list(users.filter(groups__name=OPERATORS).distinct().order_by("pk"))
    recipients = []
    if alert.kind in ABOUT_A_REVIEWER:
        recipients.extend(u for u in _chairs() if u.is_active and u.email)
    recipients.extend(operators)
    seen, out = set(), []
    for user in recipients:
        if user.pk not in seen and user.pk != alert.member_id:
            seen.add(user.pk)
            out.append(user)
    return out


def _chairs() -> list:
    try:
        from reviews.selectors import committee_chairs
    except ImportError:  # before reviews has the chair (issue 17): the operators
        return []
    return list(committee_chairs())


@transaction.atomic
def alert_mail_record(*, alert_id: int, stage: str, recipients: list[str]) -> bool:
    """Record that the `stage` mail of an alert went out; False when it already had
    (a job run twice mails once)."""
    alert = _locked(alert_id)
    if alert.events.filter(type=AlertEvent.Type.NOTIFIED, data__stage=stage).exists():
        return False
    now = timezone.now()
    _event(alert, AlertEvent.Type.NOTIFIED, at=now, data={"stage": stage, "recipients": recipients})
    if alert.kind in ABOUT_A_REVIEWER and alert.chair_notified_at is None:
        alert.chair_notified_at = now
        save_with_history(alert, reason=f"notified ({stage})", user=None)
    return True
