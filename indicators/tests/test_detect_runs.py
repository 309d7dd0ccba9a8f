"""The detectors over stored points: state on the Series rows, alerts opened and
resolved by the detector, a person's resolve respected."""

import pytest

from indicators import selectors
from indicators.models import Alert, AlertState, Period, Point, Series
from indicators.services import alerts
from indicators.services.detect import GRACE, detectors_run
from indicators.tests.support import DAY, START, quiet

pytestmark = pytest.mark.django_db


def store(series, values, *, first=0):
    Point.objects.bulk_create(
        Point(series=series, period=Period.DAY, start=START + (first + i) * DAY, value=v, n=100)
        for i, v in enumerate(values)
    )


@pytest.fixture
def p95():
    return Series.objects.create(
        key="model.p95_ms",
        label_key="ai_model=m,task_type=t",
        labels={"ai_model": "m", "task_type": "t"},
        scope="model",
        ai_model="m",
        task_type="t",
    )


def run_until(day_index):
    return detectors_run(now=START + (day_index + 1) * DAY + GRACE)


def test_a_step_opens_an_alert_for_the_model_and_the_detector_resolves_it(p95):
    store(p95, quiet(40) + [1_500.0] * 4 + quiet(10))
    run_until(43)
    alert = Alert.objects.get()
    assert (alert.kind, alert.state, alert.ai_model, alert.series) == ("drift", AlertState.FIRING, "m", p95)
    assert selectors.model_alert_firing("m")
    assert alert.details["day"] == (START + 41 * DAY).date().isoformat()
    run_until(53)
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and alert.resolved_by is None
    assert [e for e in alert.events.values_list("type", flat=True) if e != "notified"] == [
        "fired",
        "cleared",
        "resolved",
    ]
    assert not selectors.model_alert_firing("m")


def test_days_are_judged_once(p95):
    store(p95, quiet(40) + [1_500.0] * 4)
    first = run_until(43)
    assert [t.what for t in first] == ["fire"]
    assert run_until(43) == []
    p95.refresh_from_db()
    assert p95.state["firing"] is True


def test_after_a_person_resolves_it_the_condition_must_hold_for_points_again(p95, operator):
    store(p95, quiet(40) + [1_500.0] * 10)
    run_until(43)
    alert = Alert.objects.get()
    alerts.alert_resolve(alert_id=alert.pk, by=operator, reason="known: new tokenizer, accepted")
    assert [t.what for t in run_until(44)] == []
    assert [t.what for t in run_until(45)] == ["fire"]
    assert Alert.objects.filter(state=AlertState.FIRING).exclude(pk=alert.pk).count() == 1
