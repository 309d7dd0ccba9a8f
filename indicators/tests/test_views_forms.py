"""Bad input on the alert forms: a form error naming the problem (never a 500),
and nothing written: the alert's state, history and events stay as they were."""

from __future__ import annotations

import pytest

from indicators.models import AlertEvent
from indicators.tests.pages_support import drift_alert, make_series

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(db):
    return drift_alert(make_series("model.p95_ms", ref=(1000.0, 40.0), values=[1000, 1200, 1300]))


@pytest.fixture
def ops(client, operator):
    client.force_login(operator)
    return client


def unchanged(alert, state="firing", events=1):
    alert.refresh_from_db()
    assert alert.state == state
    assert AlertEvent.objects.filter(alert=alert).count() == events
    assert alert.history.count() == events


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
@pytest.mark.parametrize("reason", ["", "   \n  "], ids=["empty", "blank"])
def test_a_missing_reason_is_a_form_error(ops, alert, action, reason):
    response = ops.post(f"/indicators/alerts/{alert.pk}/{action}/", {f"{action}-reason": reason})
    assert response.status_code == 400
    assert "Say why: the reason is kept in the alert&#x27;s history." in response.content.decode()
    unchanged(alert)


def test_no_reason_field_at_all_is_a_form_error(ops, alert):
    response = ops.post(f"/indicators/alerts/{alert.pk}/acknowledge/", {})
    assert response.status_code == 400 and 'data-testid="form-error"' in response.content.decode()
    unchanged(alert)


def test_a_reason_over_the_limit_is_a_form_error(ops, alert):
    response = ops.post(f"/indicators/alerts/{alert.pk}/acknowledge/", {"acknowledge-reason": "x" * 2001})
    assert response.status_code == 400 and "at most 2000 characters" in response.content.decode()
    unchanged(alert)


def test_acknowledging_twice_says_why_not(ops, alert):
    assert ops.post(f"/indicators/alerts/{alert.pk}/acknowledge/", {"acknowledge-reason": "Mine."}).status_code == 302
    response = ops.post(f"/indicators/alerts/{alert.pk}/acknowledge/", {"acknowledge-reason": "Mine again."})
    assert response.status_code == 409
    assert f"Alert {alert.pk} is acknowledged, not firing." in response.content.decode()
    unchanged(alert, state="acknowledged", events=2)


def test_resolving_a_resolved_alert_says_why_not(ops, alert):
    assert ops.post(f"/indicators/alerts/{alert.pk}/resolve/", {"resolve-reason": "Fixed."}).status_code == 302
    response = ops.post(f"/indicators/alerts/{alert.pk}/resolve/", {"resolve-reason": "Again."})
    assert response.status_code == 409 and "already resolved" in response.content.decode()
    unchanged(alert, state="resolved", events=2)


@pytest.mark.parametrize(
    "path",
    ["/indicators/alerts/999999/acknowledge/", "/indicators/alerts/{pk}/delete/", "/indicators/alerts/{pk}/x.y/"],
)
def test_an_unknown_alert_or_action_is_404(ops, alert, path):
    assert ops.post(path.format(pk=alert.pk), {"acknowledge-reason": "x"}).status_code == 404
    unchanged(alert)


def test_a_get_on_an_action_is_405(ops, alert):
    assert ops.get(f"/indicators/alerts/{alert.pk}/acknowledge/").status_code == 405
    unchanged(alert)


def test_unknown_series_and_alerts_are_404(ops):
    assert ops.get("/indicators/series/999999/").status_code == 404
    assert ops.get("/indicators/alerts/999999/").status_code == 404


def test_a_pseudo_series_of_the_detectors_is_not_a_page(ops, alert):
    from indicators.models import Series

    engine = Series.objects.create(key="engine", label_key="", scope="committee", state={"day": "2026-01-01"})
    assert ops.get(f"/indicators/series/{engine.pk}/").status_code == 404
    assert b"engine" not in ops.get("/indicators/").content


def test_acknowledging_from_the_dashboard_returns_to_it(ops, alert):
    response = ops.post(
        f"/indicators/alerts/{alert.pk}/acknowledge/",
        {"acknowledge-reason": "Paging the on-call.", "from": "dashboard"},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledge_reason == "Paging the on-call."
    page = ops.get("/").content.decode()
    assert f"Alert {alert.pk} acknowledged" in page


def test_the_dashboard_lists_open_alerts_at_the_top_with_an_acknowledge_form(ops, alert):
    page = ops.get("/").content.decode()
    assert page.index('data-testid="indicator-alerts"') < page.index('data-testid="task-counts"')
    assert alert.title in page and f'action="/indicators/alerts/{alert.pk}/acknowledge/"' in page
    assert 'name="acknowledge-reason"' in page and 'value="dashboard"' in page
