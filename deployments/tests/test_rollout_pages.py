"""The rollout page, its actions and the /models/ split: who may do what
(permission rows), and what each shows."""

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from deployments import rollouts
from deployments.models import Rollout, RolloutState
from deployments.tests.conftest import REASON, finished_tasks, passed_drill

pytestmark = pytest.mark.django_db

ROLES = ("anon", "nobody", "operator", "committee", "customer", "superuser")


@pytest.fixture
def user_for(operator, alice, customer_user, nobody, superuser):
    return {
        "anon": None,
        "nobody": nobody,
        "operator": operator,
        "committee": alice,
        "customer": customer_user,
        "superuser": superuser,
    }


@pytest.fixture
def rollout(family_pair, operator):
    stable, candidate = family_pair
    passed_drill(stable)
    return rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)


def pages(r):
    """(method, url, {role: status}); roles not listed expect 404."""
    return [
        ("get", f"/models/rollouts/{r.pk}/", {"anon": 302, "operator": 200, "committee": 200, "superuser": 200}),
        ("get", "/models/rollouts/999999/", {"anon": 302}),
        (
            "get",
            f"/models/rollouts/{r.pk}/promote/",
            {"anon": 302, "operator": 405, "committee": 405, "superuser": 405},
        ),
        ("post", f"/models/rollouts/{r.pk}/nonsense/", {"anon": 302}),
        ("post", f"/models/rollouts/{r.pk}/promote/", {"anon": 302, "operator": 302, "superuser": 302}),
        ("post", f"/models/rollouts/{r.pk}/pause/", {"anon": 302, "operator": 302, "superuser": 302}),
        ("post", f"/models/rollouts/{r.pk}/resume/", {"anon": 302, "operator": 302, "superuser": 302}),
        (
            "post",
            f"/models/rollouts/{r.pk}/rollback/",
            {"anon": 302, "operator": 302, "committee": 302, "superuser": 302},
        ),
        ("post", "/models/rollouts/new/", {"anon": 302, "operator": 302, "superuser": 302}),
        ("post", "/models/families/coder/drill/", {"anon": 302, "operator": 302, "superuser": 302}),
        ("post", "/models/families/nobody-has-it/drill/", {"anon": 302}),
    ]


def test_permission_rows_for_the_rollout_pages_and_actions(client, user_for, rollout, settings):
    settings.ROLLOUT_DRILL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.ROLLOUT_DRILL_TIMEOUT_SECONDS = 0.2
    for method, url, expected in pages(rollout):
        for role in ROLES:
            client.logout()
            if user_for[role] is not None:
                client.force_login(user_for[role])
            # A reason too short: every allowed POST is refused by the form, nothing changes.
            response = getattr(client, method)(url, {"reason": "x"}) if method == "post" else client.get(url)
            want = expected.get(role, 404)
            assert response.status_code == want, f"{role} {method} {url}: got {response.status_code}, want {want}"
            if want == 302 and role == "anon":
                assert response["Location"].startswith(reverse("login"))
    assert Rollout.objects.get().state == RolloutState.PROGRESSING


def test_the_route_api_needs_a_key_with_the_tasks_scope(client):
    assert client.get("/api/v1/models/route", {"family": "coder", "key": "k"}).status_code == 401


def test_an_operator_promotes_pauses_resumes_and_the_committee_rolls_back(client, rollout, operator, alice):
    client.force_login(operator)
    url = f"/models/rollouts/{rollout.pk}/"
    page = client.get(url).content.decode()
    assert (
        "Promote to the next step" in page
        and "Roll back now" in page
        and 'data-rollout-chart="rollout-chart-data"' in page
    )
    client.post(url + "promote/", {"reason": "Five percent looked healthy all morning."})
    assert Rollout.objects.get().weight == 25
    client.post(url + "pause/", {"reason": "Holding over the weekend."})
    refused = client.post(url + "promote/", {"reason": "Try to promote a paused one."}, follow=True)
    assert "Refused: rollout" in refused.content.decode() and Rollout.objects.get().weight == 25
    client.post(url + "resume/", {"reason": "Weekend traffic was normal."})
    client.force_login(alice)
    committee_page = client.get(url).content.decode()
    assert "Promote to the next step" not in committee_page and "Roll back now" in committee_page
    assert client.post(url + "promote/", {"reason": "The committee may not promote."}).status_code == 404
    client.post(url + "rollback/", {"reason": "The committee saw leaks in the candidate."})
    r = Rollout.objects.get()
    assert (r.state, r.weight) == (RolloutState.ROLLED_BACK, 0)
    assert AuditEntry.objects.get(kind="rollout.rolled_back").actor == "alice"


def test_the_models_page_shows_the_live_split_and_the_last_drill(client, rollout, operator):
    client.force_login(operator)
    html = client.get("/models/").content.decode()
    assert "<code>coder-stable</code> 95% · <code>coder-next</code> 5%" in html
    assert f"rollout {rollout.pk}, progressing" in html
    assert "last drill" in html and ">pass</strong>" in html


def test_the_models_page_says_why_a_rollout_cannot_start(client, family_pair, operator):
    stable, _ = family_pair
    finished_tasks("coder-stable", 5)
    client.force_login(operator)
    html = client.get("/models/").content.decode()
    assert "A rollout cannot start now: rollback target &#x27;coder-stable&#x27; has no rollback drill" in html


def test_starting_a_rollout_from_the_page_is_refused_without_a_drill_and_names_it(client, family_pair, operator):
    stable, candidate = family_pair
    client.force_login(operator)
    body = {"candidate": candidate.pk, "weights": "10, 100", "min_minutes": 5, "min_tasks": 5, "reason": REASON}
    refused = client.post("/models/rollouts/new/", body, follow=True).content.decode()
    assert "No rollout started" in refused and "has no rollback drill" in refused
    assert not Rollout.objects.exists()
    passed_drill(stable)
    bad = client.post("/models/rollouts/new/", {**body, "weights": "50, 10"}, follow=True).content.decode()
    assert "weights must rise" in bad and not Rollout.objects.exists()
    started = client.post("/models/rollouts/new/", body)
    r = Rollout.objects.get()
    assert started["Location"] == f"/models/rollouts/{r.pk}/" and (r.weight, r.steps[0]["min_tasks"]) == (10, 5)


def test_the_dashboard_shows_a_failed_drill_and_the_active_rollouts(client, rollout, operator):
    from django.utils import timezone

    from deployments.models import RollbackDrill

    failed = RollbackDrill.objects.create(
        family="coder",
        target=rollout.candidate,
        state=RollbackDrill.State.FAIL,
        reason="warm check failed: answered HTTP 500",
        warm_ok=False,
        warm_status=500,
        finished_at=timezone.now(),
    )
    client.force_login(operator)
    html = client.get("/").content.decode()
    assert f"Rollback drill {failed.pk} of <code>coder-next</code> (coder) failed" in html
    assert "answered HTTP 500" in html
    assert "coder: coder-next at 5% (progressing)" in html
