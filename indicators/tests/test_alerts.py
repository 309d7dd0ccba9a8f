"""An alert's lifecycle through the services, its history, events, audit
entries and mails; the selectors other helpers build on."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from indicators import selectors
from indicators.models import Alert, AlertEvent, AlertKind, AlertState, Series
from indicators.services import alerts

pytestmark = pytest.mark.django_db


def fire(**kwargs):
    values = {"kind": AlertKind.DRIFT, "dedup_key": "drift:model.p95_ms:m", "title": "p95 of m is up", "ai_model": "m"}
    return alerts.alert_fire(**{**values, **kwargs})


def test_firing_acknowledging_and_resolving_keep_history_events_and_chain_entries(operator):
    alert, created = fire()
    assert created and alert.state == AlertState.FIRING
    alerts.alert_acknowledge(alert_id=alert.pk, by=operator, reason="looking at the new model build")
    alerts.alert_resolve(alert_id=alert.pk, by=operator, reason="rolled back")
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert (alert.acknowledged_by, alert.acknowledge_reason) == (operator, "looking at the new model build")
    assert (alert.resolved_by, alert.resolve_reason) == (operator, "rolled back")
    assert [h.state for h in alert.history.order_by("history_id")] == ["firing", "acknowledged", "resolved"]
    assert alert.history.order_by("history_id").last().history_user == operator
    types = list(alert.events.values_list("type", flat=True))
    assert types[0] == "fired" and "acknowledged" in types and types[-1] in ("resolved", "notified")
    kinds = list(AuditEntry.objects.filter(subject=f"alert:{alert.pk}").order_by("seq").values_list("kind", flat=True))
    assert kinds == ["indicator_alert.fired", "indicator_alert.acknowledged", "indicator_alert.resolved"]


def test_acknowledging_needs_a_reason_and_a_firing_alert(operator):
    alert, _ = fire()
    with pytest.raises(alerts.AlertRefused, match="Say why"):
        alerts.alert_acknowledge(alert_id=alert.pk, by=operator, reason="  ")
    alerts.alert_acknowledge(alert_id=alert.pk, by=operator, reason="mine")
    with pytest.raises(alerts.AlertRefused, match="not firing"):
        alerts.alert_acknowledge(alert_id=alert.pk, by=operator, reason="again")
    alerts.alert_resolve(alert_id=alert.pk, by=operator, reason="done")
    with pytest.raises(alerts.AlertRefused, match="already resolved"):
        alerts.alert_resolve(alert_id=alert.pk, by=operator, reason="again")
    assert alert.history.count() == 3


def test_one_open_alert_per_subject():
    first, created = fire()
    again, created_again = fire(title="another title")
    assert created and not created_again and again.pk == first.pk
    alerts.alert_resolve(alert_id=first.pk, reason="gone")
    later, created_later = fire()
    assert created_later and later.pk != first.pk


def test_model_alert_firing_holds_until_resolved_in_one_query(operator):
    assert selectors.model_alert_firing("m") is False
    alert, _ = fire()
    with CaptureQueriesContext(connection) as ctx:
        assert selectors.model_alert_firing("m") is True
    assert len(ctx.captured_queries) == 1
    assert selectors.model_alert_firing("other") is False
    assert selectors.model_alert_firing("") is False
    alerts.alert_acknowledge(alert_id=alert.pk, by=operator, reason="seen")
    assert selectors.model_alert_firing("m") is True
    alerts.alert_resolve(alert_id=alert.pk, by=operator, reason="fixed")
    assert selectors.model_alert_firing("m") is False


def test_firing_alerts_lists_firing_before_acknowledged_and_not_resolved(operator):
    a, _ = fire(dedup_key="a")
    b, _ = fire(dedup_key="b")
    c, _ = fire(dedup_key="c")
    alerts.alert_acknowledge(alert_id=a.pk, by=operator, reason="seen")
    alerts.alert_resolve(alert_id=c.pk, by=operator, reason="noise")
    assert [x.pk for x in selectors.firing_alerts()] == [b.pk, a.pk]


def test_latest_values_reads_the_series_table_once():
    Series.objects.create(key="model.p95_ms", label_key="ai_model=m", labels={"ai_model": "m"}, scope="model")
    from django.utils import timezone

    now = timezone.now()
    Series.objects.create(
        key="committee.approval_rate", label_key="", labels={}, scope="committee", last_value=0.7, last_at=now
    )
    with CaptureQueriesContext(connection) as ctx:
        values = selectors.latest_values()
    assert len(ctx.captured_queries) == 1
    assert values == [("committee.approval_rate", {}, 0.7, now)]


def test_drift_alerts_are_mailed_to_operators(operator, alice, django_capture_on_commit_callbacks):
    operator.email, alice.email = "olivia@example.org", "alice@example.org"
    operator.save()
    alice.save()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = fire()
    assert sorted(m.to[0] for m in mail.outbox) == ["olivia@example.org"]
    assert alert.events.filter(type=AlertEvent.Type.NOTIFIED).count() == 1


def test_a_reviewer_alert_is_never_mailed_to_the_member_it_is_about(
    operator, alice, bob, django_capture_on_commit_callbacks
):
    for user, address in ((operator, "olivia@example.org"), (alice, "alice@example.org"), (bob, "bob@example.org")):
        user.email = address
        user.save()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = fire(kind=AlertKind.TRUST_INFLATION, dedup_key="trust_inflation:member=x", ai_model="", member=alice)
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert "alice@example.org" not in recipients
    assert "olivia@example.org" in recipients
    alert.refresh_from_db()
    assert alert.chair_notified_at is not None and alert.member_notified_at is None


def test_the_mail_job_sends_once(operator, django_capture_on_commit_callbacks):
    from indicators.jobs import send_alert_mail

    operator.email = "olivia@example.org"
    operator.save()
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = fire()
    assert len(mail.outbox) == 1
    mail.outbox.clear()
    assert send_alert_mail(alert.pk, "fired") == 0
    assert mail.outbox == []


def test_the_admin_acknowledges_through_the_service_with_a_reason(client, operator):
    alert, _ = fire()
    client.force_login(operator)
    url = "/admin/indicators/alert/"
    response = client.post(url, {"action": "acknowledge", "_selected_action": [alert.pk], "change_reason": ""})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING  # refused: no reason
    client.post(url, {"action": "acknowledge", "_selected_action": [alert.pk], "change_reason": "on it"})
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.acknowledge_reason) == ("acknowledged", operator, "on it")
    assert client.get(f"{url}{alert.pk}/change/").status_code == 200
    assert not Alert.objects.exclude(pk=alert.pk).exists()
