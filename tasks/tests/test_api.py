"""The agent API for tasks: registration with the gate, transitions, reads, errors."""

import json

import pytest
from django.test import override_settings

from tasks.gate import GateDecision
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db

REGISTER = {"external_id": "run-1", "task_type": "implement_idea", "ai_model": "gpt-5.1", "customer": "cust_acme"}


def post(client, url, body, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def register(agent, **overrides):
    return post(agent, "/api/v1/tasks", {**REGISTER, **overrides})


def hold_everything(task):
    return GateDecision("hold", "test policy holds all", "hold-all", 7)


def allow_everything(task):
    return GateDecision("allow", "test policy allows all", "allow-all", None)


def broken_gate(task):
    raise RuntimeError("rules table unreadable")


def test_it_registers_a_task_with_the_gate_decision(agent, api_key):
    response = register(agent)
    assert response.status_code == 201
    body = response.json()
    assert body["external_id"] == "run-1"
    assert body["ai_model"] == "gpt-5.1"
    assert body["customer"] == "cust_acme"
    assert body["status"] == "registered"
    assert body["gate"]["decision"] == "allow"
    assert body["gate"]["policy"] == "default-allow"
    task = ExecutionTask.objects.get(pk=body["id"])
    assert task.submitted_by == api_key[0]
    assert task.source == "api"


def test_the_same_registration_again_answers_200_with_the_same_task(agent):
    first = register(agent).json()
    again = register(agent)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert ExecutionTask.objects.count() == 1


def test_a_different_registration_of_the_same_external_id_is_a_conflict_naming_fields(agent):
    register(agent)
    response = register(agent, ai_model="llama-4-70b", task_type="self_improvement")
    assert response.status_code == 409
    assert set(response.json()["fields"]) == {"ai_model", "task_type"}
    assert "ai_model" in response.json()["detail"]
    assert ExecutionTask.objects.get().ai_model == "gpt-5.1"


def test_an_unknown_task_type_lists_the_allowed_ones(agent):
    response = register(agent, task_type="world_domination")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("task_type:")
    for allowed in ("implement_idea", "idea_implementation", "self_improvement"):
        assert allowed in detail
    assert not ExecutionTask.objects.exists()


@pytest.mark.parametrize("value", ["6", 6.5, True])
def test_integer_fields_refuse_strings_fractions_and_booleans(agent, value):
    task_id = register(agent).json()["id"]
    post(agent, f"/api/v1/tasks/{task_id}/start", {})
    response = post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": "succeeded", "tokens": value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "tokens"
    assert ExecutionTask.objects.get().status == "running"


def test_an_integer_field_takes_a_json_number_with_no_fraction_as_json_schema_does(agent):
    """JSON has one kind of number; JSON Schema's `integer` (what the schema says) includes 6.0."""
    task_id = register(agent).json()["id"]
    post(agent, f"/api/v1/tasks/{task_id}/start", {})
    response = agent.post(
        f"/api/v1/tasks/{task_id}/finish",
        '{"outcome": "succeeded", "tokens": 6.0, "cost_micros": 16009.0}',
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert (response.json()["tokens"], response.json()["cost_micros"]) == (6, 16009)


def test_unknown_fields_are_refused_by_name(agent):
    response = register(agent, colour="blue")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "colour"


def test_malformed_json_is_a_4xx_json_answer(agent):
    response = agent.post("/api/v1/tasks", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_a_task_runs_through_start_and_finish_with_duration_cost_and_tokens(agent):
    task_id = register(agent).json()["id"]
    started = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert started.status_code == 200
    assert started.json()["status"] == "running"
    finished = post(
        agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": "failed", "cost_micros": 1200, "tokens": 50, "error": "x"}
    )
    assert finished.status_code == 200
    body = finished.json()
    assert body["status"] == "failed"
    assert body["cost_micros"] == 1200 and body["tokens"] == 50 and body["error"] == "x"
    task = ExecutionTask.objects.get()
    assert task.duration_ms is not None and task.duration_ms >= 0
    assert task.duration_ms == int((task.finished_at - task.started_at).total_seconds() * 1000)


def test_finishing_before_starting_is_a_conflict_with_the_reason(agent):
    task_id = register(agent).json()["id"]
    response = post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": "succeeded"})
    assert response.status_code == 409
    assert "start it first" in response.json()["detail"]
    assert ExecutionTask.objects.get().status == "registered"


def test_a_repeated_finish_is_a_harmless_retry_but_a_different_one_conflicts(agent):
    task_id = register(agent).json()["id"]
    post(agent, f"/api/v1/tasks/{task_id}/start", {})
    body = {"outcome": "succeeded", "cost_micros": 10}
    assert post(agent, f"/api/v1/tasks/{task_id}/finish", body).status_code == 200
    assert post(agent, f"/api/v1/tasks/{task_id}/finish", body).status_code == 200
    assert post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": "failed"}).status_code == 409
    assert ExecutionTask.objects.get().status == "succeeded"


@override_settings(TASK_GATE="tasks.tests.test_api.hold_everything")
def test_a_held_task_cannot_start_gate_closed_with_the_case(agent):
    body = register(agent).json()
    assert body["status"] == "held"
    assert body["gate"] == {
        "decision": "hold",
        "reason": "test policy holds all",
        "policy": "hold-all",
        "case": 7,
        # From settings.TASK_GATE_DETAILS (reviews): no such review case here.
        "case_status": None,
        "rationale": None,
    }
    response = post(agent, f"/api/v1/tasks/{body['id']}/start", {})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("gate closed")
    assert response.json()["case"] == 7
    assert ExecutionTask.objects.get().status == "held"


@override_settings(TASK_GATE="tasks.tests.test_api.broken_gate")
def test_the_gate_fails_closed_with_503_and_stores_nothing(agent):
    response = register(agent)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert not ExecutionTask.objects.exists()


def test_a_retry_answers_200_with_the_task_even_while_the_gate_cannot_decide(agent):
    first = register(agent).json()
    with override_settings(TASK_GATE="tasks.tests.test_api.broken_gate"):
        again = register(agent)
        conflicting = register(agent, ai_model="llama-4-70b")
        new = register(agent, external_id="run-2")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["gate"]["decision"] == "allow"
    assert conflicting.status_code == 409
    assert new.status_code == 503
    assert ExecutionTask.objects.count() == 1


def test_a_retry_of_an_allowed_task_is_503_when_the_gate_cannot_say_it_still_allows_it(agent):
    first = register(agent).json()
    with override_settings(TASK_GATE_RECHECK="tasks.tests.test_api.broken_gate"):
        again = register(agent)
    assert again.status_code == 503  # never a stale allow
    assert again["Retry-After"]
    assert ExecutionTask.objects.get(pk=first["id"]).status == "registered"


@override_settings(TASK_GATE_RECHECK="tasks.tests.test_api.broken_gate")
def test_start_fails_closed_when_the_gate_cannot_decide_again(agent):
    task_id = register(agent).json()["id"]
    response = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    task = ExecutionTask.objects.get(pk=task_id)
    assert (task.status, task.started_at) == ("registered", None)
    assert task.history.count() == 1


@override_settings(TASK_GATE_RECHECK="tasks.tests.test_api.hold_everything")
def test_start_holds_a_task_the_gate_no_longer_allows_and_says_why(agent, api_key):
    task_id = register(agent).json()["id"]
    response = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "gate closed: the gate now says hold; the task is held (test policy holds all)",
        "decision": "hold",
        "policy": "hold-all",
        "case": 7,
    }
    task = ExecutionTask.objects.get(pk=task_id)
    assert (task.status, task.gate_decision, task.gate_case, task.started_at) == ("held", "hold", "7", None)
    refused = task.history.latest()
    assert (refused.history_change_reason, refused.history_api_key_id) == (
        "start refused; gate now: hold",
        api_key[0].pk,
    )


@pytest.mark.postgres(reason="an UPDATE … RETURNING with its history copy as a CTE is PostgreSQL's (core.history)")
def test_start_writes_the_task_and_its_history_row_in_one_statement(agent, api_key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    task_id = register(agent).json()["id"]
    with CaptureQueriesContext(connection) as queries:
        response = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert response.status_code == 200
    writes = [q["sql"] for q in queries if q["sql"].startswith(("UPDATE", "INSERT", "WITH"))]
    assert len(writes) == 1 and writes[0].startswith('WITH changed AS (UPDATE "execution_tasks" SET')
    task = ExecutionTask.objects.get(pk=task_id)
    started = task.history.latest()
    assert (started.history_type, started.history_change_reason, started.history_api_key_id) == (
        "~",
        "started",
        api_key[0].pk,
    )
    assert (started.status, started.started_at, started.gate_decision) == ("running", task.started_at, "allow")
    assert response.json()["started_at"] is not None


def test_start_asks_the_gate_in_one_query_beyond_the_transition_itself(agent, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first, second = register(agent).json()["id"], register(agent, external_id="run-2").json()["id"]
    post(agent, f"/api/v1/tasks/{first}/start", {})  # warms the rule cache and the key's last-used time
    with override_settings(TASK_GATE_RECHECK="tasks.tests.test_api.allow_everything"):
        with CaptureQueriesContext(connection) as without_gate:
            post(agent, f"/api/v1/tasks/{second}/start", {})
    ExecutionTask.objects.filter(pk=second).update(status="registered")
    with django_assert_num_queries(len(without_gate) + 1):  # + the gate state row; the rules are cached
        assert post(agent, f"/api/v1/tasks/{second}/start", {}).status_code == 200


def test_a_read_key_lists_and_reads_every_keys_tasks(client, make_api_key):
    _, writer = make_api_key(scopes=["tasks"])
    _, monitor = make_api_key(scopes=["read"])
    task = post(client, "/api/v1/tasks", {**REGISTER}, HTTP_AUTHORIZATION=f"Bearer {writer}").json()
    listed = client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {monitor}").json()
    assert [t["id"] for t in listed["items"]] == [task["id"]]
    assert client.get(f"/api/v1/tasks/{task['id']}", HTTP_AUTHORIZATION=f"Bearer {monitor}").status_code == 200
    refused = post(client, f"/api/v1/tasks/{task['id']}/start", {}, HTTP_AUTHORIZATION=f"Bearer {monitor}")
    assert refused.status_code == 403  # reading is not acting


def test_cancel_stops_an_unfinished_task_and_refuses_a_finished_one(agent):
    first = register(agent).json()["id"]
    response = post(agent, f"/api/v1/tasks/{first}/cancel", {"reason": "customer withdrew"})
    assert response.json()["status"] == "cancelled"
    second = register(agent, external_id="run-2").json()["id"]
    post(agent, f"/api/v1/tasks/{second}/start", {})
    post(agent, f"/api/v1/tasks/{second}/finish", {"outcome": "succeeded"})
    refused = post(agent, f"/api/v1/tasks/{second}/cancel", {})
    assert refused.status_code == 409
    assert ExecutionTask.objects.get(pk=second).status == "succeeded"


def test_unknown_task_ids_are_404_json(agent):
    for response in (agent.get("/api/v1/tasks/999999"), post(agent, "/api/v1/tasks/999999/start", {})):
        assert response.status_code == 404
        assert "detail" in response.json()


def test_get_shows_one_task(agent):
    task_id = register(agent).json()["id"]
    response = agent.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200
    assert response.json()["external_id"] == "run-1"


def test_list_filters_and_pages_with_a_cursor(agent):
    for i in range(5):
        register(agent, external_id=f"run-{i}", ai_model="m1" if i % 2 else "m2")
    page1 = agent.get("/api/v1/tasks?limit=2").json()
    assert [t["external_id"] for t in page1["items"]] == ["run-4", "run-3"]
    page2 = agent.get(f"/api/v1/tasks?limit=2&cursor={page1['next_cursor']}").json()
    assert [t["external_id"] for t in page2["items"]] == ["run-2", "run-1"]
    page3 = agent.get(f"/api/v1/tasks?limit=2&cursor={page2['next_cursor']}").json()
    assert [t["external_id"] for t in page3["items"]] == ["run-0"]
    assert page3["next_cursor"] is None
    only_m1 = agent.get("/api/v1/tasks?ai_model=m1").json()["items"]
    assert {t["external_id"] for t in only_m1} == {"run-1", "run-3"}
    by_external_id = agent.get("/api/v1/tasks?external_id=run-2").json()["items"]
    assert [t["external_id"] for t in by_external_id] == ["run-2"]


def test_list_refuses_a_forged_cursor_and_a_bad_status(agent):
    assert agent.get("/api/v1/tasks?cursor=%%%").status_code == 422
    response = agent.get("/api/v1/tasks?status=exploded")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("status:")


def test_requests_without_a_valid_key_are_401(client, make_api_key):
    assert client.get("/api/v1/tasks").status_code == 401
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION="Bearer fsar_not-a-key").status_code == 401
    api_key, secret = make_api_key()
    from tasks.services import api_key_revoke

    api_key_revoke(api_key_id=api_key.pk)
    response = client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_an_expired_key_is_401(client, make_api_key):
    from datetime import timedelta

    from django.utils import timezone

    _, secret = make_api_key(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_a_key_without_the_scope_is_403(client, make_api_key):
    _, secret = make_api_key(scopes=["read"])
    response = post(client, "/api/v1/tasks", REGISTER, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403
    assert "tasks" in response.json()["detail"]
    assert not ExecutionTask.objects.exists()


def test_an_oversized_body_is_a_json_413(agent):
    response = agent.post(
        "/api/v1/tasks", json.dumps({**REGISTER, "payload": {"x": "y" * 1_100_000}}), content_type="application/json"
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_status_changes_are_in_history_with_the_key_its_owner_and_the_reason(agent, api_key, agent_user):
    task_id = register(agent).json()["id"]
    post(agent, f"/api/v1/tasks/{task_id}/start", {})
    post(agent, f"/api/v1/tasks/{task_id}/finish", {"outcome": "succeeded"})
    history = list(ExecutionTask.history.filter(id=task_id).order_by("history_date"))
    assert [h.status for h in history] == [TaskStatus.REGISTERED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
    assert [h.history_change_reason for h in history] == [
        "registered; gate: allow",
        "started",
        "finished: succeeded",
    ]
    assert all(h.history_user == agent_user for h in history)
    assert all(h.history_api_key_id == api_key[0].pk for h in history)


def test_each_history_row_copies_every_column_of_the_task_as_it_was(agent):
    task_id = register(agent, payload={"prompt": "x"}).json()["id"]
    post(agent, f"/api/v1/tasks/{task_id}/start", {})
    task = ExecutionTask.objects.get(pk=task_id)
    created, started = ExecutionTask.history.filter(id=task_id).order_by("history_id")
    assert (created.history_type, started.history_type) == ("+", "~")
    assert created.status == "registered" and created.started_at is None
    for field in ExecutionTask._meta.concrete_fields:
        if field.name not in ("payload", "rollup_pending"):  # not kept in history (excluded_fields)
            assert getattr(started, field.attname) == getattr(task, field.attname), field.name
    assert created.history_date <= started.history_date


def test_a_long_cancel_reason_is_kept_whole_in_history(agent):
    task_id = register(agent).json()["id"]
    response = post(agent, f"/api/v1/tasks/{task_id}/cancel", {"reason": "r" * 2000})
    assert response.status_code == 200
    last = ExecutionTask.history.filter(id=task_id).latest("history_id")
    assert last.status == "cancelled"
    assert last.history_change_reason == "cancelled: " + "r" * 2000


def test_the_openapi_schema_documents_the_task_endpoints(client, operator):
    client.force_login(operator)
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/tasks" in schema["paths"]
    assert "/api/v1/tasks/bulk" in schema["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200


@pytest.mark.parametrize("n", [1, 40])
def test_the_task_list_makes_a_pinned_number_of_queries(agent, django_assert_num_queries, n):
    """Whatever the page holds: the key, the page, and its held tasks' case details in one query."""
    ExecutionTask.objects.bulk_create(
        ExecutionTask(external_id=f"list-{i}", task_type="implement_idea", status="held", gate_case="1")
        for i in range(n)
    )
    agent.get("/api/v1/tasks")  # the key's last-used time, once a minute
    with django_assert_num_queries(TASK_LIST_QUERIES):
        response = agent.get("/api/v1/tasks", {"limit": 50})
    assert len(response.json()["items"]) == n


TASK_LIST_QUERIES = 3
