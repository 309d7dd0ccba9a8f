from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing import jobs
from billing.models import Invoice, Payment

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoices_in_stripe(acme, globex, fake_stripe):
    fake_stripe.customers["cus_a"] = {"id": "cus_a", "metadata": {}}
    made = {}
    for customer, period in ((acme, "2026-10"), (globex, "2026-10"), (acme, "2026-09")):
        _, obj = fake_stripe.invoice_create({"customer": "cus_a", "metadata": {}})
        fake_stripe.invoice_finalize({}, obj["id"])
        made[(customer.customer_ref, period)] = Invoice.objects.create(
            customer=customer,
            period=period,
            currency="usd",
            status="open",
            total_minor=0,
            stripe_invoice_id=obj["id"],
        )
    return made


def test_reconciliation_applies_what_stripe_says_and_reports_it(invoices_in_stripe, fake_stripe):
    missed_paid = invoices_in_stripe[("cust_acme", "2026-10")]
    missed_void = invoices_in_stripe[("cust_globex", "2026-10")]
    fake_stripe.invoice_pay({}, missed_paid.stripe_invoice_id)
    fake_stripe.invoices[missed_void.stripe_invoice_id]["status"] = "void"

    result = jobs.reconcile_invoices()
    assert result.startswith("corrected 2 invoice(s)")
    assert f"({missed_paid.stripe_invoice_id}): open → paid" in result
    assert f"({missed_void.stripe_invoice_id}): open → void" in result
    assert Invoice.objects.get(pk=missed_paid.pk).status == "paid"
    assert Invoice.objects.get(pk=missed_void.pk).status == "void"
    assert Payment.objects.filter(invoice=missed_paid).count() == 1
    # Nothing left to correct: settled invoices are not fetched again.
    calls = len(fake_stripe.calls)
    assert jobs.reconcile_invoices() == "corrected 0 invoice(s)"
    assert len(fake_stripe.calls) == calls + 1  # only the one still open


def test_reconciliation_never_moves_an_invoice_backwards(invoices_in_stripe, fake_stripe):
    invoice = invoices_in_stripe[("cust_acme", "2026-09")]
    Invoice.objects.filter(pk=invoice.pk).update(status="uncollectible")
    fake_stripe.invoices[invoice.stripe_invoice_id]["status"] = "open"  # an out-of-date read
    assert jobs.reconcile_invoices() == "corrected 0 invoice(s)"
    assert Invoice.objects.get(pk=invoice.pk).status == "uncollectible"


def test_reconciliation_reports_invoices_it_could_not_fetch(invoices_in_stripe, fake_stripe):
    fake_stripe.fail("invoice_get", status=500)
    out = StringIO()
    call_command("stripe_reconcile", stdout=out)
    assert "could not fetch: Stripe failed to fetch an invoice" in out.getvalue()


def test_reconciliation_without_stripe(settings):
    settings.STRIPE_API_KEY = ""
    assert jobs.reconcile_invoices().startswith("skipped: Stripe is not configured")
    with pytest.raises(CommandError, match="Stripe is not configured"):
        call_command("stripe_reconcile")


def test_reconciliation_runs_periodically():
    from fsar.periodic import PERIODIC_JOBS

    assert jobs.reconcile_invoices in [job for job, _ in PERIODIC_JOBS]
