"""The indicator pages: who may open what (table-driven: the operator, the
committee chair, a member, the member an alert is about, a customer, anonymous),
what each sees listed, and the chart data (reference band and thresholds)."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from core.roles import CUSTOMERS, OPERATORS
from fsar.testing import make_user
from indicators.catalog import EWMA
from indicators.tests.pages_support import drift_alert, honeypot_alert, make_series, reviewer_alert
from reviews import services as review_services

pytestmark = pytest.mark.django_db

ROLES = ("operator", "chair", "member", "subject", "customer", "anon")


@pytest.fixture
def world(django_user_model, operator, alice, bob, charlie):
    """alice chairs the committee, bob is a member, charlie the member the reviewer alerts are about."""
    review_services.review_settings_set(by=operator, chair=alice, reason="Alice chairs from this quarter.")
    make_user(django_user_model, "carla", CUSTOMERS)
    model = make_series("model.p95_ms", ref=(1000.0, 40.0), values=[1000, 1010, 990, 1200, 1300])
    committee = make_series("committee.approval_rate", ref=(0.6, 0.05), values=[0.6, 0.62, 0.58])
    watched = make_series("reviewer.approval_rate", member=charlie, values=[0.7, 1.0, 1.0])
    chairs_own = make_series("reviewer.vote_s", member=alice, values=[120, 110])
    return {
        "model": model,
        "committee": committee,
        "watched": watched,
        "chairs_own": chairs_own,
        "drift": drift_alert(model),
        "trust": reviewer_alert(charlie),
        "honeypot": honeypot_alert(charlie),
    }


USERS = {"operator": "olivia", "chair": "alice", "member": "bob", "subject": "charlie", "customer": "carla"}


def client_for(role: str) -> Client:
    from django.contrib.auth import get_user_model

    client = Client()
    if role != "anon":
        client.force_login(get_user_model().objects.get(username=USERS[role]))
    return client


def see(*roles: str) -> dict[str, int]:
    """`roles` get 200, anonymous visitors the login redirect, everyone else 404."""
    return {"anon": 302, **{r: 200 for r in roles}}


EVERYONE_ON_THE_PAGES = ("operator", "chair", "member", "subject")

PAGES = [
    ("/indicators/", see(*EVERYONE_ON_THE_PAGES)),
    ("series:model", see(*EVERYONE_ON_THE_PAGES)),
    ("series:committee", see(*EVERYONE_ON_THE_PAGES)),
    # A reviewer's series: operators and the chair, never other members nor the member themselves.
    ("series:watched", see("operator", "chair")),
    ("series:chairs_own", see("operator")),
    ("alert:drift", see(*EVERYONE_ON_THE_PAGES)),
    ("alert:trust", see("operator", "chair")),
    ("alert:honeypot", see("operator", "chair")),
]


def url_of(target: str, world) -> str:
    if target.startswith("/"):
        return target
    kind, name = target.split(":")
    return f"/indicators/{'series' if kind == 'series' else 'alerts'}/{world[name].pk}/"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("target", "expected"), PAGES, ids=[p[0] for p in PAGES])
def test_who_may_open_each_page(world, target, expected, role):
    response = client_for(role).get(url_of(target, world))
    assert response.status_code == expected.get(role, 404)


ACTIONS = [
    # Operators act on every alert; the chair on alerts about a reviewer; members on none.
    ("drift", {"operator": 302, "chair": 403, "member": 403, "subject": 403, "customer": 404, "anon": 302}),
    ("trust", {"operator": 302, "chair": 302, "member": 404, "subject": 404, "customer": 404, "anon": 302}),
    ("honeypot", {"operator": 302, "chair": 302, "member": 404, "subject": 404, "customer": 404, "anon": 302}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("alert", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_who_may_acknowledge_or_resolve(world, alert, expected, role, action):
    target = world[alert]
    response = client_for(role).post(
        f"/indicators/alerts/{target.pk}/{action}/", {f"{action}-reason": "Looked at it with the team."}
    )
    assert response.status_code == expected[role]
    target.refresh_from_db()
    acted = expected[role] == 302 and role != "anon"
    assert target.state == ({"acknowledge": "acknowledged", "resolve": "resolved"}[action] if acted else "firing")
    if acted:
        event = target.events.get(type=target.state)
        assert event.actor.username == USERS[role] and event.reason == "Looked at it with the team."


def test_a_member_sees_no_per_reviewer_series_nor_reviewer_alerts_listed(world):
    page = client_for("member").get("/indicators/").content.decode()
    assert 'data-scope="reviewer"' not in page
    assert f"/indicators/series/{world['watched'].pk}/" not in page
    assert f"/indicators/series/{world['model'].pk}/" in page and f"/indicators/series/{world['committee'].pk}/" in page
    assert world["drift"].title in page
    assert world["trust"].title not in page and "honeypot" not in page.lower()


def test_the_member_an_alert_is_about_never_sees_it_listed(world):
    page = client_for("subject").get("/indicators/").content.decode()
    assert world["trust"].title not in page and world["honeypot"].title not in page
    assert 'data-scope="reviewer"' not in page


def test_the_chair_sees_reviewer_series_but_not_their_own(world):
    page = client_for("chair").get("/indicators/").content.decode()
    assert f"/indicators/series/{world['watched'].pk}/" in page
    assert f"/indicators/series/{world['chairs_own'].pk}/" not in page
    assert world["trust"].title in page


def test_an_operator_who_is_the_subject_of_an_alert_does_not_see_it(world, charlie, client):
    from django.contrib.auth.models import Group

    charlie.groups.add(Group.objects.get(name=OPERATORS))
    client.force_login(charlie)
    page = client.get("/indicators/").content.decode()
    assert world["trust"].title not in page and world["drift"].title in page
    assert client.get(f"/indicators/alerts/{world['trust'].pk}/").status_code == 404
    assert client.get(f"/indicators/series/{world['watched'].pk}/").status_code == 404
    assert world["trust"].title not in client.get("/").content.decode()  # nor on the dashboard


def chart_data(page: str, script_id: str) -> dict:
    match = re.search(rf'<script id="{script_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, f"no json_script {script_id}"
    return json.loads(match.group(1))


def test_sparklines_carry_the_reference_band_and_the_thresholds(world):
    page = client_for("operator").get("/indicators/").content.decode()
    data = chart_data(page, f"spark-{world['model'].pk}")
    assert data["values"] == [1000, 1010, 990, 1200, 1300] and len(data["x"]) == 5
    assert data["mean"] == 1000.0
    assert data["fire"] == pytest.approx(1000 + EWMA.fire_at * 40)
    assert data["band"] == pytest.approx([1000 - EWMA.resolve_at * 40, 1000 + EWMA.resolve_at * 40])
    # A series where a fall is bad has its threshold below the mean.
    assert chart_data(page, f"spark-{world['committee'].pk}")["fire"] > 0.6
    down = make_series("committee.rationale_len", ref=(200.0, 20.0), values=[200, 190])
    page = client_for("operator").get("/indicators/").content.decode()
    assert chart_data(page, f"spark-{down.pk}")["fire"] == pytest.approx(200 - EWMA.fire_at * 20)


def test_open_alerts_come_first_firing_before_acknowledged(world, operator):
    from indicators.services.alerts import alert_acknowledge

    alert_acknowledge(alert_id=world["trust"].pk, by=operator, reason="On it.")
    page = client_for("operator").get("/indicators/").content.decode()
    rows = re.findall(r'data-testid="alert-row" data-alert="(\d+)" data-state="(\w+)"', page)
    states = [s for _, s in rows]
    assert states == sorted(states, key=lambda s: s != "firing") and "acknowledged" in states
    assert page.index('data-testid="open-alerts"') < page.index('data-testid="series-group"')
    # The series with an open alert is listed first in its group.
    model_rows = re.findall(
        r'data-testid="series-row" data-key="([\w.]+)" data-scope="model"( class="has-alert")?', page
    )
    assert model_rows[0] == ("model.p95_ms", ' class="has-alert"')


def test_the_alert_page_shows_the_series_around_the_change_point_and_the_history(world, operator):
    from indicators.services.alerts import alert_acknowledge

    alert_acknowledge(alert_id=world["drift"].pk, by=operator, reason="Rollback planned.")
    page = client_for("member").get(f"/indicators/alerts/{world['drift'].pk}/").content.decode()
    data = chart_data(page, "alert-chart-0")
    assert data["change"] == int(world["drift"].change_at.timestamp())
    assert data["values"] == [1000, 1010, 990, 1200, 1300] and "fire" in data
    assert "change point" in page
    assert re.search(r'data-type="fired"', page) and "by olivia: Rollback planned." in page
    assert 'data-testid="acknowledge-form"' not in page and 'data-testid="resolve-form"' not in page  # a member reads


def test_a_reviewer_alert_shows_the_members_behaviour_series_to_the_chair(world):
    page = client_for("chair").get(f"/indicators/alerts/{world['trust'].pk}/").content.decode()
    data = chart_data(page, "alert-chart-0")
    assert data["values"] == [0.7, 1.0, 1.0]
    assert 'data-testid="acknowledge-form"' in page and 'data-testid="resolve-form"' in page


def test_the_overview_makes_the_same_queries_for_few_and_many_series(world, django_assert_num_queries, operator):
    client = client_for("operator")
    client.get("/indicators/")  # warm the session and the content types
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/indicators/")
    for i in range(12):
        make_series("model.failure_rate", ai_model=f"m{i}", ref=(0.05, 0.01), values=[0.05, 0.06])
    with CaptureQueriesContext(connection) as many:
        client.get("/indicators/")
    assert len(many) == len(few)


def test_the_chair_is_not_told_which_case_is_a_honeypot(world):
    """The chair votes too: knowing which open case is a honeypot would defeat it."""
    honeypot = world["honeypot"]
    for page in (
        client_for("chair").get("/indicators/").content.decode(),
        client_for("chair").get(f"/indicators/alerts/{honeypot.pk}/").content.decode(),
    ):
        assert "charlie approved a honeypot report" in page
        assert str(honeypot.case_id_ref) not in page and "/reviews/cases/" not in page
    page = client_for("operator").get(f"/indicators/alerts/{honeypot.pk}/").content.decode()
    assert f"/reviews/cases/{honeypot.case_id_ref}/" in page and honeypot.title in page
