"""In Chromium: what a committee member and a customer see first after logging in."""

import pytest
from playwright.sync_api import Page, expect

from fsar.testing import log_in, report_md

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_member_lands_on_the_cases_waiting_for_their_vote_and_opens_one(page: Page, live_server, alice, agent):
    low = agent.post("/api/v1/proposals", data=report_md("low", severity=30), content_type="text/markdown")
    high = agent.post("/api/v1/proposals", data=report_md("high", severity=60), content_type="text/markdown")
    high_case = high.json()["gate"]["case"]

    log_in(page, live_server, "alice")
    waiting = page.get_by_test_id("waiting-for-you")
    expect(waiting.locator("li")).to_have_count(2)
    expect(waiting.locator("li").first).to_contain_text("Report high")  # most urgent first
    expect(waiting.locator("li").nth(1)).to_contain_text("Report low")
    expect(page.get_by_test_id("claimed-by-you")).to_contain_text("You have no claim on any case.")
    expect(page.get_by_test_id("overdue-cases")).to_contain_text("No case is overdue.")
    waiting.get_by_role("link", name="Report high").click()
    expect(page).to_have_url(f"{live_server.url}/reviews/cases/{high_case}/")
    assert low.json()["gate"]["case"] != high_case


def test_a_customer_lands_on_usage_open_invoices_with_pay_and_the_last_paid_one(
    noon_today, page: Page, live_server, customer_user
):
    from billing.demo import seed_demo_billing
    from billing.models import Invoice

    seed_demo_billing(now=noon_today, customer_user=customer_user)
    open_invoice = Invoice.objects.get(customer__customer_ref="cust_acme", status="open")

    log_in(page, live_server, "carla")
    expect(page.get_by_test_id("usage-so-far")).to_contain_text("Acme Corp: usage in")
    opened = page.get_by_test_id("open-invoices")
    expect(opened).to_contain_text(open_invoice.display_number)
    expect(opened.get_by_test_id("pay")).to_have_attribute("href", open_invoice.pay_url)
    last = page.get_by_test_id("last-paid")
    expect(last).to_contain_text("paid")
    last.get_by_role("link").first.click()
    expect(page.get_by_test_id("invoice-status")).to_have_text("Paid")
    expect(page.get_by_test_id("payments")).to_contain_text("Payment")
    expect(page.get_by_text("Stripe is not configured")).to_have_count(0)
