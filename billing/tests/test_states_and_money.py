"""One writer per invoice state (issue 14, item 4), money in the currency's own
decimals (item 8), and invoice runs enqueued only once their transaction commits."""

from datetime import UTC, datetime
from itertools import product

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from billing import invoicing, money, states, stripe_push, webhooks
from billing.models import Invoice, InvoiceRun, InvoiceStatus

pytestmark = pytest.mark.django_db

STATES = [s.value for s in InvoiceStatus]


def _invoice(acme, status: str) -> Invoice:
    Invoice.objects.filter(customer=acme).delete()
    return Invoice.objects.create(
        customer=acme, period="2026-11", currency="usd", status=status, stripe_invoice_id="in_state_1"
    )


def _through_the_push(invoice: Invoice, target: str) -> str:
    return stripe_push._apply_stripe_invoice(invoice.pk, {"status": target}, reason="push").status


def _through_a_webhook(invoice: Invoice, target: str) -> str:
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        webhooks.apply_invoice_state(
            locked, {"id": "in_state_1", "status": target}, target=target, created=1, source="test"
        )
    return Invoice.objects.get(pk=invoice.pk).status


@pytest.mark.parametrize("start,target", list(product(STATES, STATES)))
def test_the_push_and_webhooks_move_an_invoice_the_same_way(acme, start, target):
    by_push = _through_the_push(_invoice(acme, start), target)
    by_webhook = _through_a_webhook(_invoice(acme, start), target)
    assert by_push == by_webhook
    assert by_push == (target if states.can_move(start, target) else start)


def test_a_stale_answer_from_stripe_never_moves_an_invoice_back(acme):
    # A webhook finalized it while the push was still waiting on Stripe's create.
    invoice = _invoice(acme, InvoiceStatus.OPEN)
    assert _through_the_push(invoice, InvoiceStatus.DRAFT) == InvoiceStatus.OPEN


def test_an_uncollectible_invoice_can_still_be_paid_whoever_hears_it_first(acme):
    invoice = _invoice(acme, InvoiceStatus.UNCOLLECTIBLE)
    assert _through_the_push(invoice, InvoiceStatus.PAID) == InvoiceStatus.PAID
    assert states.FINAL == (InvoiceStatus.PAID, InvoiceStatus.VOID)


@pytest.mark.parametrize(
    "code,micros,minor,text",
    [
        ("usd", 1_234_565_000, 123_457, "1,234.57 USD"),
        ("jpy", 1_234_500_000, 1_235, "1,235 JPY"),
        ("kwd", 1_234_567_500, 1_234_568, "1,234.568 KWD"),
        ("bhd", 5_000, 5, "0.005 BHD"),
    ],
)
def test_money_rounds_and_shows_the_currencys_own_decimals(code, micros, minor, text):
    assert money.micros_to_minor(micros, code) == minor
    assert money.format_minor(minor, code) == text
    assert money.format_minor(-minor, code) == "-" + text


def test_an_invoice_in_kuwaiti_dinars_is_rounded_to_the_fils(settings, acme, per_task_offering, finish_task):
    settings.BILLING_CURRENCY = "kwd"
    finish_task()  # 123,450 micro-dinars: 123.45 fils
    invoice = invoicing.invoice_prepare(customer_id=acme.pk, period="2026-11")
    assert (invoice.currency, invoice.total_minor) == ("kwd", 123)
    assert money.format_minor(invoice.total_minor, invoice.currency) == "0.123 KWD"


@pytest.mark.parametrize("committed", [False, True])
def test_the_runs_page_processes_the_run_only_once_it_commits(
    client, operator, django_capture_on_commit_callbacks, committed
):
    client.force_login(operator)
    with (
        time_machine.travel(datetime(2026, 12, 2, tzinfo=UTC), tick=False),
        django_capture_on_commit_callbacks(execute=committed),
    ):
        response = client.post(reverse("billing:runs"), {"period": "2026-11"})
    assert response.status_code == 302
    run = InvoiceRun.objects.get()
    assert run.status == (InvoiceRun.Status.SUCCEEDED if committed else InvoiceRun.Status.RUNNING)
