from datetime import UTC, datetime, timedelta
from io import StringIO
from unittest import mock

import pytest
import time_machine
from django.core.management import CommandError, call_command

from billing import invoicing, stripe_push
from billing.models import Customer, Invoice, InvoiceLine, InvoiceRun, InvoiceRunItem, UsageRecord
from billing.stripe_client import NOT_CONFIGURED
from tasks.models import TaskType

pytestmark = pytest.mark.django_db

DEC = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def november_usage(acme, offerings, finish_task):
    """Acme: three per-task tasks (3 × 12.345 ¢ = 37.035 ¢) and 2,500 tokens (0.5 ¢)."""
    for _ in range(3):
        finish_task(task_type=TaskType.IMPLEMENT_IDEA)
    finish_task(task_type=TaskType.SELF_IMPROVEMENT, tokens=2_500)
    return acme


def run_november(**kwargs) -> InvoiceRun:
    with time_machine.travel(DEC, tick=False):
        return invoicing.invoice_run(period="2026-11", **kwargs)


def test_prepare_makes_one_line_per_offering_rounded_once(november_usage):
    invoice = invoicing.invoice_prepare(customer_id=november_usage.pk, period="2026-11")
    lines = {line.offering.name: line for line in invoice.lines.all()}
    assert set(lines) == {"Idea implementation", "Self improvement"}
    tasks_line = lines["Idea implementation"]
    assert (tasks_line.tasks, tasks_line.quantity, tasks_line.amount_micros, tasks_line.amount_minor) == (
        3,
        3,
        370_350,
        37,
    )
    tokens_line = lines["Self improvement"]
    assert (tokens_line.quantity, tokens_line.amount_micros, tokens_line.amount_minor) == (2_500, 5_000, 1)
    assert invoice.total_minor == 38
    assert invoice.status == "draft"
    assert not UsageRecord.objects.filter(invoice_line__isnull=True).exists()
    # Asking again returns the same invoice and adds nothing.
    assert invoicing.invoice_prepare(customer_id=november_usage.pk, period="2026-11") == invoice
    assert InvoiceLine.objects.count() == 2


def test_usage_after_its_period_was_invoiced_goes_on_the_next_invoice(november_usage, finish_task):
    invoicing.invoice_prepare(customer_id=november_usage.pk, period="2026-11")
    late = finish_task(when=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))  # reported after the run
    assert invoicing.invoice_prepare(customer_id=november_usage.pk, period="2026-11").lines.count() == 2
    december = invoicing.invoice_prepare(customer_id=november_usage.pk, period="2026-12")
    assert UsageRecord.objects.get(task=late).invoice_line.invoice == december


def test_an_invoice_run_creates_the_invoice_then_its_items_then_finalizes_and_charges(november_usage, fake_stripe):
    run = run_november()
    assert run.status == InvoiceRun.Status.SUCCEEDED
    invoice = Invoice.objects.get()
    customer = Customer.objects.get()
    lines = list(invoice.lines.order_by("pk"))

    # Every create carries a key derived from our own ids.
    assert fake_stripe.creates("/v1/customers") == [f"fsar-customer-{customer.pk}"]
    assert fake_stripe.creates("/v1/invoices") == [f"fsar-invoice-{invoice.pk}"]
    assert fake_stripe.creates("/v1/invoiceitems") == [f"fsar-invoice-line-{line.pk}" for line in lines]
    sid = invoice.stripe_invoice_id
    assert fake_stripe.creates(f"/v1/invoices/{sid}/finalize") == [f"fsar-invoice-{invoice.pk}-final"]
    assert fake_stripe.creates(f"/v1/invoices/{sid}/pay") == [f"fsar-invoice-{invoice.pk}-pay"]
    order = [path for method, path, _ in fake_stripe.calls if method == "POST"]
    assert order == [
        "/v1/customers",
        "/v1/invoices",
        "/v1/invoiceitems",
        "/v1/invoiceitems",
        f"/v1/invoices/{sid}/finalize",
        f"/v1/invoices/{sid}/pay",
    ]

    stripe_invoice = fake_stripe.invoices[sid]
    assert stripe_invoice["pending_invoice_items_behavior"] == "exclude"
    assert stripe_invoice["metadata"] == {"fsar_invoice_id": str(invoice.pk), "period": "2026-11"}
    assert all(item["invoice"] == sid for item in fake_stripe.items.values())
    assert sorted(item["amount"] for item in fake_stripe.items.values()) == [1, 37]
    assert stripe_invoice["total"] == invoice.total_minor == 38

    assert invoice.status == "paid"
    assert invoice.number.startswith("FSAR-")
    assert invoice.hosted_invoice_url.endswith(sid)
    assert invoice.amount_paid_minor == 38 and invoice.amount_remaining_minor == 0
    assert customer.stripe_customer_id in fake_stripe.customers
    assert invoice.history.filter(history_change_reason="finalized in Stripe").exists()


def test_a_rerun_for_the_same_period_creates_nothing_again(november_usage, fake_stripe):
    run_november()
    posts_before = len([c for c in fake_stripe.calls if c[0] == "POST"])
    second = run_november()
    assert second.status == InvoiceRun.Status.SUCCEEDED
    assert second.items.count() == 0  # nothing left to invoice
    assert len([c for c in fake_stripe.calls if c[0] == "POST"]) == posts_before
    assert Invoice.objects.count() == 1 and len(fake_stripe.invoices) == 1


def test_a_run_interrupted_at_finalize_resumes_without_duplicates(november_usage, fake_stripe):
    fake_stripe.fail("invoice_finalize", status=500)
    run = run_november()
    assert run.status == InvoiceRun.Status.FAILED
    item = run.items.get()
    assert item.status == InvoiceRunItem.Status.FAILED
    assert "Stripe failed to finalize an invoice" in item.error
    invoice = Invoice.objects.get()
    assert invoice.stripe_invoice_id and invoice.finalized_at is None
    assert invoice.lines.filter(stripe_invoice_item_id__isnull=True).count() == 0

    with time_machine.travel(DEC + timedelta(minutes=5), tick=False):
        invoicing.invoice_run_retry(run_id=run.pk)
        run = invoicing.invoice_run_process(run_id=run.pk)
    assert run.status == InvoiceRun.Status.SUCCEEDED
    assert run.items.get().attempts == 2
    assert len(fake_stripe.customers) == 1 and len(fake_stripe.invoices) == 1 and len(fake_stripe.items) == 2
    assert Invoice.objects.get().status == "paid"


def test_a_crash_after_stripe_created_the_invoice_but_before_we_saved_it_is_recovered(november_usage, fake_stripe):
    """Stripe created the invoice, then we died before saving its id. Within 24 hours
    the idempotency key returns the same invoice; after that, a metadata search does."""
    real_apply = stripe_push._apply_stripe_invoice

    def crash_once(invoice_id, data, *, reason, **extra):
        if reason == "created in Stripe":
            raise RuntimeError("worker killed")
        return real_apply(invoice_id, data, reason=reason, **extra)

    with mock.patch.object(stripe_push, "_apply_stripe_invoice", crash_once):
        run = run_november()
    assert "worker killed" in run.items.get().error
    assert len(fake_stripe.invoices) == 1
    assert Invoice.objects.get().stripe_invoice_id is None

    fake_stripe.forget_keys()  # Stripe forgets idempotency keys after 24 hours
    with time_machine.travel(DEC + timedelta(days=2), tick=False):
        invoicing.invoice_run_retry(run_id=run.pk)
        run = invoicing.invoice_run_process(run_id=run.pk)
    assert run.status == InvoiceRun.Status.SUCCEEDED
    assert len(fake_stripe.invoices) == 1, "the invoice was created in Stripe twice"
    assert Invoice.objects.get().stripe_invoice_id == next(iter(fake_stripe.invoices))
    assert any(path == "/v1/invoices/search" for _, path, _ in fake_stripe.calls)


def test_items_created_before_a_crash_are_adopted_after_stripe_forgot_the_keys(november_usage, fake_stripe):
    real_update = InvoiceLine.objects.filter

    with mock.patch.object(stripe_push, "_ensure_stripe_items", side_effect=RuntimeError("crash")):
        run = run_november()
    invoice = Invoice.objects.get()
    # Play the crash: items exist in Stripe, our lines never got their ids.
    for line in real_update(invoice=invoice):
        fake_stripe.item_create(
            {
                "invoice": invoice.stripe_invoice_id,
                "customer": invoice.customer.stripe_customer_id,
                "amount": str(line.amount_minor),
                "currency": "usd",
                "metadata": {"fsar_invoice_line_id": str(line.pk)},
            }
        )
    fake_stripe.forget_keys()
    with time_machine.travel(DEC + timedelta(days=2), tick=False):
        invoicing.invoice_run_retry(run_id=run.pk)
        invoicing.invoice_run_process(run_id=run.pk)
    assert len(fake_stripe.items) == 2
    assert fake_stripe.creates("/v1/invoiceitems") == []
    assert Invoice.objects.get().status == "paid"


def test_without_stripe_keys_the_run_prepares_local_invoices_and_says_stripe_is_not_configured(
    november_usage, settings
):
    settings.STRIPE_API_KEY = ""
    run = run_november()
    item = run.items.get()
    assert item.status == InvoiceRunItem.Status.FAILED
    assert item.error == NOT_CONFIGURED
    assert item.invoice.status == "draft" and item.invoice.total_minor == 38


def test_a_declined_charge_leaves_the_invoice_open_to_pay_on_stripe(november_usage, fake_stripe):
    fake_stripe.decline_payments = True
    run = run_november()
    invoice = Invoice.objects.get()
    assert invoice.status == "open" and invoice.is_payable
    assert "card was declined" in invoice.collection_error
    item = run.items.get()
    assert item.status == InvoiceRunItem.Status.DONE and "declined" in item.error


def test_send_invoice_customers_get_the_invoice_sent_with_a_due_date(november_usage, fake_stripe):
    Customer.objects.filter(pk=november_usage.pk).update(collection_method=Customer.Collection.SEND)
    run_november()
    invoice = Invoice.objects.get()
    assert fake_stripe.creates(f"/v1/invoices/{invoice.stripe_invoice_id}/send") == [f"fsar-invoice-{invoice.pk}-send"]
    assert invoice.status == "open" and invoice.due_date is not None and invoice.collected_at is not None


def test_one_customer_failing_does_not_stop_the_others(november_usage, globex, finish_task, fake_stripe):
    finish_task(customer_ref="cust_globex")
    fake_stripe.fail("customer_create", status=400, message="Invalid email address: nope")
    run = run_november()
    assert run.status == InvoiceRun.Status.FAILED
    failed = run.items.get(status=InvoiceRunItem.Status.FAILED)
    assert "Invalid email address" in failed.error
    assert run.items.filter(status=InvoiceRunItem.Status.DONE).count() == 1


def test_a_period_that_has_not_ended_cannot_be_invoiced(november_usage):
    with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        with pytest.raises(invoicing.BillingError, match="has not ended"):
            invoicing.invoice_run(period="2026-11")
    assert not InvoiceRun.objects.exists()


def test_the_command_invoices_a_period_and_reports_failures(november_usage, fake_stripe):
    out = StringIO()
    with time_machine.travel(DEC, tick=False):
        call_command("invoice_run", "--period", "2026-11", stdout=out)
    assert "invoiced 1 customer(s) for 0.38 USD, 0 failed" in out.getvalue()
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("invoice_run", "--period", "November")


def test_the_command_fails_loudly_without_stripe(november_usage, settings):
    settings.STRIPE_API_KEY = ""
    out = StringIO()
    with time_machine.travel(DEC, tick=False), pytest.raises(CommandError, match="1 customer"):
        call_command("invoice_run", "--period", "2026-11", stdout=out)
    assert "Stripe is not configured" in out.getvalue()
