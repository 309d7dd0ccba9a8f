"""In Chromium: a customer sees this period's usage and an open invoice whose Pay
button goes to Stripe's hosted invoice page; another customer's invoice is 404."""

import time
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from billing import invoicing, periods
from billing.models import Invoice
from fsar.testing import log_in
from tasks.models import TaskType

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

HOSTED = "https://invoice.stripe.com/i/acct_test/in_browser_1"


def test_customer_sees_usage_and_pays_an_open_invoice_but_not_anothers(
    noon_today, page: Page, live_server, acme, globex, offerings, finish_task
):
    now = noon_today
    earlier = now.replace(day=1) - timedelta(days=3)
    finish_task(task_type=TaskType.IMPLEMENT_IDEA, when=earlier)
    invoice = invoicing.invoice_prepare(customer_id=acme.pk, period=periods.period_of(earlier))
    Invoice.objects.filter(pk=invoice.pk).update(status="open", number="FSAR-0042", hosted_invoice_url=HOSTED)
    for _ in range(2):
        finish_task(task_type=TaskType.IMPLEMENT_IDEA, when=now)
    globex_invoice = Invoice.objects.create(customer=globex, period="2026-01", currency="usd", status="open")

    log_in(page, live_server, "carla")
    page.goto(f"{live_server.url}/billing/")
    table = page.get_by_test_id("usage-by-offering")
    expect(table).to_contain_text("Idea implementation")
    expect(page.get_by_test_id("usage-total")).to_have_text("0.25 USD")  # 2 × 12.345 ¢, rounded once

    page.get_by_role("link", name="Invoices").first.click()
    expect(page.get_by_test_id("invoices")).to_contain_text("FSAR-0042")
    expect(page.get_by_test_id("invoices")).to_contain_text("Open")
    page.get_by_role("link", name="FSAR-0042").click()
    expect(page.get_by_test_id("invoice-total")).to_have_text("0.12 USD")
    expect(page.get_by_test_id("pay")).to_have_attribute("href", HOSTED)

    response = page.goto(f"{live_server.url}/billing/invoices/{globex_invoice.pk}/")
    assert response.status == 404


def test_operator_sees_roi_move_after_an_invoice_paid_webhook(
    noon_today, page: Page, live_server, operator, acme, offerings, finish_task, settings
):
    import json

    import requests
    import stripe

    when = noon_today.replace(day=1) - timedelta(days=3)
    period = periods.period_of(when)
    for _ in range(4):
        finish_task(task_type=TaskType.IMPLEMENT_IDEA, when=when, cost_micros=50_000)
    invoice = invoicing.invoice_prepare(customer_id=acme.pk, period=period)
    Invoice.objects.filter(pk=invoice.pk).update(status="open", stripe_invoice_id="in_browser_roi")
    settings.STRIPE_WEBHOOK_SECRET = "whsec_browser"

    log_in(page, live_server, "olivia")
    page.goto(f"{live_server.url}/billing/roi/?period={period}")
    expect(page.get_by_test_id("roi-revenue")).to_have_text("0.00 USD")
    expect(page.get_by_test_id("roi-total")).to_have_text("-100.0 %")

    obj = {"id": "in_browser_roi", "object": "invoice", "status": "paid", "amount_paid": 49, "amount_remaining": 0}
    body = json.dumps(
        {"id": "evt_browser", "type": "invoice.paid", "created": int(time.time()), "data": {"object": obj}}
    )
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_browser")
    response = requests.post(
        f"{live_server.url}/billing/stripe/webhook/",
        data=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    page.reload()
    expect(page.get_by_test_id("roi-revenue")).to_have_text("0.49 USD")  # 4 × 12.345 ¢, rounded once
    expect(page.get_by_test_id("roi-total")).to_have_text("145.0 %")  # (49 ¢ − 20 ¢) ÷ 20 ¢

    # The 12-month chart: uPlot bars with labelled axes, the amounts in the legend, the numbers below.
    chart = page.get_by_test_id("roi-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    assert chart.evaluate("el => el.uplot.axes.map(a => a.label)") == ["month", "USD"]
    assert chart.evaluate("el => el.uplot.series.slice(1).map(s => s.label)") == ["collected revenue", "AI cost"]
    last = chart.evaluate("el => el.uplot.data.map(column => column[column.length - 1])")
    assert last[1:] == [0.49, 0.2]  # revenue and AI cost of the month, in dollars
    assert chart.evaluate("el => el.uplot.series[1].value(el.uplot, 0.49)") == "0.49 USD"
    row = page.get_by_test_id("roi-chart-table").locator(f"tr[data-period='{period}']")
    expect(row).to_contain_text("0.49 USD")
    expect(row).to_contain_text("0.20 USD")


def test_customer_pages_through_older_invoices(page: Page, live_server, acme):
    Invoice.objects.bulk_create(
        Invoice(customer=acme, period=f"{2020 + i // 12:04d}-{i % 12 + 1:02d}", currency="jpy", total_minor=1000 + i)
        for i in range(26)
    )
    log_in(page, live_server, "carla")
    page.goto(f"{live_server.url}/billing/invoices/")
    rows = page.get_by_test_id("invoices").locator("tbody tr")
    expect(rows).to_have_count(24)
    expect(rows.first).to_contain_text("2022-02")
    expect(rows.first).to_contain_text("1,025 JPY")  # no decimals in yen
    page.get_by_test_id("older-invoices").click()
    expect(rows).to_have_count(2)
    expect(rows.last).to_contain_text("2020-01")
    expect(page.get_by_test_id("older-invoices")).to_have_count(0)
