"""/models/, a version's page, the panel on its committee case, and the dashboard."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import ModelVersion, VersionStatus
from fsar.testing import register_task, register_version

pytestmark = pytest.mark.django_db


def test_models_page_lists_families_with_status_expiry_case_and_held_tasks(client, ai, approved_version, operator):
    approved_version("coder-1")
    pending = register_version(ai, "coder-2").json()
    register_version(ai, "writer-1", family="writer", evaluation={})
    register_task(ai, "held-1", ai_model="coder-2")
    client.force_login(operator)
    page = client.get("/models/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index('data-family="coder"') < html.index('data-family="writer"')
    assert "Approved" in html and "Blocked (failed the criteria)" in html and "Pending review" in html
    assert f"case {pending['case']}</a> (open)" in html
    rows = {v.ai_model: v for v in page.context["versions"]}
    assert (rows["coder-2"].held, rows["coder-1"].held) == (1, 0)
    assert rows["coder-1"].approved_until is not None
    filtered = client.get("/models/?status=blocked").context["versions"]
    assert [v.ai_model for v in filtered] == ["writer-1"]


def test_models_page_makes_the_same_number_of_queries_for_more_versions(client, ai, operator):
    client.force_login(operator)
    register_version(ai, "v-0")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/models/").status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    for i in range(1, 12):
        register_version(ai, f"v-{i}", family=f"family-{i % 3}")
    assert queries() == few


def test_the_version_page_shows_history_chain_and_the_diff_against_the_approved_version(
    client, ai, approved_version, alice
):
    approved_version("coder-1", evaluation={"failure_rate": 0.03, "red_team_pass_rate": 0.95})
    body = register_version(ai, "coder-2", evaluation={"failure_rate": 0.05, "red_team_pass_rate": 0.97}).json()
    client.force_login(alice)
    page = client.get(f"/models/versions/{body['id']}/")
    assert page.status_code == 200
    diff = {row["name"]: row for row in page.context["diff"]}
    assert diff["failure_rate"]["worse"] is True and round(diff["failure_rate"]["delta"], 4) == 0.02
    assert diff["red_team_pass_rate"]["worse"] is False  # higher is better
    html = page.content.decode()
    assert "model_version.registered" in html and "registered; criteria: hold" in html
    assert f"case {body['case']}" in html
    assert "Retire this version" not in html  # committee members read; operators retire


def test_an_operator_retires_a_decided_version_and_its_tasks_are_denied(client, ai, approved_version, operator):
    body = approved_version()
    client.force_login(operator)
    short = client.post(f"/models/versions/{body['id']}/retire/", {"reason": "old"}, follow=True)
    assert "Not retired" in short.content.decode()
    assert ModelVersion.objects.get().status == VersionStatus.APPROVED
    done = client.post(
        f"/models/versions/{body['id']}/retire/", {"reason": "Superseded by the December build."}, follow=True
    )
    assert "is retired" in done.content.decode()
    assert ModelVersion.objects.get().status == VersionStatus.RETIRED
    assert register_task(ai, "t1").json()["status"] == "denied"


def test_a_pending_version_is_not_retired_behind_the_committees_back(client, ai, operator):
    body = register_version(ai).json()
    client.force_login(operator)
    page = client.post(f"/models/versions/{body['id']}/retire/", {"reason": "Changed our minds about it."}, follow=True)
    assert "waiting for the committee" in page.content.decode()
    assert ModelVersion.objects.get().status == VersionStatus.PENDING_REVIEW


def test_the_case_page_shows_the_model_panel(client, ai, approved_version, alice):
    approved_version("coder-1")
    body = register_version(ai, "coder-2", evaluation={"failure_rate": 0.09, "p95_ms": 4200}).json()
    client.force_login(alice)
    page = client.get(f"/reviews/cases/{body['case']}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="model-panel"' in html
    assert "s3://models/coder-2.safetensors" in html and "ab" * 32 in html
    assert "new-version-hold" in html
    assert 'data-metric="failure_rate" class="worse"' in html
    assert "coder-1 (approved)" in html


def test_the_dashboard_shows_versions_waiting_and_the_tasks_held_on_them(client, ai, operator):
    register_version(ai, "coder-2")
    register_task(ai, "t1", ai_model="coder-2")
    register_task(ai, "t2", ai_model="coder-2")
    register_task(ai, "t3", ai_model="unknown-1")
    client.force_login(operator)
    page = client.get("/")
    html = page.content.decode()
    assert 'data-testid="models-dashboard"' in html
    (waiting,) = page.context["models_waiting"]
    assert (waiting.ai_model, waiting.held) == ("coder-2", 2)
    assert page.context["models_unregistered_held"] == 1


def test_a_version_page_answers_each_role_as_the_permission_matrix_does(
    client, ai, operator, alice, customer_user, nobody
):
    body = register_version(ai).json()
    url = f"/models/versions/{body['id']}/"
    for user, status in ((operator, 200), (alice, 200), (customer_user, 404), (nobody, 404)):
        client.force_login(user)
        assert client.get(url).status_code == status, user
        assert client.get("/models/").status_code == status, user
    client.force_login(customer_user)
    assert client.post(f"{url}retire/", {"reason": "Customers cannot do this."}).status_code == 404
    client.force_login(alice)
    assert client.post(f"{url}retire/", {"reason": "Committee members cannot either."}).status_code == 404
