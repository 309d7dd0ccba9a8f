"""`start` outside a transaction on PostgreSQL (tasks.services._start_at_once): the
task read without a lock, the gate asked again, and one compare-and-set statement
setting it running with its history row. A task changed between the read and the
write is answered by the locked path, as before."""

import json

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from tasks.gate import GateDecision
from tasks.models import ExecutionTask, TaskStatus

pytestmark = [
    pytest.mark.postgres(reason="the compare-and-set UPDATE with its history copy is PostgreSQL's (core.history)"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

REGISTER = {"external_id": "run-1", "task_type": "implement_idea", "ai_model": "gpt-5.1", "customer": "cust_acme"}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def allow_everything(task):
    return GateDecision("allow", "test policy allows all", "allow-all", None)


def withdrawn_while_asked(task):
    """Allows, but the task is withdrawn (denied) while the gate is being asked: the
    first time only, as a revocation racing the start would."""
    if not withdrawn_while_asked.done:
        withdrawn_while_asked.done = True
        ExecutionTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.DENIED, gate_decision="deny", gate_reason="model version revoked"
        )
    return allow_everything(task)


@override_settings(TASK_GATE="tasks.tests.test_start_at_once.allow_everything")
@override_settings(TASK_GATE_RECHECK="tasks.tests.test_start_at_once.allow_everything")
def test_start_commits_the_task_and_its_history_row_without_a_transaction_of_its_own(agent, api_key):
    task_id = post(agent, "/api/v1/tasks", REGISTER).json()["id"]
    with CaptureQueriesContext(connection) as queries:
        response = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert response.status_code == 200 and response.json()["status"] == "running"
    statements = [q["sql"] for q in queries]
    assert "BEGIN" not in statements and "COMMIT" not in statements
    task = ExecutionTask.objects.get(pk=task_id)
    started = task.history.latest()
    assert (task.status, started.status, started.history_change_reason, started.history_api_key_id) == (
        "running",
        "running",
        "started",
        api_key[0].pk,
    )
    assert started.started_at == task.started_at is not None
    # A retry changes nothing (the locked path answers for a task already running).
    assert post(agent, f"/api/v1/tasks/{task_id}/start", {}).status_code == 200
    assert task.history.count() == 2


@override_settings(TASK_GATE="tasks.tests.test_start_at_once.allow_everything")
@override_settings(TASK_GATE_RECHECK="tasks.tests.test_start_at_once.withdrawn_while_asked")
def test_a_task_withdrawn_while_the_gate_is_asked_does_not_start(agent):
    withdrawn_while_asked.done = False
    task_id = post(agent, "/api/v1/tasks", REGISTER).json()["id"]
    response = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert response.status_code == 409 and "gate closed" in response.json()["detail"]
    task = ExecutionTask.objects.get(pk=task_id)
    assert (task.status, task.started_at, task.gate_reason) == ("denied", None, "model version revoked")
    assert not task.history.filter(history_change_reason="started").exists()


@override_settings(TASK_GATE="tasks.tests.test_start_at_once.allow_everything")
@override_settings(TASK_GATE_RECHECK="tasks.tests.test_start_at_once.allow_everything")
def test_another_keys_task_answers_404_without_a_transaction_too(agent, make_api_key):
    task_id = post(agent, "/api/v1/tasks", REGISTER).json()["id"]
    _, other = make_api_key()
    stranger = Client(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert post(stranger, f"/api/v1/tasks/{task_id}/start", {}).status_code == 404
    assert ExecutionTask.objects.get(pk=task_id).status == "registered"


def test_with_the_real_gate_a_start_after_a_pause_is_refused_and_held(agent, operator):
    """The composed gate (settings.TASK_GATE_RECHECK), asked on the path without a
    transaction: a pause since registration holds the task, as on the locked path."""
    from reviews import services as review_services

    plain = {"external_id": "t0", "task_type": "implement_idea", "customer": "cust_acme"}  # no model version check
    before = post(agent, "/api/v1/tasks", plain).json()
    task = post(agent, "/api/v1/tasks", {**plain, "external_id": "t1"}).json()
    assert task["gate"]["decision"] == "allow"
    assert post(agent, f"/api/v1/tasks/{before['id']}/start", {}).status_code == 200

    review_services.gate_pause(by=operator, reason="incident 42: the agent misbehaves")
    response = post(agent, f"/api/v1/tasks/{task['id']}/start", {})

    assert response.status_code == 409 and "incident 42" in response.json()["detail"]
    assert (response.json()["decision"], response.json()["policy"]) == ("hold", "global-pause")
    stored = ExecutionTask.objects.get(pk=task["id"])
    assert (stored.status, stored.gate_policy, stored.started_at) == (TaskStatus.HELD, "global-pause", None)
    assert stored.history.latest().history_change_reason == "start refused; gate now: hold"


def test_with_the_real_gate_the_task_and_the_gates_state_are_read_in_one_statement(agent):
    """The composed gate's one read on every start (the gate's state row) goes with the
    task's read (tasks.gate.ReadWithTask): a start is the key's read, that one read and
    the compare-and-set. (Its deadline: reviews/tests/test_gate_fails_closed.py.)"""
    plain = {"external_id": "t0", "task_type": "implement_idea", "customer": "cust_acme"}
    warm = post(agent, "/api/v1/tasks", plain).json()["id"]
    post(agent, f"/api/v1/tasks/{warm}/start", {})  # the rule cache and the key's last-used time
    task_id = post(agent, "/api/v1/tasks", {**plain, "external_id": "t1"}).json()["id"]
    with CaptureQueriesContext(connection) as queries:
        assert post(agent, f"/api/v1/tasks/{task_id}/start", {}).status_code == 200
    statements = [q["sql"] for q in queries]
    assert len(statements) == 3, statements
    reads = [sql for sql in statements if "EXECUTE fsar_task_read_with_gate_" in sql]
    assert len(reads) == 1, statements
    assert '"execution_tasks" t LEFT JOIN LATERAL' in prepared_statement(reads[0])
    assert "reviews_gatestate" in prepared_statement(reads[0])
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.RUNNING


def prepared_statement(read: str) -> str:
    """The definition of the statement a read EXECUTEs, as prepared on this connection."""
    name = read.split("EXECUTE ", 1)[1].split("(", 1)[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [name])
        return cursor.fetchone()[0]


def test_the_read_with_the_gate_is_prepared_once_and_runs_with_a_generic_plan(agent):
    """Connections plan each execution for its values (fsar/settings.py); this read, by
    primary key, is prepared once per connection and executed with a generic plan
    (core.prepared): PostgreSQL neither parses nor plans it again on each start."""
    plain = {"external_id": "t0", "task_type": "implement_idea", "customer": "cust_acme"}
    ids = [post(agent, "/api/v1/tasks", {**plain, "external_id": f"t{i}"}).json()["id"] for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        for task_id in ids:
            assert post(agent, f"/api/v1/tasks/{task_id}/start", {}).status_code == 200
    statements = [q["sql"] for q in queries]
    assert sum(sql.startswith("PREPARE fsar_task_read_with_gate_") for sql in statements) <= 1, statements
    reads = [sql for sql in statements if "EXECUTE fsar_task_read_with_gate_" in sql]
    assert len(reads) == 3 and all("SET LOCAL plan_cache_mode = force_generic_plan" in sql for sql in reads)
    name = reads[0].split("EXECUTE ", 1)[1].split("(", 1)[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s", [name])
        generic, custom = cursor.fetchone()
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_custom_plan",)  # the connection's own setting is untouched
    assert generic >= 3 and custom == 0


def test_a_start_whose_prepared_read_is_gone_still_answers_and_prepares_it_again(agent):
    """A session that lost the statement (DEALLOCATE, a server-side reset) fails that one
    read; the locked path answers the start, and the next start prepares it again."""
    plain = {"external_id": "t0", "task_type": "implement_idea", "customer": "cust_acme"}
    ids = [post(agent, "/api/v1/tasks", {**plain, "external_id": f"t{i}"}).json()["id"] for i in range(3)]
    assert post(agent, f"/api/v1/tasks/{ids[0]}/start", {}).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'fsar_task_read_with_gate_%%'")
        (gone,) = cursor.fetchone()
        cursor.execute(f"DEALLOCATE {gone}")

    with CaptureQueriesContext(connection) as queries:
        response = post(agent, f"/api/v1/tasks/{ids[1]}/start", {})
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert any(q["sql"].startswith("BEGIN") or "FOR UPDATE" in q["sql"] for q in queries), "the locked path answered"
    task = ExecutionTask.objects.get(pk=ids[1])
    assert task.status == TaskStatus.RUNNING and task.history.latest().history_change_reason == "started"

    with CaptureQueriesContext(connection) as queries:
        assert post(agent, f"/api/v1/tasks/{ids[2]}/start", {}).status_code == 200
    statements = [q["sql"] for q in queries]
    assert any(sql.startswith("PREPARE fsar_task_read_with_gate_") for sql in statements), statements
    assert not any(gone + "(" in sql for sql in statements)


def test_with_the_gates_state_row_missing_a_start_is_held(agent):
    """A row of NULLs beside the task (no gate state row) is no state at all: the gate
    fails closed, as its own read does (reviews.selectors.gate_state)."""
    from reviews.models import GateState
    from reviews.selectors import GATE_STATE_MISSING

    task_id = post(agent, "/api/v1/tasks", {"external_id": "t1", "task_type": "implement_idea"}).json()["id"]
    GateState.objects.all().delete()
    response = post(agent, f"/api/v1/tasks/{task_id}/start", {})
    assert response.status_code == 409 and GATE_STATE_MISSING in response.json()["detail"]
    assert ExecutionTask.objects.get(pk=task_id).status == TaskStatus.HELD


def test_the_gates_deadline_writes_ids_out_as_the_driver_would(settings):
    """The deadline's one message writes its parameters into the query: whole numbers
    as psycopg's mogrify would (a negative one after a space, so `1 -%s` stays a
    subtraction), anything else by mogrify itself."""
    from psycopg import ClientCursor

    from tasks.gate import gate_deadline

    settings.GATE_STATEMENT_TIMEOUT_MS = 1234
    query = "SELECT %s, 1 -%s, '100%%', current_setting('statement_timeout')"
    with gate_deadline(), connection.cursor() as cursor:
        cursor.execute(query, [5, -3])
        assert cursor.fetchone() == (5, 4, "100%", "1234ms")
        cursor.execute("SELECT %s, %s", [7, "it's"])
        assert cursor.fetchone() == (7, "it's")
    with connection.cursor() as cursor:
        written = ClientCursor(cursor.connection).mogrify(query, [5, -3])
    assert written == query % ("5", " -3")
