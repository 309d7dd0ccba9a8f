"""`GET /api/v1/tasks/{id}/decision`: the gate's decision, and the long-poll that
answers as soon as it changes. The Python client's tests (clients/python/tests)
drive the same endpoint through a live server."""

import json
import socket
import threading
import time

import pytest
from django.db import connection
from django.test import override_settings

from tasks import decisions, services
from tasks.gate import GateDecision
from tasks.models import ExecutionTask

REGISTER = {"external_id": "run-1", "task_type": "implement_idea", "ai_model": "gpt-5.1"}


def hold_everything(task):
    return GateDecision("hold", "test policy holds all", "hold-all", "7")


def register(client, **overrides) -> dict:
    response = client.post("/api/v1/tasks", json.dumps({**REGISTER, **overrides}), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


class decide_later(threading.Thread):  # lower case: reads as what it does
    """After `delay` seconds, apply `decision` to the held task from another thread (its
    own database connection, committed), as a committee decision elsewhere would;
    `decided` is when it returned."""

    def __init__(self, task_id: int, decision: GateDecision, by, delay: float) -> None:
        super().__init__()
        self.task_id, self.decision, self.by, self.delay = task_id, decision, by, delay
        self.decided = 0.0
        self.start()

    def run(self) -> None:
        time.sleep(self.delay)
        services.task_gate_update(
            task_id=self.task_id,
            decision=self.decision,
            actor=services.Actor(user=self.by),
            reason=self.decision.reason,
        )
        self.decided = time.monotonic()
        connection.close()


@pytest.mark.django_db
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything")
def test_it_answers_the_decision_at_once_without_wait(agent):
    task = register(agent)
    response = agent.get(f"/api/v1/tasks/{task['id']}/decision")
    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == task["id"] and body["external_id"] == "run-1"
    assert body["status"] == "held"
    assert body["gate"]["decision"] == "hold" and body["gate"]["case"] == 7
    assert body["gate"]["reason"] == "test policy holds all"
    assert len(body["version"]) == 16


@pytest.mark.django_db
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything")
def test_the_version_changes_with_the_decision(agent, operator):
    task = register(agent)
    before = agent.get(f"/api/v1/tasks/{task['id']}/decision").json()["version"]
    services.task_gate_update(
        task_id=task["id"],
        decision=GateDecision("allow", "case 7 approved", "hold-all", "7"),
        actor=services.Actor(user=operator),
        reason="case 7 approved",
    )
    after = agent.get(f"/api/v1/tasks/{task['id']}/decision").json()
    assert after["status"] == "registered" and after["gate"]["decision"] == "allow"
    assert after["version"] != before


@pytest.mark.adversary
@pytest.mark.django_db
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything")
def test_a_tasks_key_cannot_watch_another_keys_decision_but_a_read_key_may(agent, make_api_key):
    task = register(agent)
    _, other_tasks_key = make_api_key(scopes=["tasks"])
    _, reader = make_api_key(scopes=["read"])
    _, reports_only = make_api_key(scopes=["reports"])
    url = f"/api/v1/tasks/{task['id']}/decision"
    # The registering key reaches it (the door exists) ...
    assert agent.get(url).status_code == 200
    # ... another key with the same scope does not learn it exists.
    refused = agent.get(url, **bearer(other_tasks_key))
    assert refused.status_code == 404
    assert refused.json() == agent.get("/api/v1/tasks/999999/decision", **bearer(other_tasks_key)).json() | {
        "detail": f"No task with id {task['id']}."
    }
    assert agent.get(url, **bearer(reader)).json()["status"] == "held"
    missing_scope = agent.get(url, **bearer(reports_only))
    assert missing_scope.status_code == 403
    assert "'tasks' or 'read'" in missing_scope.json()["detail"]


@pytest.mark.django_db
def test_a_wait_over_a_minute_is_refused_by_name(agent):
    task = register(agent)
    response = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=61")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "wait"
    assert agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=-1").status_code == 422


@pytest.mark.django_db
def test_without_since_an_unheld_task_answers_at_once_whatever_the_wait(agent):
    task = register(agent)
    started = time.monotonic()
    body = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=30").json()
    assert body["status"] == "registered"
    assert time.monotonic() - started < 10  # it did not sit out the 30 s


@pytest.mark.django_db
def test_with_a_stale_since_it_answers_at_once(agent):
    task = register(agent)
    body = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=30&since=0000000000000000").json()
    assert body["status"] == "registered" and body["version"] != "0000000000000000"


@pytest.mark.django_db
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything", TASK_DECISION_MAX_WAIT_SECONDS=0)
def test_a_server_that_allows_no_waiting_answers_at_once(agent):
    """Deployments on sync workers only set TASK_DECISION_MAX_WAIT_SECONDS=0 (docs/deployment.md)."""
    task = register(agent)
    started = time.monotonic()
    assert agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=30").json()["status"] == "held"
    assert time.monotonic() - started < 10


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything", TASK_DECISION_POLL_SECONDS=0.2)
def test_a_waiting_request_answers_when_the_held_task_is_released(agent, operator):
    task = register(agent)
    releaser = decide_later(task["id"], GateDecision("allow", "case 7 approved", "hold-all", "7"), operator, 0.5)
    body = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=30").json()
    releaser.join()
    assert body["status"] == "registered" and body["gate"]["decision"] == "allow"
    assert body["gate"]["reason"] == "case 7 approved"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything")
def test_a_wait_that_sees_no_change_answers_the_current_state_when_it_ends(agent):
    task = register(agent)
    body = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=1").json()
    assert body["status"] == "held" and body["gate"]["decision"] == "hold"
    assert decisions.waiters.count() == 0  # it unregistered


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything", TASK_DECISION_POLL_SECONDS=0.2)
def test_while_redis_is_unreachable_waiters_poll_and_still_see_a_change(agent, settings, monkeypatch):
    """Redis down: the listener cannot subscribe, so a waiter re-reads its task on its
    own. The change below is made without any announcement: only the re-read can see it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        settings.REDIS_URL = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens there
    unreachable = decisions.Listener()
    monkeypatch.setattr(decisions, "listener", unreachable)
    task = register(agent)

    def change_quietly() -> None:
        time.sleep(3.0)  # after the listener's first wait for Redis (2 s) has given up
        ExecutionTask.objects.filter(pk=task["id"]).update(status="registered", gate_decision="allow")
        connection.close()

    changer = threading.Thread(target=change_quietly)
    changer.start()
    try:
        body = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=20").json()
    finally:
        changer.join()
        unreachable.close()
    assert body["status"] == "registered" and body["gate"]["decision"] == "allow"
    assert not unreachable.subscribed.is_set()


@pytest.fixture
def announced(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(decisions, "announce", calls.append)
    return calls


@pytest.mark.django_db
def test_every_task_service_that_changes_a_task_announces_it_and_registration_does_not(
    agent, operator, announced, settings
):
    actor = services.Actor(user=operator)
    task, _ = services.task_register(actor=actor, external_id="a", task_type="implement_idea")
    assert announced == []  # nobody can be waiting on a task that did not exist
    services.task_start(task_id=task.pk, actor=actor)
    services.task_finish(task_id=task.pk, actor=actor, outcome="succeeded")
    assert announced == [task.pk, task.pk]
    other, _ = services.task_register(actor=actor, external_id="b", task_type="implement_idea")
    services.task_cancel(task_id=other.pk, actor=actor)
    held, _ = services.task_register(actor=actor, external_id="c", task_type="implement_idea")
    ExecutionTask.objects.filter(pk=held.pk).update(status="held")
    services.task_gate_update(task_id=held.pk, decision=GateDecision("deny", "no", "p", None), actor=actor, reason="x")
    running, _ = services.task_register(actor=actor, external_id="d", task_type="implement_idea")
    services.task_start(task_id=running.pk, actor=actor)
    services.fail_abandoned_tasks(timeout_seconds=-1)
    assert announced == [task.pk, task.pk, other.pk, held.pk, running.pk, running.pk]


@pytest.mark.django_db
def test_an_announcement_goes_out_only_when_the_change_commits(agent, operator, django_capture_on_commit_callbacks):
    actor = services.Actor(user=operator)
    task, _ = services.task_register(actor=actor, external_id="a", task_type="implement_idea")
    published: list[int] = []
    original = decisions._publish
    decisions._publish = published.append
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.task_start(task_id=task.pk, actor=actor)
        assert published == []  # not before the commit
        for callback in callbacks:
            callback()
        assert published == [task.pk]
    finally:
        decisions._publish = original


def test_waiters_wake_only_for_their_task():
    waiters = decisions.Waiters()
    mine, other = waiters.add(1), waiters.add(2)
    waiters.wake(1)
    assert mine.is_set() and not other.is_set()
    waiters.remove(1, mine)
    waiters.remove(2, other)
    assert waiters.count() == 0


@pytest.mark.postgres(reason="needs REDIS_URL, which CI's PostgreSQL pass sets: the pub/sub path")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(TASK_GATE="tasks.tests.test_decision_api.hold_everything", TASK_DECISION_POLL_SECONDS=30)
def test_with_redis_a_change_made_elsewhere_wakes_the_waiter_through_pub_sub(agent, operator):
    """The poll interval is 30 s here, so only the Redis message can answer in time."""
    from django.conf import settings

    assert settings.REDIS_URL, "CI's PostgreSQL pass sets REDIS_URL"
    task = register(agent)
    releaser = decide_later(task["id"], GateDecision("deny", "case 7 rejected", "hold-all", "7"), operator, 1.0)
    body = agent.get(f"/api/v1/tasks/{task['id']}/decision?wait=20").json()
    answered = time.monotonic()
    releaser.join()
    assert body["status"] == "denied"
    assert decisions.listener.subscribed.is_set()
    assert answered - releaser.decided < 1.0


def test_an_announcement_redis_cannot_take_wakes_this_processs_waiters_and_never_raises(settings, caplog):
    """Nothing listens on port 1: both attempts (the kept connection, then a new one)
    fail, and the waiters here are woken instead, as without Redis."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    event = decisions.waiters.add(41)
    try:
        decisions._publish(41)
        assert event.is_set()
    finally:
        decisions.waiters.remove(41, event)
    assert "Could not announce a change of task 41 on Redis" in caplog.text


@pytest.mark.postgres(reason="needs REDIS_URL, which CI's PostgreSQL pass sets")
def test_the_publisher_reaches_subscribers_and_replaces_a_connection_that_was_dropped():
    import redis
    from django.conf import settings

    assert settings.REDIS_URL, "CI's PostgreSQL pass sets REDIS_URL"
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    listener.subscribe("fsar:test:publisher")
    assert listener.get_message(timeout=2)["type"] == "subscribe"
    publisher = decisions.Publisher()
    assert publisher.publish(settings.REDIS_URL, "fsar:test:publisher", "1") == 1
    kept = publisher._connection
    kept._sock.shutdown(socket.SHUT_RDWR)  # as Redis dropping an idle client would
    assert publisher.publish(settings.REDIS_URL, "fsar:test:publisher", "2") == 1
    assert publisher._connection is not kept
    received = [listener.get_message(timeout=2) for _ in range(2)]
    assert [m["data"] for m in received] == [b"1", b"2"]
    listener.close()
