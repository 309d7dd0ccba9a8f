"""The operator dashboard, login, and settings safety (/healthz: test_health.py)."""

from pathlib import Path

import pytest
from django.urls import reverse

from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_counts_tasks_by_status_and_type(client, operator):
    for i, (task_type, status) in enumerate(
        [("implement_idea", "succeeded"), ("implement_idea", "failed"), ("self_improvement", "held")]
    ):
        ExecutionTask.objects.create(external_id=f"t{i}", task_type=task_type, status=status)
    client.force_login(operator)
    response = client.get(reverse("home"))
    counts = response.context["task_counts"]
    rows = {row["task_type"]: row for row in counts["types"]}
    assert rows["implement_idea"]["total"] == 2
    assert rows["self_improvement"]["total"] == 1
    assert counts["total"] == 3
    assert b'data-testid="task-total">3<' in response.content


def test_the_dashboard_query_count_does_not_grow_with_tasks(client, operator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_dashboard() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("home")).status_code == 200
        return len(ctx.captured_queries)

    client.force_login(operator)
    ExecutionTask.objects.create(external_id="t-first", task_type="implement_idea", status="succeeded")
    client.get(reverse("home"))  # warm per-session caches
    few = queries_for_dashboard()
    ExecutionTask.objects.bulk_create(
        ExecutionTask(
            external_id=f"t{i}",
            task_type=("implement_idea", "self_improvement")[i % 2],
            status=("succeeded", "failed", "held")[i % 3],
            ai_model=f"m{i % 7}",
        )
        for i in range(300)
    )
    assert queries_for_dashboard() == few


def test_a_wrong_password_shows_an_error_on_the_login_form(client, operator):
    response = client.post(reverse("login"), {"username": "olivia", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content
