import csv
import io
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing import invoicing, money
from billing.models import Invoice, InvoiceRun, InvoiceRunItem, Payment
from tasks.models import ExecutionTask, TaskStatus, TaskType

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def acme_usage(acme, offerings, finish_task):
    for _ in range(3):
        finish_task(task_type=TaskType.IMPLEMENT_IDEA)
    finish_task(task_type=TaskType.SELF_IMPROVEMENT, tokens=2_500)
    return acme


@pytest.fixture
def acme_invoice(acme_usage):
    invoice = invoicing.invoice_prepare(customer_id=acme_usage.pk, period="2026-11")
    Invoice.objects.filter(pk=invoice.pk).update(
        status="open",
        number="FSAR-0001",
        stripe_invoice_id="in_test_1",
        hosted_invoice_url="https://invoice.stripe.com/i/acct_test/in_test_1",
    )
    Payment.objects.create(
        invoice=invoice, kind=Payment.Kind.REFUND, stripe_id="re_1", amount_minor=5, status="succeeded"
    )
    return Invoice.objects.get(pk=invoice.pk)


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_a_customer_sees_this_periods_usage_by_offering(client, acme_user, acme_usage):
    client.force_login(acme_user)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("billing:usage"))
    assert response.status_code == 200
    rows = {r["offering"]: r for r in response.context["rows"]}
    assert rows["Idea implementation"]["tasks"] == 3
    assert rows["Idea implementation"]["amount_minor"] == 37
    assert rows["Self improvement"]["quantity"] == 2_500
    html = response.content.decode()
    assert "0.38 USD" in html
    # Without Stripe: what the customer can do, no dead button, and no operator's configuration talk.
    assert "Online payment is not available yet; contact us" in html
    assert 'data-testid="portal"' not in html
    assert "Stripe is not configured" not in html and "STRIPE_API_KEY" not in html


def test_a_held_task_shows_as_awaiting_review_without_committee_details(client, acme_user, acme):
    ExecutionTask.objects.create(
        external_id="held-1",
        task_type=TaskType.IMPLEMENT_IDEA,
        status=TaskStatus.HELD,
        customer_ref="cust_acme",
        gate_decision="hold",
        gate_reason="SECRET-RATIONALE severity high",
        gate_policy="SECRET-POLICY",
        gate_case="CASE-42",
    )
    client.force_login(acme_user)
    body = client.get(reverse("billing:usage")).content.decode()
    assert "held-1" in body and "awaiting review" in body
    for secret in ("SECRET-RATIONALE", "SECRET-POLICY", "CASE-42"):
        assert secret not in body


def test_the_usage_csv_adds_up_to_the_invoice(client, acme_user, acme_invoice):
    client.force_login(acme_user)
    rows = csv_rows(client.get(reverse("billing:invoice_csv", args=[acme_invoice.pk])))
    assert len(rows) == 4
    by_offering: dict[str, int] = {}
    for row in rows:
        by_offering[row["offering"]] = by_offering.get(row["offering"], 0) + int(row["amount_micros"])
    lines = {line.offering.name: line for line in acme_invoice.lines.all()}
    for name, micros in by_offering.items():
        assert micros == lines[name].amount_micros
        assert money.micros_to_minor(micros) == lines[name].amount_minor
    assert sum(money.micros_to_minor(m) for m in by_offering.values()) == acme_invoice.total_minor
    with time_machine.travel(NOW, tick=False):
        period_rows = csv_rows(client.get(reverse("billing:usage_csv")))
    assert sorted(r["task_external_id"] for r in period_rows) == sorted(r["task_external_id"] for r in rows)


def test_a_bad_period_is_a_400_naming_the_field(client, acme_user, acme):
    client.force_login(acme_user)
    response = client.get(reverse("billing:usage"), {"period": "2026-13"})
    assert response.status_code == 400
    assert b"period" in response.content


def test_the_invoice_page_shows_lines_refunds_and_the_pay_button(client, acme_user, acme_invoice):
    client.force_login(acme_user)
    response = client.get(reverse("billing:invoice", args=[acme_invoice.pk]))
    body = response.content.decode()
    assert 'href="https://invoice.stripe.com/i/acct_test/in_test_1"' in body
    lines = body.split('data-testid="invoice-lines"')[1].split("</table>")[0]
    assert "Idea implementation" in lines and '<td class="num" data-field="quantity">3 tasks</td>' in lines
    assert "Refund" in body and "0.05 USD" in body
    assert "FSAR-0001" in client.get(reverse("billing:invoices")).content.decode()


def test_another_customers_invoice_is_404(client, globex_user, globex, acme_invoice):
    client.force_login(globex_user)
    assert client.get(reverse("billing:invoice", args=[acme_invoice.pk])).status_code == 404
    assert client.get(reverse("billing:invoice_csv", args=[acme_invoice.pk])).status_code == 404
    assert "FSAR-0001" not in client.get(reverse("billing:invoices")).content.decode()
    with time_machine.travel(NOW, tick=False):
        assert client.get(reverse("billing:usage")).context["rows"] == []
        assert csv_rows(client.get(reverse("billing:usage_csv"))) == []


def test_a_customer_user_without_a_billing_account_is_told_so(client, customer_user):
    client.force_login(customer_user)
    assert b"not linked to a billing account" in client.get(reverse("billing:usage")).content


def test_the_billing_portal_tells_a_customer_to_contact_us_when_stripe_is_not_configured(client, acme_user, acme):
    client.force_login(acme_user)
    response = client.post(reverse("billing:portal"), follow=True)
    (message,) = [str(m) for m in response.context["messages"]]
    assert message == "Online payment is not available yet; contact us to pay or to change how you pay."


def test_the_billing_portal_button_shows_when_stripe_is_configured(client, acme_user, acme, fake_stripe):
    client.force_login(acme_user)
    html = client.get(reverse("billing:usage")).content.decode()
    assert 'data-testid="portal"' in html and "Online payment is not available" not in html


def test_operators_still_see_that_stripe_is_not_configured(client, operator):
    client.force_login(operator)
    assert "Stripe is not configured" in client.get(reverse("billing:runs")).content.decode()


def test_the_billing_portal_redirects_to_a_stripe_session(client, acme_user, acme, fake_stripe):
    client.force_login(acme_user)
    response = client.post(reverse("billing:portal"))
    assert response.status_code == 302
    assert response["Location"].startswith("https://billing.stripe.com/p/session/")
    assert fake_stripe.creates("/v1/customers") == [f"fsar-customer-{acme.pk}"]


def test_the_billing_portal_makes_at_most_three_stripe_calls(client, acme_user, acme, fake_stripe):
    """gunicorn.conf.py's timeout is sized for three calls in one request (fsar/tests/test_operations.py);
    the worst case is a customer whose first creation is older than Stripe's idempotency window."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import Customer

    Customer.objects.filter(pk=acme.pk).update(stripe_create_attempted_at=timezone.now() - timedelta(days=2))
    client.force_login(acme_user)
    assert client.post(reverse("billing:portal")).status_code == 302
    assert [path for _, path, _ in fake_stripe.calls] == [
        "/v1/customers/search",
        "/v1/customers",
        "/v1/billing_portal/sessions",
    ]


def test_the_invoice_list_makes_the_same_number_of_queries_for_many_invoices(
    client, acme_user, acme, django_assert_max_num_queries
):
    for month in range(1, 11):
        Invoice.objects.create(customer=acme, period=f"2025-{month:02d}", currency="usd", total_minor=month)
    client.force_login(acme_user)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("billing:invoices"))
    assert response.content.decode().count("data-invoice=") == 10


def test_operators_start_a_run_see_failures_and_retry(
    client, operator, acme_usage, settings, fake_stripe, django_capture_on_commit_callbacks
):
    settings.STRIPE_API_KEY = ""  # the first attempt fails: Stripe is not configured
    client.force_login(operator)
    with time_machine.travel(datetime(2026, 12, 3, tzinfo=UTC), tick=False):
        assert client.get(reverse("billing:runs")).context["form"].initial["period"] == "2026-11"
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("billing:runs"), {"period": "2026-11"})
    run = InvoiceRun.objects.get()
    assert response["Location"] == reverse("billing:run", args=[run.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Stripe is not configured" in page and 'data-testid="retry"' in page
    assert run.items.get().status == InvoiceRunItem.Status.FAILED

    settings.STRIPE_API_KEY = "sk_test_fsar"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("billing:run_retry", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == InvoiceRun.Status.SUCCEEDED
    assert run.items.get().invoice.status == "paid"
    response = client.post(reverse("billing:run_retry", args=[run.pk]), follow=True)
    assert any("no failed customers" in str(m) for m in response.context["messages"])


def test_starting_a_run_for_a_bad_or_unfinished_period_names_the_problem(client, operator):
    client.force_login(operator)
    with time_machine.travel(NOW, tick=False):
        response = client.post(reverse("billing:runs"), {"period": "2026-11"})
        assert "has not ended yet" in response.content.decode()
        response = client.post(reverse("billing:runs"), {"period": "nov"})
        assert "YYYY-MM" in response.content.decode()
    assert not InvoiceRun.objects.exists()


def test_the_operator_dashboard_shows_open_invoices_and_the_last_runs_failures(client, operator, acme_invoice):
    run = InvoiceRun.objects.create(period="2026-11", status=InvoiceRun.Status.FAILED)
    InvoiceRunItem.objects.create(run=run, customer=acme_invoice.customer, status=InvoiceRunItem.Status.FAILED)
    client.force_login(operator)
    response = client.get(reverse("home"))
    section = response.content.decode().split('data-testid="billing-dashboard"')[1].split("</section>")[0]
    assert (
        'Open invoices: <a href="/admin/billing/invoice/?status__exact=open" data-testid="open-invoices">'
        "<strong>1</strong></a>, 0.38 USD outstanding"
    ) in section
    assert "1 failed" in section and reverse("billing:run", args=[run.pk]) in section


def _invoices(acme, n: int) -> None:
    Invoice.objects.bulk_create(
        Invoice(customer=acme, period=f"{2000 + i // 12:04d}-{i % 12 + 1:02d}", currency="usd", total_minor=i)
        for i in range(n)
    )


def test_the_invoice_list_is_paged_by_keyset_newest_first(client, acme_user, acme):
    _invoices(acme, 30)
    client.force_login(acme_user)
    first = client.get(reverse("billing:invoices"))
    periods_1 = [inv.period for inv in first.context["invoices"]]
    assert len(periods_1) == 24 and periods_1 == sorted(periods_1, reverse=True)
    assert periods_1[0] == "2002-06"
    html = first.content.decode()
    assert f'href="?before={first.context["next_before"]}"' in html
    second = client.get(reverse("billing:invoices"), {"before": first.context["next_before"]})
    periods_2 = [inv.period for inv in second.context["invoices"]]
    assert len(periods_2) == 6 and max(periods_2) < min(periods_1)
    assert second.context["next_before"] is None
    assert 'data-testid="older-invoices"' not in second.content.decode()


@pytest.mark.parametrize("cursor", ["nonsense", "2026-13", "<script>"])
def test_a_bad_page_cursor_is_a_400_naming_it(client, acme_user, acme, operator, cursor):
    client.force_login(acme_user)
    response = client.get(reverse("billing:invoices"), {"before": cursor})
    assert response.status_code == 400 and response.content.decode().startswith("before:")
    assert response["Content-Type"].startswith("text/plain")
    client.force_login(operator)
    response = client.get(reverse("billing:runs"), {"before": cursor})
    assert response.status_code == 400 and response.content.decode().startswith("before:")


@pytest.mark.parametrize("n", [3, 30])
def test_the_invoice_list_makes_a_pinned_number_of_queries(client, acme_user, acme, django_assert_num_queries, n):
    _invoices(acme, n)
    client.force_login(acme_user)
    client.get(reverse("billing:invoices"))  # the session's first read
    # session, user with its groups (role check; core/auth.py), customer, the page
    with django_assert_num_queries(4):
        client.get(reverse("billing:invoices"))


def _runs(n: int, customer) -> None:
    from datetime import UTC, datetime, timedelta

    from billing.models import InvoiceRun, InvoiceRunItem

    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs = InvoiceRun.objects.bulk_create(
        InvoiceRun(period="2025-12", status=InvoiceRun.Status.SUCCEEDED, started_at=start + timedelta(hours=i % 7))
        for i in range(n)
    )
    InvoiceRunItem.objects.bulk_create(
        InvoiceRunItem(run=run, customer=customer, status=InvoiceRunItem.Status.DONE, updated_at=start) for run in runs
    )


def test_the_runs_page_is_paged_by_keyset_and_loses_no_run_between_pages(client, operator, acme):
    from billing.models import InvoiceRun

    _runs(60, acme)  # seven start times shared by many runs: the id breaks ties
    client.force_login(operator)
    first = client.get(reverse("billing:runs"))
    import html
    import re

    (href,) = re.findall(r'href="([^"]*)" rel="next" data-testid="older-runs"', first.content.decode())
    second = client.get(reverse("billing:runs") + html.unescape(href))  # the page's own link
    seen = [run.pk for run, _ in first.context["runs"]] + [run.pk for run, _ in second.context["runs"]]
    assert len(first.context["runs"]) == 50 and second.context["next_before"] is None
    expected = list(InvoiceRun.objects.order_by("-started_at", "-id").values_list("pk", flat=True))
    assert seen == expected
    assert all(summary["done"] == 1 for _, summary in first.context["runs"])


@pytest.mark.parametrize("n", [2, 60])
def test_the_runs_page_makes_a_pinned_number_of_queries(client, operator, acme, django_assert_num_queries, n):
    _runs(n, acme)
    client.force_login(operator)
    client.get(reverse("billing:runs"))
    # session, user with its groups (role check; core/auth.py), the page of runs, their summaries in one query
    with django_assert_num_queries(4):
        client.get(reverse("billing:runs"))
