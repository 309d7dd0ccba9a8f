"""Signed callbacks to the AI side: on release, denial, change request and stop."""

import hashlib
import hmac
import json
from unittest import mock

import pytest
import responses
import time_machine
from django.utils import timezone

from fsar.testing import report_md
from reviews import jobs, services
from reviews.models import CallbackDelivery

pytestmark = pytest.mark.django_db
URL = "https://agent.example/fsar-callback"


@pytest.fixture
def with_callback(api_key, operator):
    key, _ = api_key
    services.callback_endpoint_set(api_key_id=key.pk, url=URL, secret="s3cret", by=operator)
    return key


def held_task(agent, post_report, severity=50):
    case_id = post_report(report_md("r1", severity=severity)).json()["gate"]["case"]
    task = agent.post(
        "/api/v1/tasks",
        data={"external_id": "t1", "task_type": "implement_idea", "proposal_id": "r1"},
        content_type="application/json",
    ).json()
    return case_id, task


def verify(request, secret="s3cret") -> dict:
    header = request.headers["FSAR-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return json.loads(request.body)


@responses.activate
def test_releasing_a_task_posts_a_signed_callback(
    agent, post_report, with_callback, alice, django_capture_on_commit_callbacks
):
    responses.post(URL, status=204)
    case_id, task = held_task(agent, post_report)
    with django_capture_on_commit_callbacks(execute=True):
        services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Fine.")
    assert len(responses.calls) == 1
    body = verify(responses.calls[0].request)
    assert body["type"] == "released"
    assert body["task"] == {"id": task["id"], "external_id": "t1", "status": "registered"}
    assert body["case"]["id"] == case_id and body["case"]["status"] == "approved"
    assert body["case"]["rationale"] == "Fine."
    assert body["decision"]["decision"] == "allow"
    assert responses.calls[0].request.headers["FSAR-Event-Id"] == body["event_id"]
    delivery = CallbackDelivery.objects.get()
    assert delivery.status == "delivered" and delivery.attempts == 1
    # Running the job again does not deliver twice.
    jobs.deliver_callback(delivery.pk)
    assert len(responses.calls) == 1


@responses.activate
def test_a_failing_receiver_is_retried_with_backoff_then_shown_as_failed_and_retryable(
    agent, post_report, with_callback, alice, operator, django_capture_on_commit_callbacks
):
    responses.post(URL, status=500)
    case_id, _ = held_task(agent, post_report)
    with django_capture_on_commit_callbacks(execute=True):
        services.case_decide(case_id=case_id, decision="rejected", by=alice, rationale="No.")
    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    first_retry = delivery.next_attempt_at
    assert (first_retry - timezone.now()).total_seconds() == pytest.approx(10, abs=2)
    assert jobs.retry_due_callbacks() == 0  # not due yet
    for _ in range(services.CALLBACK_MAX_ATTEMPTS - 1):
        due = CallbackDelivery.objects.get().next_attempt_at
        with time_machine.travel(due, tick=False), django_capture_on_commit_callbacks(execute=True):
            assert jobs.retry_due_callbacks() == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.attempts == services.CALLBACK_MAX_ATTEMPTS
    assert "HTTP 500" in delivery.last_error

    responses.replace(responses.POST, URL, status=200)
    with django_capture_on_commit_callbacks(execute=True):
        services.callback_retry(delivery_id=delivery.pk, by=operator)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert verify(responses.calls[-1].request)["type"] == "denied"


@responses.activate
def test_changes_requested_and_pause_send_their_callbacks(
    agent, post_report, with_callback, alice, operator, django_capture_on_commit_callbacks
):
    responses.post(URL, status=200)
    case_id, _ = held_task(agent, post_report)
    with django_capture_on_commit_callbacks(execute=True):
        services.case_decide(case_id=case_id, decision="changes_requested", by=alice, rationale="Add a rollback.")
    running = agent.post(
        "/api/v1/tasks", data={"external_id": "t2", "task_type": "implement_idea"}, content_type="application/json"
    ).json()
    agent.post(f"/api/v1/tasks/{running['id']}/start")
    with django_capture_on_commit_callbacks(execute=True):
        services.gate_pause(by=operator, reason="incident")
    types = [verify(call.request)["type"] for call in responses.calls]
    assert types == ["changes_requested", "stop"]
    stop = verify(responses.calls[1].request)
    assert stop["task"]["external_id"] == "t2"
    assert stop["decision"]["reason"] == "incident"


def test_the_signature_is_hmac_sha256_over_timestamp_and_body():
    signature = jobs.sign("k", b'{"a":1}', 1700000000)
    expected = hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert signature == f"t=1700000000,v1={expected}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_rq_worker_delivers_the_signed_callback(
    agent, post_report, api_key, alice, operator, rq_worker, settings, monkeypatch
):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import django_rq

    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        key, _ = api_key
        # The receiver is on this machine: allowed as an on-premise agent's network, here and in the worker.
        settings.REVIEWS_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        monkeypatch.setenv("REVIEWS_CALLBACK_ALLOWED_NETWORKS", "127.0.0.1/32")
        url = f"http://127.0.0.1:{server.server_port}/hook"
        services.callback_endpoint_set(api_key_id=key.pk, url=url, secret="s3cret", by=operator)
        case_id, task = held_task(agent, post_report)
        real_queue = django_rq.get_queue("default", is_async=True)
        # Services enqueue through core.jobs.enqueue_on_commit, which asks django_rq for the queue.
        with mock.patch("django_rq.get_queue", lambda name="default", **kwargs: real_queue):
            services.case_decide(case_id=case_id, decision="approved", by=alice, rationale="Go.")
        assert not received  # nothing delivered until a worker runs
        rq_worker()
    finally:
        server.shutdown()
    assert len(received) == 1
    headers, body = received[0]
    parts = dict(part.split("=", 1) for part in headers["FSAR-Signature"].split(","))
    assert parts["v1"] == hmac.new(b"s3cret", f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert json.loads(body)["task"]["id"] == task["id"]
    assert CallbackDelivery.objects.get().status == "delivered"


def register(agent, external_id, **fields):
    body = {"external_id": external_id, "task_type": "implement_idea", **fields}
    return agent.post("/api/v1/tasks", data=body, content_type="application/json").json()


@responses.activate
def test_a_pause_tells_allowed_tasks_not_started_yet_to_stop(
    agent, with_callback, operator, django_capture_on_commit_callbacks
):
    responses.post(URL, status=204)
    waiting = register(agent, "waiting")
    running = register(agent, "running")
    agent.post(f"/api/v1/tasks/{running['id']}/start")
    done = register(agent, "done")
    agent.post(f"/api/v1/tasks/{done['id']}/start")
    agent.post(f"/api/v1/tasks/{done['id']}/finish", data={"outcome": "succeeded"}, content_type="application/json")
    with django_capture_on_commit_callbacks(execute=True):
        services.gate_pause(by=operator, reason="incident 7")
    stops = {body["task"]["external_id"]: body for body in (verify(c.request) for c in responses.calls)}
    assert set(stops) == {"waiting", "running"}
    assert stops["waiting"]["type"] == "stop"
    assert stops["waiting"]["task"]["status"] == "registered"
    assert stops["waiting"]["decision"] == {"decision": "hold", "reason": "incident 7", "policy": "default-allow"}
    assert waiting["gate"]["decision"] == "allow"


@responses.activate
def test_a_revocation_tells_the_tasks_allowed_through_the_case_to_stop_started_or_not(
    agent, post_report, with_callback, alice, bob, django_capture_on_commit_callbacks
):
    responses.post(URL, status=204)
    case_id = post_report(report_md("r1", severity=35)).json()["gate"]["case"]
    services.vote_cast(case_id=case_id, member=alice, choice="approve", rationale="Reviewed the rollback plan.")
    services.vote_cast(case_id=case_id, member=bob, choice="approve", rationale="Risks are mitigated enough.")
    waiting = register(agent, "waiting", proposal_id="r1")
    running = register(agent, "running", proposal_id="r1")
    agent.post(f"/api/v1/tasks/{running['id']}/start")
    register(agent, "elsewhere")  # allowed by another rule: not this case's
    with django_capture_on_commit_callbacks(execute=True):
        services.case_revoke(case_id=case_id, by=alice, rationale="New evidence of silent defects.")
    stops = {body["task"]["external_id"]: body for body in (verify(c.request) for c in responses.calls)}
    assert set(stops) == {"waiting", "running"}
    assert stops["waiting"]["case"]["id"] == case_id and stops["waiting"]["case"]["status"] == "open"
    assert stops["waiting"]["decision"]["decision"] == "hold"
    assert stops["waiting"]["decision"]["reason"] == "approval revoked: New evidence of silent defects."
    assert waiting["gate"]["case"] == case_id
