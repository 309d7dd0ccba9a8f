"""`finish` on PostgreSQL (tasks.services._finish_at_once): one statement finishes a
running task only while it is running and the key's own, computes its duration in
the database as `duration_ms` does, and copies its history row; anything else is
answered by the locked path, as before."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import services
from tasks.models import ExecutionTask

pytestmark = [
    pytest.mark.postgres(reason="the finishing UPDATE with its history copy is PostgreSQL's"),
    pytest.mark.django_db,
]

REGISTER = {"external_id": "run-1", "task_type": "implement_idea", "ai_model": "gpt-5.1", "customer": "cust_acme"}
FINISH = {"outcome": "succeeded", "cost_micros": 1200, "tokens": 900}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def running(agent, external_id="run-1") -> int:
    task_id = post(agent, "/api/v1/tasks", {**REGISTER, "external_id": external_id}).json()["id"]
    assert post(agent, f"/api/v1/tasks/{task_id}/start", {}).status_code == 200
    return task_id


@pytest.mark.parametrize(
    "ago",
    [
        timedelta(microseconds=999),
        timedelta(microseconds=1000),
        timedelta(milliseconds=1, microseconds=1),
        timedelta(seconds=59, microseconds=999_999),
        timedelta(days=3, hours=25, microseconds=123_456),
        timedelta(microseconds=-1500),  # a clock that went back: rounded down, as duration_ms does
    ],
)
def test_the_duration_is_the_one_duration_ms_computes(agent, ago):
    task_id = running(agent)
    ExecutionTask.objects.filter(pk=task_id).update(started_at=ExecutionTask.objects.get(pk=task_id).started_at - ago)
    answer = post(agent, f"/api/v1/tasks/{task_id}/finish", FINISH).json()
    task = ExecutionTask.objects.get(pk=task_id)
    assert task.duration_ms == services.duration_ms(task.started_at, task.finished_at) == answer["duration_ms"]


def test_finish_writes_the_task_and_its_history_row_in_one_statement(agent, api_key):
    task_id = running(agent)
    with CaptureQueriesContext(connection) as queries:
        answer = post(agent, f"/api/v1/tasks/{task_id}/finish", FINISH).json()
    assert not [q for q in queries if q["sql"].startswith("SELECT") and "FOR UPDATE" in q["sql"]]
    task = ExecutionTask.objects.get(pk=task_id)
    row = task.history.latest()
    assert (row.history_type, row.history_change_reason, row.history_api_key_id) == (
        "~",
        "finished: succeeded",
        api_key[0].pk,
    )
    assert (row.status, row.finished_at, row.duration_ms, row.cost_micros, row.tokens) == (
        "succeeded",
        task.finished_at,
        task.duration_ms,
        1200,
        900,
    )
    assert task.rollup_pending  # for the drain (tasks.rollups)
    assert answer["status"] == "succeeded" and answer["finished_at"] is not None and answer["tokens"] == 900


def test_a_retry_a_conflict_and_another_keys_task_are_answered_as_before(agent, make_api_key):
    from django.test import Client

    task_id = running(agent)
    assert post(agent, f"/api/v1/tasks/{task_id}/finish", FINISH).status_code == 200
    assert post(agent, f"/api/v1/tasks/{task_id}/finish", FINISH).status_code == 200  # the same again
    assert post(agent, f"/api/v1/tasks/{task_id}/finish", {**FINISH, "tokens": 1}).status_code == 409
    history = ExecutionTask.objects.get(pk=task_id).history
    assert history.filter(history_change_reason__startswith="finished").count() == 1
    other_task = running(agent, "run-2")
    _, other = make_api_key()
    stranger = Client(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert post(stranger, f"/api/v1/tasks/{other_task}/finish", FINISH).status_code == 404
    assert ExecutionTask.objects.get(pk=other_task).status == "running"
