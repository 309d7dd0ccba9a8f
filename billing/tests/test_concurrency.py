"""Two invoice runs for the same period at once (PostgreSQL: real row locks)."""

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from billing import invoicing
from billing.models import Invoice, InvoiceLine
from tasks.models import TaskType

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_concurrent_runs_for_one_period_never_duplicate_anything(acme, globex, offerings, finish_task, fake_stripe):
    for ref in ("cust_acme", "cust_globex"):
        finish_task(customer_ref=ref, task_type=TaskType.IMPLEMENT_IDEA)
        finish_task(customer_ref=ref, task_type=TaskType.SELF_IMPROVEMENT)
    barrier = threading.Barrier(2)
    errors = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            invoicing.invoice_run(period="2026-11")
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
        invoicing.invoice_run(period="2026-11")

    assert Invoice.objects.count() == 2 and InvoiceLine.objects.count() == 4
    assert len(fake_stripe.customers) == 2
    assert len(fake_stripe.invoices) == 2
    assert len(fake_stripe.items) == 4
    assert set(Invoice.objects.values_list("status", flat=True)) == {"paid"}


def test_concurrent_deliveries_in_any_order_leave_the_invoice_paid_once(acme, settings):
    import json

    import stripe

    from billing import webhooks
    from billing.models import Payment, StripeEvent

    settings.STRIPE_WEBHOOK_SECRET = "whsec_concurrent"
    Invoice.objects.create(customer=acme, period="2026-11", currency="usd", status="draft", stripe_invoice_id="in_c")

    def event(i, kind, status, paid):
        obj = {"id": "in_c", "object": "invoice", "status": status, "total": 100, "amount_paid": paid}
        obj["amount_remaining"] = 100 - paid
        obj["payment_intent"] = "pi_c"
        return {"id": f"evt_c{i}", "type": kind, "created": 1_800_000_000, "data": {"object": obj}}

    events = [
        event(1, "invoice.created", "draft", 0),
        event(2, "invoice.finalized", "open", 0),
        event(3, "invoice.paid", "paid", 100),
        event(4, "invoice.payment_failed", "open", 0),
    ]
    # Each event delivered twice, newest first, all at once.
    bodies = [json.dumps(e) for e in reversed(events)] * 2
    barrier = threading.Barrier(len(bodies))
    errors = []

    def deliver(body: str) -> None:
        try:
            barrier.wait(timeout=10)
            header = stripe.WebhookSignature.generate_signature_header(body, "whsec_concurrent")
            stored, created = webhooks.receive(body=body.encode(), signature=header)
            if created:
                webhooks.event_process(event_id=stored.pk)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert StripeEvent.objects.count() == 4
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}
    invoice = Invoice.objects.get()
    assert invoice.status == "paid"
    assert invoice.amount_paid_minor == 100 and invoice.amount_remaining_minor == 0
    assert Payment.objects.count() == 1
