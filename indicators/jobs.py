"""RQ jobs of the indicators app: the periodic tick (points and detectors) and
the alert mails. Each takes ids or nothing, reloads rows, calls services, and is
safe to run twice."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from core.roles import OPERATORS, has_role
from indicators.models import Alert, AlertKind, Period
from indicators.services import alerts
from indicators.services.detect import detectors_run
from indicators.services.points import LENGTH, bucket_compute, bucket_start

logger = logging.getLogger(__name__)
TICK_SECONDS = 900


def indicators_tick() -> dict:
    """Recompute the current and previous hour and day (a recomputed bucket
    overwrites itself; late finishes land), then judge the days that closed."""
    now = timezone.now()
    written = 0
    for period in (Period.HOUR, Period.DAY):
        current = bucket_start(period, now)
        for start in (current - LENGTH[period], current):
            written += bucket_compute(period, start, now=now)
    transitions = detectors_run()
    return {"points": written, "transitions": len(transitions)}


def _body(alert: Alert, stage: str, *, shows_case: bool) -> str:
    lines = [
        f"Alert {alert.pk}: {alert.title}",
        f"Kind: {alert.get_kind_display()}",
        f"State: {alert.get_state_display()} ({stage})",
        f"Fired at: {alert.fired_at:%Y-%m-%d %H:%M} UTC",
    ]
    if alert.kind == AlertKind.HONEYPOT and shows_case:
        # Operators are told which case; a chair who votes is not (they could tell a
        # case still open to them is a honeypot: the pages hide it too).
        lines.append(f"Case: {alert.case_id_ref}")
    if alert.state == "resolved":
        lines.append(f"Resolved: {alert.resolve_reason}")
    lines.append(f"{settings.SITE_URL}/indicators/alerts/{alert.pk}/")
    return "\n".join(lines) + "\n"


def send_alert_mail(alert_id: int, stage: str) -> int:
    """Mail an alert's `stage` (fired, resolved) to its recipients
    (services.alerts.notification_recipients), once."""
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return 0
    users = alerts.notification_recipients(alert)
    operator_addresses = {u.email for u in users if has_role(u, OPERATORS)}
    addresses = sorted({u.email for u in users})
    if not addresses:
        return 0
    with transaction.atomic():
        if not alerts.alert_mail_record(alert_id=alert_id, stage=stage, recipients=addresses):
            return 0
        connection = get_connection()
        subject = f"[FSAR] Alert {stage}: {alert.title}"[:200]
        messages = [
            EmailMessage(
                subject, _body(alert, stage, shows_case=to in operator_addresses), None, [to], connection=connection
            )
            for to in addresses
        ]
        connection.send_messages(messages)
    return len(addresses)
