"""POST /api/v1/tasks/bulk: finished tasks of the past, all or nothing."""

import json

import pytest
from django.test import override_settings

from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db


def row(i: int, **overrides) -> dict:
    return {
        "external_id": f"hist-{i}",
        "task_type": "self_improvement",
        "ai_model": "claude-opus-5",
        "customer": "cust_acme",
        "status": "succeeded",
        "started_at": "2026-10-01T09:00:00Z",
        "finished_at": "2026-10-01T09:00:02.500Z",
        "cost_micros": 900,
        "tokens": 120,
        **overrides,
    }


def bulk(client, rows):
    return client.post("/api/v1/tasks/bulk", json.dumps({"tasks": rows}), content_type="application/json")


def test_it_stores_finished_tasks_with_their_durations(agent):
    response = bulk(agent, [row(1), row(2, status="failed", error="boom")])
    assert response.status_code == 200
    assert response.json() == {"created": 2, "unchanged": 0}
    task = ExecutionTask.objects.get(external_id="hist-1")
    assert task.duration_ms == 2500
    assert task.source == "backfill"
    assert task.status == "succeeded"
    assert ExecutionTask.objects.get(external_id="hist-2").error == "boom"


def test_a_bad_row_stores_nothing_and_names_the_first_bad_row(agent):
    rows = [row(1), row(2), row(3, started_at="2026-10-01T09:00:00"), row(4, tokens="7")]
    response = bulk(agent, rows)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("tasks[2].started_at")
    assert not ExecutionTask.objects.exists()


def test_finished_before_started_is_refused_by_row(agent):
    response = bulk(agent, [row(1), row(2, finished_at="2026-10-01T08:00:00Z")])
    assert response.status_code == 422
    assert "tasks[1].finished_at" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


def test_only_finished_statuses_may_be_backfilled(agent):
    response = bulk(agent, [row(1, status="running")])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "tasks[0].status"


def test_a_repeated_backfill_is_unchanged_and_a_different_one_conflicts(agent):
    bulk(agent, [row(1), row(2)])
    again = bulk(agent, [row(1), row(2), row(3)])
    assert again.status_code == 200
    assert again.json() == {"created": 1, "unchanged": 2}
    conflict = bulk(agent, [row(4), row(1, tokens=999)])
    assert conflict.status_code == 409
    assert "tasks[1]" in conflict.json()["detail"] and "tokens" in conflict.json()["detail"]
    assert not ExecutionTask.objects.filter(external_id="hist-4").exists()


def test_duplicates_within_a_request_are_refused(agent):
    response = bulk(agent, [row(1), row(1)])
    assert response.status_code == 422
    assert "tasks[1].external_id" in response.json()["detail"]


@override_settings(TASK_GATE="tasks.tests.test_api.broken_gate")
def test_backfills_skip_the_gate(agent):
    assert bulk(agent, [row(1)]).status_code == 200


def test_it_takes_ten_thousand_rows_and_refuses_more(agent):
    response = bulk(agent, [row(i) for i in range(10_000)])
    assert response.status_code == 200
    assert ExecutionTask.objects.count() == 10_000
    too_many = bulk(agent, [row(i) for i in range(10_001)])
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "tasks"


def test_backfill_needs_the_backfill_scope(client, make_api_key):
    _, secret = make_api_key(scopes=["tasks", "read"])
    response = client.post(
        "/api/v1/tasks/bulk",
        json.dumps({"tasks": [row(1)]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 403


def test_backfilled_rows_are_in_history_with_the_key(agent, api_key):
    bulk(agent, [row(1)])
    history = ExecutionTask.history.get(external_id="hist-1")
    assert history.history_change_reason == "backfilled"
    assert history.history_api_key_id == api_key[0].pk
