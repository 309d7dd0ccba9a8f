"""Lone surrogates ("\\ud800" in JSON: not Unicode text) sent by the AI client are a
422 naming the field, nothing stored, never a 500: in every text field of the
task API and in a payload's keys and values, on SQLite and PostgreSQL."""

import json

import pytest
from django.db import DataError, transaction

from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db
LONE = "\\ud800"  # as the client writes it in JSON
PAIR = "\\ud83d\\ude00"  # a valid pair (an emoji): fine


def post(agent, path: str, body: str):
    return agent.post(path, body, content_type="application/json")


def refused(response, field: str) -> None:
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}: ") and "lone surrogate" in detail


@pytest.mark.adversary
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (f'"external_id": "run-{LONE}"', "external_id"),
        (f'"external_id": "r1", "ai_model": "m{LONE}"', "ai_model"),
        (f'"external_id": "r1", "customer": "{LONE}x"', "customer"),
        (f'"external_id": "r1", "proposal_id": "p{LONE}"', "proposal_id"),
        (f'"external_id": "r1", "payload": {{"k{LONE}": 1}}', "payload"),
        (f'"external_id": "r1", "payload": {{"a": [1, {{"b": "v{LONE}"}}]}}', "payload"),
    ],
    ids=["external_id", "ai_model", "customer", "proposal_id", "payload-key", "payload-value"],
)
def test_registering_with_a_lone_surrogate_is_a_422_naming_the_field(agent, fields, field):
    ok = post(agent, "/api/v1/tasks", f'{{"external_id": "fine-{PAIR}", "task_type": "implement_idea"}}')
    assert ok.status_code == 201 and ok.json()["external_id"] == "fine-\U0001f600"  # the door: JSON escapes work
    response = post(agent, "/api/v1/tasks", f'{{{fields}, "task_type": "implement_idea"}}')
    refused(response, field)
    assert ExecutionTask.objects.count() == 1


def test_the_payload_error_says_where_in_the_payload(agent):
    response = post(agent, "/api/v1/tasks", f'{{"external_id": "r", "task_type": "implement_idea", '
                                            f'"payload": {{"a": [1, {{"b": "v{LONE}"}}]}}}}')  # fmt: skip
    assert response.json()["detail"].endswith("at payload.a[1].b")


@pytest.mark.adversary
def test_finishing_cancelling_and_backfilling_with_a_lone_surrogate_is_a_422(agent):
    task = post(agent, "/api/v1/tasks", '{"external_id": "r1", "task_type": "implement_idea"}').json()
    refused(post(agent, f"/api/v1/tasks/{task['id']}/cancel", f'{{"reason": "{LONE}"}}'), "reason")
    post(agent, f"/api/v1/tasks/{task['id']}/start", "{}")
    refused(
        post(agent, f"/api/v1/tasks/{task['id']}/finish", f'{{"outcome": "failed", "error": "boom{LONE}"}}'), "error"
    )
    assert ExecutionTask.objects.get().status == "running"
    row = (
        '{"external_id": "h-1", "task_type": "implement_idea", "status": "failed", '
        '"started_at": "2026-11-01T10:00:00Z", "finished_at": "2026-11-01T10:01:00Z", '
        f'"error": "x{LONE}"}}'
    )
    refused(post(agent, "/api/v1/tasks/bulk", f'{{"tasks": [{row}]}}'), "tasks[0].error")
    assert ExecutionTask.objects.count() == 1


@pytest.mark.adversary
@pytest.mark.postgres(reason="PostgreSQL's jsonb refuses the escape: without the check this was a 500")
def test_a_payload_key_with_a_lone_surrogate_on_postgresql_is_a_422_not_a_database_error(agent):
    # The door: PostgreSQL itself cannot store it.
    with pytest.raises(DataError), transaction.atomic():
        ExecutionTask.objects.create(
            external_id="direct", task_type="implement_idea", payload=json.loads(f'{{"k{LONE}": 1}}')
        )
    response = post(
        agent, "/api/v1/tasks", f'{{"external_id": "r1", "task_type": "implement_idea", "payload": {{"k{LONE}": 1}}}}'
    )
    refused(response, "payload")
    assert not ExecutionTask.objects.exists()
