"""In Chromium: an operator starts last month's invoice run, Stripe (faked at the
network edge) refuses one customer, the run page shows who failed and why, and
Retry invoices that customer."""

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from billing import periods
from billing.models import InvoiceRun, InvoiceRunItem
from fsar.testing import log_in
from tasks.models import TaskType

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_an_operator_sees_a_failed_customer_with_the_reason_and_retries_it(
    noon_today, page: Page, live_server, operator, acme, globex, offerings, finish_task, fake_stripe
):
    last_month = noon_today.replace(day=1) - timedelta(days=10)
    period = periods.period_of(last_month)
    for _ in range(3):
        finish_task(task_type=TaskType.IMPLEMENT_IDEA, when=last_month)  # 3 × 12.345 ¢ = 0.37 USD
    finish_task(customer_ref="cust_globex", task_type=TaskType.IMPLEMENT_IDEA, when=last_month)  # 0.12 USD
    fake_stripe.fail("customer_create", status=400, message="Invalid email address: nope")  # the first customer: Acme

    log_in(page, live_server, "olivia")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoice runs").click()
    expect(page.get_by_role("heading", name="Invoice runs")).to_be_visible()
    expect(page.get_by_test_id("runs")).to_contain_text("No invoice runs yet.")
    expect(page.get_by_label("Invoice the period (YYYY-MM)")).to_have_value(period)
    page.get_by_role("button", name="Start invoice run").click()

    run = InvoiceRun.objects.get()
    expect(page.get_by_role("heading", name=f"Invoice run #{run.pk} for {period}")).to_be_visible()
    expect(page.get_by_test_id("run-status")).to_have_text("Some customers failed")
    failed = page.get_by_test_id("run-items").locator('tr[data-status="failed"]')
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("Acme Corp")
    expect(failed).to_contain_text("Invalid email address: nope")
    done = page.get_by_test_id("run-items").locator('tr[data-status="done"]')
    expect(done).to_contain_text("Globex")
    expect(done).to_contain_text("0.12 USD")
    assert run.items.get(customer=acme).status == InvoiceRunItem.Status.FAILED

    page.get_by_role("link", name="All runs").click()
    row = page.get_by_test_id("runs").locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(period)
    expect(row.locator("td.bad")).to_have_text("1")  # one failed customer, flagged
    row.get_by_role("link", name=f"#{run.pk}").click()

    page.get_by_test_id("retry").click()
    expect(page.locator(".messages")).to_contain_text("Retrying the failed customers.")
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded")
    expect(page.get_by_test_id("run-items").locator('tr[data-status="failed"]')).to_have_count(0)
    acme_row = page.get_by_test_id("run-items").locator("tr", has_text="Acme Corp")
    expect(acme_row).to_have_attribute("data-status", "done")
    expect(acme_row).to_contain_text("Paid")
    expect(acme_row).to_contain_text("0.37 USD")
    expect(acme_row.locator("td.num").last).to_have_text("2")  # attempts
    expect(page.get_by_test_id("retry")).to_have_count(0)

    run.refresh_from_db()
    assert run.status == InvoiceRun.Status.SUCCEEDED
    item = run.items.get(customer=acme)
    assert (item.status, item.attempts, item.invoice.status) == (InvoiceRunItem.Status.DONE, 2, "paid")
    assert len(fake_stripe.customers) == 2 and len(fake_stripe.invoices) == 2
