"""Faults injected for real (b): Redis killed under gunicorn, an RQ worker and the
cron while Stripe webhooks, registrations and reports arrive.

PostgreSQL only (CI's PostgreSQL pass), with `redis-server` on PATH; the processes,
ports and checks are in fsar/tests/faults_support.py. How the test was checked
against the protection it tests is written in docs/testing.md.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fsar.tests import faults_support
from fsar.tests.faults_support import (
    Gunicorn,
    Supervised,
    assert_events_applied_once,
    cron,
    deliver,
    eventually,
    invoice_paid_event,
    open_invoices,
    process_env,
    registration,
    report_markdown,
    rqworker,
)

# The fixtures of fsar/tests/faults_support.py this module uses (pytest finds them here).
agent_secret, redis_server, started = faults_support.agent_secret, faults_support.redis_server, faults_support.started

pytestmark = [
    pytest.mark.postgres(reason="kills PostgreSQL connections, Redis and workers"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.xdist_group("faults"),  # one xdist worker runs them one after another (docs/testing.md)
]


def test_redis_down_webhooks_are_stored_and_drained_once_when_it_is_back(started, redis_server, agent_secret):
    """Redis killed under gunicorn, an RQ worker and the cron: Stripe webhooks are
    still verified (a bad signature is refused), stored and acknowledged;
    registrations and reports are unaffected (201, decisions as usual; what their
    commit enqueues is logged and left to the periodic jobs). Redis comes back empty:
    the cron, still running, enqueues the periodic drain, and every stored event is
    applied exactly once.

    Protection: billing/webhooks.py's schedule_drain (Redis errors caught), core/jobs.py's
    enqueue_on_commit (idem), fsar/management/commands/cron.py (the scheduler survives)."""
    from billing.models import StripeEvent
    from reviews.models import Report
    from tasks.models import ExecutionTask

    open_invoices(12)
    env = process_env(redis_server)
    server = Gunicorn(env, workers=2)
    worker = Supervised(lambda: rqworker(env))
    scheduler = cron(env)
    started.extend([server, worker, scheduler])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # Everything works while Redis is up: one event goes all the way.
        assert deliver(http, invoice_paid_event(0)).status_code == 200
        eventually(lambda: StripeEvent.objects.filter(stripe_id="evt_faults_0", status="processed").exists(),
                   timeout=120, what="the first event is applied (worker and cron just started)")  # fmt: skip

        redis_server.kill()
        answers = [deliver(http, invoice_paid_event(n)) for n in range(1, 12)]
        assert [a.status_code for a in answers] == [200] * 11, [a.text for a in answers]
        acknowledged = [{"received": f"evt_faults_{n}", "duplicate": False} for n in range(1, 12)]
        assert [a.json() for a in answers] == acknowledged
        again = deliver(http, invoice_paid_event(3))
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        forged = http.post("/billing/stripe/webhook/", content=json.dumps(invoice_paid_event(99)),
                           headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"})  # fmt: skip
        assert forged.status_code == 400
        assert StripeEvent.objects.filter(status="pending").count() == 11

        auth = {"Authorization": f"Bearer {agent_secret}"}
        registered = [
            http.post("/api/v1/tasks", json=registration(f"redis-down-{i}", i), headers=auth) for i in range(10)
        ]
        assert [r.status_code for r in registered] == [201] * 10, [r.text for r in registered]
        decisions = ["hold" if i % 5 == 0 else "allow" for i in range(10)]
        assert [r.json()["gate"]["decision"] for r in registered] == decisions
        reports = [
            http.post("/api/v1/proposals", content=report_markdown(f"rep-redis-down-{severity}", severity),
                      headers={**auth, "Content-Type": "text/markdown"})
            for severity in (3, 30)
        ]  # fmt: skip
        assert [r.status_code for r in reports] == [201, 201], [r.text for r in reports]
        assert ExecutionTask.objects.filter(external_id__startswith="redis-down-").count() == 10
        assert Report.objects.filter(report_id__startswith="rep-redis-down-").count() == 2

        time.sleep(2)  # the cron and the worker meet the dead Redis
        assert scheduler.alive(), f"the cron scheduler died with Redis; see {scheduler.log}"
        assert StripeEvent.objects.filter(status="pending").count() == 11  # nothing could drain them
        redis_server.start()  # empty: the drain flag and every queued job are gone
        eventually(lambda: not StripeEvent.objects.filter(status="pending").exists(), timeout=120,
                   what="the periodic drain applies the stored events once Redis is back")  # fmt: skip
    assert_events_applied_once(range(12))
    assert scheduler.alive(), f"the cron scheduler died; see {scheduler.log}"
