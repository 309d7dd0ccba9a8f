"""Typed errors carrying the server's JSON, and FSAR reports, against the live server."""

from __future__ import annotations

import time

import httpx
import pytest

from fsar_client import (
    FSAR,
    AuthError,
    Conflict,
    GateUnavailable,
    InvalidInput,
    NotFound,
)

from .conftest import LiveServer, free_port, report_md

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_revoked_key_is_an_auth_error_with_the_servers_detail(live_fsar, agent_key):
    from tasks.services import api_key_revoke

    key, secret = agent_key
    client = FSAR(live_fsar.url, secret)
    assert client.register("implement_idea", external_id="before").status == "registered"  # the key works ...
    api_key_revoke(api_key_id=key.pk)
    with pytest.raises(AuthError) as error:  # ... and not once revoked
        client.register("implement_idea", external_id="after")
    assert error.value.status_code == 401
    assert error.value.body == {"detail": "Missing, unknown, revoked or expired API key."}


def test_a_key_without_the_scope_is_an_auth_error_naming_it(live_fsar, make_api_key, transactional_db):
    _, secret = make_api_key(scopes=["read"])
    with pytest.raises(AuthError, match="'tasks' scope") as error:
        FSAR(live_fsar.url, secret).register("implement_idea", external_id="x")
    assert error.value.status_code == 403


def test_bad_input_names_the_field(fsar):
    @fsar.task("world_domination")  # not a task type
    def conquer() -> None:
        raise AssertionError("must not run")

    with pytest.raises(InvalidInput) as error:
        conquer()
    assert error.value.field == "task_type" and error.value.status_code == 422
    assert "implement_idea" in error.value.detail


def test_the_same_external_id_with_other_fields_is_a_conflict_naming_them(fsar):
    fsar.register("implement_idea", external_id="run-1", ai_model="m1")
    assert fsar.register("implement_idea", external_id="run-1", ai_model="m1").status == "registered"  # a retry
    with pytest.raises(Conflict) as error:
        fsar.register("implement_idea", external_id="run-1", ai_model="m2")
    assert error.value.fields == ["ai_model"]
    assert "already registered" in error.value.body["detail"]


@pytest.mark.adversary
def test_another_keys_task_is_not_found(fsar, live_fsar, make_api_key):
    task = fsar.register("implement_idea", external_id="mine")
    _, other = make_api_key(scopes=["tasks"])
    assert fsar.decision(task.task_id).external_id == "mine"  # the owner reads it ...
    with pytest.raises(NotFound):  # ... another key does not learn it exists
        FSAR(live_fsar.url, other).decision(task.task_id)


def test_an_unreachable_server_is_gate_unavailable_after_the_retries():
    client = FSAR(f"http://127.0.0.1:{free_port()}", "fsar_nothing_listens", retries=1)
    with pytest.raises(GateUnavailable, match="after 2 attempts") as error:
        client.register("implement_idea", external_id="x")
    assert error.value.retryable and error.value.status_code is None


def test_a_rate_limited_key_is_retried_after_the_servers_retry_after(django_db_setup, agent_key):
    server = LiveServer(API_RATE_LIMIT_REQUESTS="2", API_RATE_LIMIT_WINDOW_SECONDS="2")
    try:
        _, secret = agent_key
        answers: list[tuple[int, str | None, float]] = []
        hooks = {"response": [lambda r: answers.append((r.status_code, r.headers.get("Retry-After"), time.time()))]}
        client = FSAR(server.url, secret, http_client=httpx.Client(event_hooks=hooks))
        # Five quick registrations: at least three fall in one 2 s window (at most one
        # window boundary passes meanwhile), so one of them meets a 429.
        statuses = [client.register("implement_idea", external_id=f"r-{i}").status for i in range(5)]
        assert statuses == ["registered"] * 5
        limited = [(i, a) for i, a in enumerate(answers) if a[0] == 429]
        assert limited, answers
        # It was sent again, no sooner than Retry-After said, and then stored.
        index, (_, retry_after, at) = limited[0]
        assert answers[index + 1][2] - at >= int(retry_after)
    finally:
        server.stop()
    from tasks.models import ExecutionTask

    assert ExecutionTask.objects.count() == 5


def test_submit_report_returns_the_gates_answer_and_the_case_as_an_integer(fsar):
    held = fsar.submit_report(report_md("r-1", severity=30))
    assert held.created and held.decision == "hold" and isinstance(held.case, int)
    assert held.policy == "severity-30-hold" and held.case_status == "open"
    again = fsar.submit_report(report_md("r-1", severity=30).encode())
    assert not again.created and again.case == held.case
    allowed = fsar.submit_report(
        {
            "id": "r-2",
            "timestamp": "2026-11-30T10:00:00Z",
            "proposal": "implement_idea: tidy logs",
            "severity": 2,
            "risks": [],
            "mitigations": [],
            "block_execution": False,
        }
    )
    assert allowed.created and allowed.decision == "allow" and allowed.case is None
    with pytest.raises(Conflict) as error:
        fsar.submit_report(report_md("r-1", severity=31))
    assert error.value.status_code == 409 and error.value.body["detail"]
