"""Two invoice runs for the same period at once (PostgreSQL: real row locks)."""

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from billing import services
from billing.models import Invoice, InvoiceLine
from tasks.models import TaskType

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_runs_for_one_period_never_duplicate_anything(acme, globex, offerings, finish_task, fake_stripe):
    for ref in ("cust_acme", "cust_globex"):
        finish_task(customer_ref=ref, task_type=TaskType.IMPLEMENT_IDEA)
        finish_task(customer_ref=ref, task_type=TaskType.SELF_IMPROVEMENT)
    barrier = threading.Barrier(2)
    errors = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            services.invoice_run(period="2026-11")
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    with time_machine.travel(datetime(2026, 12, 2, tzinfo=UTC), tick=False):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        # Whatever the interleaving, one more pass finishes anything a lease deferred.
        services.invoice_run(period="2026-11")

    assert Invoice.objects.count() == 2 and InvoiceLine.objects.count() == 4
    assert len(fake_stripe.customers) == 2
    assert len(fake_stripe.invoices) == 2
    assert len(fake_stripe.items) == 4
    assert set(Invoice.objects.values_list("status", flat=True)) == {"paid"}
