"""What the product does when PostgreSQL or Redis cannot be reached, on any database:
the same protections fsar/tests/test_faults_*.py check with real processes (PostgreSQL
pass), here with the failure planted where it strikes."""

import json
import logging
from unittest import mock

import pytest
import stripe
from django.db import InterfaceError, OperationalError, transaction
from django.urls import reverse
from redis.exceptions import ConnectionError as RedisConnectionError

from billing import webhooks
from billing.models import StripeEvent
from core.jobs import enqueue_on_commit
from fsar.management.commands.cron import KeptAliveScheduler

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_unavailable_test"


@pytest.mark.parametrize("error", [OperationalError("server closed the connection"), InterfaceError("closed")])
def test_a_database_connection_error_is_503_with_retry_after(agent, error):
    with mock.patch("tasks.auth.find_active_key", side_effect=error):
        response = agent.post(
            "/api/v1/tasks", {"external_id": "x-1", "task_type": "implement_idea"}, "application/json"
        )
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert "database cannot be reached" in response.json()["detail"]


def test_redis_down_under_the_rate_limit_fails_closed_with_503(agent, settings):
    settings.API_RATE_LIMIT_REQUESTS = 10
    with mock.patch("tasks.auth.cache.add", side_effect=RedisConnectionError("Connection refused")):
        response = agent.post(
            "/api/v1/tasks", {"external_id": "x-2", "task_type": "implement_idea"}, "application/json"
        )
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert "Redis cannot be reached" in response.json()["detail"]


def test_a_job_redis_cannot_take_is_logged_and_the_commit_stands(caplog, django_capture_on_commit_callbacks):
    queue = mock.Mock()
    queue.enqueue.side_effect = RedisConnectionError("Connection refused")
    with (
        mock.patch("django_rq.get_queue", return_value=queue),
        caplog.at_level(logging.ERROR, logger="core.jobs"),
        django_capture_on_commit_callbacks(execute=True),
        transaction.atomic(),
    ):
        enqueue_on_commit("billing.jobs.stripe_events_drain")
    assert queue.enqueue.called
    assert "job billing.jobs.stripe_events_drain() not enqueued" in caplog.text


def test_webhook_intake_stores_and_acknowledges_without_redis(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = json.dumps(
        {"id": "evt_no_redis", "object": "event", "type": "customer.updated", "created": 1_800_000_000,
         "data": {"object": {"id": "cus_nobody"}}}
    )  # fmt: skip
    signature = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    with mock.patch.object(webhooks, "drain_flag_take", side_effect=RedisConnectionError("Connection refused")):
        response = client.post(
            reverse("billing:stripe_webhook"), body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )
    assert response.status_code == 200
    assert response.json() == {"received": "evt_no_redis", "duplicate": False}
    assert StripeEvent.objects.get(stripe_id="evt_no_redis").status == StripeEvent.Status.PENDING


def test_the_cron_scheduler_waits_out_redis_and_enqueues_what_fell_due():
    """Two failed rounds (Redis down), then one that enqueues; then a stop (SIGTERM's path)."""
    scheduler = KeptAliveScheduler()
    scheduler.load_config_from_file("fsar.cron")
    calls = {"enqueue": 0}

    def enqueue_jobs():
        calls["enqueue"] += 1
        if calls["enqueue"] <= 2:
            raise RedisConnectionError("Connection refused")
        from rq.exceptions import StopRequested

        raise StopRequested()

    with (
        mock.patch.object(scheduler, "register_birth"),
        mock.patch.object(scheduler, "register_death"),
        mock.patch.object(scheduler, "_install_signal_handlers"),
        mock.patch.object(scheduler, "enqueue_jobs", side_effect=enqueue_jobs),
        mock.patch("fsar.management.commands.cron.time.sleep") as sleep,
    ):
        scheduler.start()
    assert calls["enqueue"] == 3
    assert [c.args[0] for c in sleep.call_args_list] == [1.0, 2.0]  # backing off while Redis is down
