from datetime import UTC, datetime

import pytest
import time_machine

from billing import jobs
from billing.demo import seed_demo_billing
from billing.models import Customer, Invoice, InvoiceRun, UsageRecord
from fsar.periodic import PERIODIC_JOBS

pytestmark = pytest.mark.django_db

DEC = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_the_scheduled_run_is_in_the_periodic_jobs():
    assert jobs.invoice_run_scheduled in [job for job, _ in PERIODIC_JOBS]


def test_the_scheduled_run_does_nothing_without_stripe(acme, offerings, finish_task, settings):
    settings.STRIPE_API_KEY = ""
    finish_task()
    with time_machine.travel(DEC, tick=False):
        assert jobs.invoice_run_scheduled().startswith("skipped: Stripe is not configured")
    assert not InvoiceRun.objects.exists()


def test_the_scheduled_run_invoices_last_month_once(acme, offerings, finish_task, fake_stripe):
    finish_task()
    with time_machine.travel(DEC, tick=False):
        assert jobs.invoice_run_scheduled().endswith("for 2026-11: succeeded")
        assert jobs.invoice_run_scheduled() == "period 2026-11 already has a run"
    assert InvoiceRun.objects.count() == 1
    assert Invoice.objects.get().status == "paid"


def test_the_run_job_is_safe_to_run_twice(acme, offerings, finish_task, fake_stripe):
    from billing import invoicing

    finish_task()
    with time_machine.travel(DEC, tick=False):
        run = invoicing.invoice_run_start(period="2026-11")
        jobs.invoice_run_process(run.pk)
        posts = len(fake_stripe.calls)
        assert jobs.invoice_run_process(run.pk) == f"run {run.pk}: succeeded"
    assert len(fake_stripe.calls) == posts


def test_demo_billing_links_the_demo_customer_to_acme_and_is_safe_to_rerun(customer_user, client):
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        assert seed_demo_billing(now=now, customer_user=customer_user) is True
        assert seed_demo_billing(now=now, customer_user=customer_user) is False
        assert set(Customer.objects.values_list("customer_ref", flat=True)) == {
            "cust_acme",
            "cust_globex",
            "cust_initech",
        }
        assert UsageRecord.objects.filter(invoice_line__isnull=True).exists()  # this month
        assert Invoice.objects.filter(period="2026-10").count() == 3
        assert set(Invoice.objects.values_list("status", flat=True)) == {"paid", "open"}
        client.force_login(customer_user)
        response = client.get("/billing/")
    assert response.context["customer"].customer_ref == "cust_acme"
    assert response.context["rows"] and "demo-billing-held" in response.content.decode()


def test_demo_billing_gives_the_demo_customer_an_open_invoice_to_pay_and_a_paid_one_with_its_payment(customer_user):
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        seed_demo_billing(now=now, customer_user=customer_user)
    acme = {i.period: i for i in Invoice.objects.filter(customer__customer_ref="cust_acme")}
    assert set(acme) == {"2026-09", "2026-10"}
    assert acme["2026-10"].status == "open" and acme["2026-10"].is_payable and acme["2026-10"].total_minor > 0
    assert acme["2026-09"].status == "paid"
    (payment,) = acme["2026-09"].payments.all()
    assert payment.amount_minor == acme["2026-09"].total_minor == acme["2026-09"].amount_paid_minor > 0
    # Every paid demo invoice lists its payment.
    for invoice in Invoice.objects.filter(status="paid"):
        assert sum(p.amount_minor for p in invoice.payments.all()) == invoice.amount_paid_minor
