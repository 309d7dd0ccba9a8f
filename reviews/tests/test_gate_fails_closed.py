"""The execution gate fails closed: on a database error, a broken rule, or past its
deadline (HTTP 503 + Retry-After, nothing stored), and the deadline bounds the
gate's queries only. The rest of the gate's behaviour: test_gate.py."""

from contextlib import contextmanager

import pytest
from django.db import DatabaseError

from fsar.testing import report_md
from reviews.models import Case, PolicyRule
from tasks.models import ExecutionTask, TaskStatus

pytestmark = pytest.mark.django_db


def register(agent, external_id, **fields):
    body = {"external_id": external_id, "task_type": "implement_idea", **fields}
    return agent.post("/api/v1/tasks", data=body, content_type="application/json")


def test_the_gate_fails_closed_on_a_database_error(agent, monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("connection lost")

    monkeypatch.setattr("reviews.selectors.gate_state", broken)
    response = register(agent, "t1")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert not ExecutionTask.objects.exists()


def test_the_gate_fails_closed_on_a_broken_rule(agent):
    PolicyRule.objects.create(name="broken", priority=1, metric="failure_rate", action="deny")  # no threshold
    response = register(agent, "t1")
    assert response.status_code == 503
    assert response.has_header("Retry-After")
    assert not ExecutionTask.objects.exists()
    # Reports fail closed the same way.
    assert agent.post("/api/v1/proposals", data=report_md("r1"), content_type="text/markdown").status_code == 503


@contextmanager
def gate_state_locked(release_after_seconds: float = 10):
    """Another connection holds an ACCESS EXCLUSIVE lock on the gate state's table,
    so that the gate's first read waits. It lets go by itself after a while: if the
    deadline did not work, the request would finish (and the test fail) instead of
    hanging the run."""
    import threading

    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("server_side_binding", None)
    params.pop("prepare_threshold", None)
    locker = psycopg.connect(**params)
    locker.execute("LOCK TABLE reviews_gatestate IN ACCESS EXCLUSIVE MODE")
    timer = threading.Timer(release_after_seconds, locker.rollback)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        locker.rollback()
        locker.close()


@pytest.mark.postgres(reason="statement_timeout and a lock held by another connection")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_gate_fails_closed_past_its_deadline(agent, settings):
    # As in production, no test transaction: registration asks the gate outside one
    # (and start inside its own), and the lock below waits for nothing of ours.
    settings.GATE_STATEMENT_TIMEOUT_MS = 250
    allowed = register(agent, "t0").json()
    assert allowed["gate"]["decision"] == "allow"  # the same registration goes through without the lock

    with gate_state_locked():
        response = register(agent, "t1")
        start = agent.post(f"/api/v1/tasks/{allowed['id']}/start")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "cannot decide" in response.json()["detail"]
    assert not ExecutionTask.objects.filter(external_id="t1").exists()
    assert start.status_code == 503  # the check again at start has the same deadline
    assert ExecutionTask.objects.get(pk=allowed["id"]).status == TaskStatus.REGISTERED
    # Once the lock is gone, the gate answers again (and its deadline did not outlive it).
    assert register(agent, "t1").status_code == 201
    assert agent.post(f"/api/v1/tasks/{allowed['id']}/start").status_code == 200


@pytest.mark.postgres(reason="statement_timeout is a PostgreSQL setting")
def test_a_savepoint_rolled_back_inside_the_gate_leaves_the_transaction_usable(settings):
    # As when two registrations open the same held-task case at once: the loser's
    # insert fails in a savepoint, which is rolled back, and the gate reads on.
    from django.db import IntegrityError, transaction

    from tasks.gate import gate_deadline

    settings.GATE_STATEMENT_TIMEOUT_MS = 250
    Case.objects.create(kind="tasks", status="open", title="first", rule_name="r", task_type="implement_idea")
    with transaction.atomic(), gate_deadline():
        with pytest.raises(IntegrityError), transaction.atomic():
            Case.objects.create(kind="tasks", status="open", title="twin", rule_name="r", task_type="implement_idea")
        assert Case.objects.get().title == "first"


@pytest.mark.postgres(reason="statement_timeout is a PostgreSQL setting")
def test_the_gates_deadline_bounds_only_the_gates_queries(agent, settings):
    from django.db import connection

    from tasks.gate import gate_deadline

    settings.GATE_STATEMENT_TIMEOUT_MS = 250
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        (outside,) = cursor.fetchone()
        with gate_deadline():
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("250ms",)
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == (outside,)
    assert register(agent, "t1").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == (outside,)
