import json
from datetime import UTC, datetime

import pytest
import stripe
import time_machine
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from billing import invoicing, roi
from billing.models import Invoice, Payment
from billing.roi import allocate
from tasks.models import TaskType

pytestmark = pytest.mark.django_db

DEC = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**9), min_size=1, max_size=20))
def test_allocation_adds_up_exactly(amount, weights):
    shares = allocate(amount, weights)
    assert len(shares) == len(weights)
    if sum(weights):
        assert sum(shares) == amount
        assert all(s >= 0 for s in shares)
    else:
        assert shares == [0] * len(weights)


@pytest.fixture
def november(acme, globex, offerings, finish_task):
    """Acme: 4 per-task tasks at 12.345 ¢ (AI cost 10 ¢ each) and 10,000 tokens at
    0.2 ¢/1k (cost 1 ¢). Globex: 2 per-task tasks (cost 30 ¢ each)."""
    for _ in range(4):
        finish_task(task_type=TaskType.IMPLEMENT_IDEA, cost_micros=100_000)
    finish_task(task_type=TaskType.SELF_IMPROVEMENT, tokens=10_000, cost_micros=10_000)
    for _ in range(2):
        finish_task(customer_ref="cust_globex", task_type=TaskType.IMPLEMENT_IDEA, cost_micros=300_000)
    acme_inv = invoicing.invoice_prepare(customer_id=acme.pk, period="2026-11")
    globex_inv = invoicing.invoice_prepare(customer_id=globex.pk, period="2026-11")
    return acme_inv, globex_inv


def set_status(invoice, status, stripe_id=None):
    Invoice.objects.filter(pk=invoice.pk).update(status=status, stripe_invoice_id=stripe_id)


def test_roi_counts_paid_revenue_less_refunds_against_the_cost_of_billed_tasks(november):
    acme_inv, globex_inv = november
    # Acme: lines 49 ¢ (4 × 12.345 ¢ = 49.38 ¢) and 2 ¢; paid, then 10 ¢ refunded.
    set_status(acme_inv, "paid")
    Payment.objects.create(invoice=acme_inv, kind="refund", stripe_id="ch_1:refunds", amount_minor=10)
    set_status(globex_inv, "open")  # billed, not collected
    report = roi.roi_report(periods=["2026-11"])
    rows = {r.offering: r for r in report.for_period("2026-11")}
    tasks = rows["Idea implementation"]
    assert tasks.billed_minor == 49 + 25  # acme 49.38 → 49, globex 24.69 → 25
    assert tasks.refunds_minor + rows["Self improvement"].refunds_minor == 10
    # 10 ¢ refund allocated over 49 and 2: 9.6 → 10 and 0.39 → 0 by largest remainder.
    assert (tasks.refunds_minor, tasks.revenue_minor) == (10, 39)
    assert tasks.ai_cost_micros == 4 * 100_000 + 2 * 300_000
    assert tasks.margin_micros == 39 * 10_000 - 1_000_000
    assert tasks.roi_bp == -6100  # −61 %
    tokens = rows["Self improvement"]
    assert (tokens.revenue_minor, tokens.ai_cost_micros, tokens.roi_bp) == (2, 10_000, 10_000)
    total = report.total("2026-11")
    assert total.revenue_minor == 41 and total.ai_cost_micros == 1_010_000


def test_draft_and_void_invoices_count_for_nothing(november):
    acme_inv, globex_inv = november
    set_status(globex_inv, "void")  # acme stays a draft
    assert roi.roi_report(periods=["2026-11"]).for_period("2026-11") == []


def test_the_roi_page_shows_the_table_and_twelve_months(client, operator, november, django_assert_max_num_queries):
    set_status(november[0], "paid")
    client.force_login(operator)
    with time_machine.travel(DEC, tick=False), django_assert_max_num_queries(10):
        response = client.get(reverse("billing:roi"), {"period": "2026-11"})
    body = response.content.decode()
    assert response.status_code == 200
    assert [m["period"] for m in response.context["chart"]["months"]][-1] == "2026-11"
    assert len(response.context["chart"]["months"]) == 12
    assert 'data-offering="Idea implementation"' in body
    assert '<td class="num" data-testid="roi-revenue">0.51 USD</td>' in body
    assert client.get(reverse("billing:roi"), {"period": "2026-13"}).status_code == 400


def test_the_roi_page_opens_on_the_latest_month_with_billing_and_says_so(client, operator, november):
    set_status(november[0], "paid")
    with time_machine.travel(datetime(2027, 1, 10, tzinfo=UTC), tick=False):
        client.force_login(operator)
        response = client.get(reverse("billing:roi"))
    assert response.context["period"] == "2026-11"  # not January 2027, which has no billing yet
    body = response.content.decode()
    assert "Showing 2026-11, the latest month with billing; 2027-01 is not invoiced yet." in body
    assert '<td class="num" data-testid="roi-revenue">0.51 USD</td>' in body
    with time_machine.travel(datetime(2027, 1, 10, tzinfo=UTC), tick=False):
        asked = client.get(reverse("billing:roi"), {"period": "2027-01"})
    assert asked.context["period"] == "2027-01" and "latest month with billing" not in asked.content.decode()


def test_the_roi_api_answers_per_offering_with_integers(client, make_api_key, november):
    set_status(november[0], "paid")
    _, secret = make_api_key(scopes=["read"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    data = client.get("/api/v1/billing/roi", {"period": "2026-11"}, **auth).json()
    assert data["period"] == "2026-11" and data["currency"] == "usd"
    by_name = {row["offering"]: row for row in data["offerings"]}
    assert by_name["Idea implementation"]["revenue_minor"] == 49
    assert by_name["Idea implementation"]["ai_cost_micros"] == 400_000  # Globex's draft is not billed yet
    assert data["total"]["revenue_minor"] == 51
    assert isinstance(data["total"]["roi_bp"], int)


def test_the_roi_api_refuses_bad_input_and_keys_without_read(client, make_api_key):
    _, secret = make_api_key(scopes=["read"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    response = client.get("/api/v1/billing/roi", {"period": "2026-13"}, **auth)
    assert response.status_code == 422 and response.json()["detail"].startswith("period:")
    _, tasks_only = make_api_key(scopes=["tasks"])
    assert client.get("/api/v1/billing/roi", HTTP_AUTHORIZATION=f"Bearer {tasks_only}").status_code == 403
    assert client.get("/api/v1/billing/roi").status_code == 401


def test_a_paid_webhook_moves_roi_at_once(client, settings, november, django_capture_on_commit_callbacks):
    acme_inv, _ = november
    set_status(acme_inv, "open", "in_roi_1")
    before = roi.roi_report(periods=["2026-11"]).total("2026-11").revenue_minor
    settings.STRIPE_WEBHOOK_SECRET = "whsec_roi"
    obj = {"id": "in_roi_1", "object": "invoice", "status": "paid", "amount_paid": 51, "amount_remaining": 0}
    body = json.dumps({"id": "evt_roi", "type": "invoice.paid", "created": 1_800_000_000, "data": {"object": obj}})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("billing:stripe_webhook"),
            body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=stripe.WebhookSignature.generate_signature_header(body, "whsec_roi"),
        )
    assert response.status_code == 200
    assert (before, roi.roi_report(periods=["2026-11"]).total("2026-11").revenue_minor) == (0, 51)


def test_the_dashboard_summarises_last_months_roi(client, operator, november):
    set_status(november[0], "paid")
    Payment.objects.create(invoice=november[0], kind="refund", stripe_id="ch_2:refunds", amount_minor=1)
    client.force_login(operator)
    with time_machine.travel(DEC, tick=False):
        body = client.get(reverse("home")).content.decode()
    summary = body.split('data-testid="billing-roi">')[1].split("</p>")[0]
    assert summary.startswith("2026-11: collected 0.50 USD against 0.41 USD of AI cost")


def test_the_period_pattern_in_the_api_schema_accepts_exactly_the_periods_parse_period_does():
    import re

    from billing.periods import PERIOD_PATTERN, BadPeriod, parse_period

    for year in range(10_000):
        for month in (0, 1, 12, 13):
            text = f"{year:04d}-{month:02d}"
            try:
                parse_period(text)
                accepted = True
            except BadPeriod:
                accepted = False
            assert accepted == bool(re.fullmatch(PERIOD_PATTERN, text)), text


@pytest.mark.django_db
def test_an_empty_period_is_refused_not_taken_for_this_month(agent):
    response = agent.get("/api/v1/billing/roi", {"period": ""})
    assert response.status_code == 422
    assert response.json()["detail"] == "period: period must look like YYYY-MM, got ''"
