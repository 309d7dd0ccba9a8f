"""Faults injected for real (c): an RQ worker SIGKILLed mid-drain of Stripe events
and mid-callback.

PostgreSQL only (CI's PostgreSQL pass), with `redis-server` on PATH; the processes,
ports and checks are in fsar/tests/faults_support.py. How the test was checked
against the protection it tests is written in docs/testing.md.
"""

from __future__ import annotations

import time

import httpx
import pytest

from fsar.testing import admin_connection
from fsar.tests import faults_support
from fsar.tests.faults_support import (
    CallbackReceiver,
    Gunicorn,
    Started,
    assert_events_applied_once,
    cron,
    deliver,
    eventually,
    invoice_paid_event,
    open_invoices,
    process_env,
    rqworker,
)

# The fixtures of fsar/tests/faults_support.py this module uses (pytest finds them here).
redis_server, started = faults_support.redis_server, faults_support.started

pytestmark = [
    pytest.mark.postgres(reason="kills PostgreSQL connections, Redis and workers"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.xdist_group("faults"),  # one xdist worker runs them one after another (docs/testing.md)
]


def test_rq_worker_killed_mid_drain_and_mid_callback_applies_once_and_delivers_at_least_once(
    started, redis_server, make_api_key
):
    """A worker draining 30 stored Stripe events is SIGKILLed (with its work horse)
    while one event's transaction waits on a row lock; another, sending 12
    callbacks, while the AI side holds the fifth request. A new worker (and the
    cron's periodic drain and callback retry) finish the work: every event applied
    exactly once, every callback delivered at least once, each time with the same
    FSAR-Event-Id and body.

    Protection: the event's effects and its status commit in one transaction
    (billing/webhooks.py event_process), the delivery's status is recorded after
    the POST (reviews/jobs.py deliver_callback) and pending due deliveries are
    re-enqueued (retry_due_callbacks)."""
    from billing.models import StripeEvent
    from reviews.models import CallbackDelivery, CallbackEndpoint
    from tasks.models import ExecutionTask

    events = range(30)
    open_invoices(len(events))
    env = process_env(redis_server)
    server = Gunicorn(env, workers=2)
    started.append(server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n in events:  # stored; no worker runs yet, so all wait in the queue
            assert deliver(http, invoice_paid_event(n)).status_code == 200
    assert StripeEvent.objects.filter(status="pending").count() == len(events)

    # Event 10's invoice is locked: the drain applies 0-9, then waits inside event 10's transaction.
    with admin_connection(autocommit=False) as locker:
        locker.execute("SELECT id FROM billing_invoice WHERE stripe_invoice_id = 'in_faults_10' FOR UPDATE")
        worker = rqworker(env)
        started.extend([worker, cron(env)])
        eventually(lambda: StripeEvent.objects.filter(status="processed").count() == 10, timeout=120,
                   what="the drain applied the first ten events")  # fmt: skip
        time.sleep(0.3)
        worker.kill()
        locker.rollback()
    started.append(rqworker(env))
    eventually(lambda: not StripeEvent.objects.exclude(status="processed").exists(), timeout=120,
               what="a new worker applies the rest")  # fmt: skip
    assert_events_applied_once(events)

    # Callbacks: the AI side holds the fifth request while the worker is killed.
    receiver = CallbackReceiver(hold_at=5)
    try:
        api_key, _ = make_api_key()
        endpoint = CallbackEndpoint.objects.create(api_key=api_key, url=receiver.url, secret="cb-secret")
        tasks = ExecutionTask.objects.bulk_create(
            ExecutionTask(external_id=f"cb-{n}", task_type="implement_idea", ai_model="gpt-5.1", submitted_by=api_key)
            for n in range(12)
        )
        deliveries = [CallbackDelivery(endpoint=endpoint, type="released", task_id=t.pk, payload={}) for t in tasks]
        for delivery, task in zip(deliveries, tasks, strict=True):
            delivery.payload = {"event_id": str(delivery.event_id), "type": "released", "task": {"id": task.pk}}
        CallbackDelivery.objects.bulk_create(deliveries)  # due now: the cron's retry enqueues them
        assert receiver.arrived.wait(120), "no callback reached the fifth request"
        busy = [w for w in started if isinstance(w, Started) and "rqworker" in w.log.name and w.alive()]
        for w in busy:
            w.kill()
        receiver.release.set()
        started.append(rqworker(env))
        eventually(lambda: not CallbackDelivery.objects.exclude(status="delivered").exists(), timeout=120,
                   what="every callback is delivered")  # fmt: skip
    finally:
        receiver.stop()
    expected = {str(d.event_id): d.payload for d in CallbackDelivery.objects.all()}
    got: dict[str, list[dict]] = {}
    for event_id, body in receiver.received:
        got.setdefault(event_id, []).append(body)
    assert sorted(got) == sorted(expected)  # each at least once, none unknown
    assert all(bodies == [expected[event_id]] * len(bodies) for event_id, bodies in got.items())
    assert any(len(bodies) > 1 for bodies in got.values()), "the killed send was not sent again"
