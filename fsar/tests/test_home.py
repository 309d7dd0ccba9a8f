"""The landing page of each role: what a committee member and a customer came for."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from fsar.testing import report_md
from reviews import services
from reviews.models import Case

pytestmark = pytest.mark.django_db
WHY = "I read the report and the rollback plan."


@pytest.fixture
def post_report(agent):
    def post(text: str):
        return agent.post("/api/v1/proposals", data=text.encode(), content_type="text/markdown")

    return post


def case_ids(html: str, section: str) -> list[int]:
    part = html.split(f'data-testid="{section}"')[1].split("</section>")[0]
    return [int(chunk.split('"')[0]) for chunk in part.split('data-case="')[1:]]


def test_a_member_sees_the_cases_waiting_for_their_vote_most_urgent_first(client, post_report, alice, bob):
    low = post_report(report_md("low", severity=30)).json()["gate"]["case"]
    high = post_report(report_md("high", severity=60)).json()["gate"]["case"]
    voted = post_report(report_md("voted", severity=50)).json()["gate"]["case"]
    mine = services.report_ingest(raw=report_md("mine", severity=55).encode(), filename="m.md", user=alice)
    services.vote_cast(case_id=voted, member=alice, choice="approve", rationale=WHY)
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    # Not the one she voted on, nor the one she submitted (she may not vote on it).
    assert case_ids(html, "waiting-for-you") == [high, low]
    assert mine.report.case_id not in case_ids(html, "waiting-for-you")
    assert f'href="{reverse("reviews:case", args=[high])}"' in html
    client.force_login(bob)
    assert case_ids(client.get(reverse("home")).content.decode(), "waiting-for-you") == [
        high,
        mine.report.case_id,
        voted,
        low,
    ]


def test_a_member_sees_the_cases_they_claimed_and_the_overdue_ones(client, post_report, alice):
    claimed = post_report(report_md("claimed", severity=30)).json()["gate"]["case"]
    late = post_report(report_md("late", severity=30)).json()["gate"]["case"]
    Case.objects.filter(pk=late).update(due_at=timezone.now() - timedelta(hours=5))
    services.case_claim(case_id=claimed, member=alice)
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    assert case_ids(html, "claimed-by-you") == [claimed]
    assert case_ids(html, "overdue-cases") == [late]
    assert "overdue by 5 h" in html


def test_a_member_with_nothing_waiting_is_told_so(client, alice):
    client.force_login(alice)
    html = client.get(reverse("home")).content.decode()
    assert "No open case is waiting for your vote." in html
    assert "You have no claim on any case." in html and "No case is overdue." in html


def test_a_customer_sees_usage_so_far_open_invoices_and_the_last_paid_one(client, customer_user):
    from billing.demo import seed_demo_billing
    from billing.models import Invoice, InvoiceStatus

    now = timezone.now()
    seed_demo_billing(now=now, customer_user=customer_user)
    client.force_login(customer_user)
    with time_machine.travel(now, tick=False):
        html = client.get(reverse("home")).content.decode()
    acme = Invoice.objects.filter(customer__customer_ref="cust_acme")
    (open_invoice,) = acme.filter(status=InvoiceStatus.OPEN)
    paid = acme.filter(status=InvoiceStatus.PAID).order_by("-period").first()
    usage = html.split('data-testid="usage-so-far"')[1].split("</section>")[0]
    assert "Acme Corp: usage in" in usage and "USD" in usage
    opened = html.split('data-testid="open-invoices"')[1].split("</section>")[0]
    assert f'data-invoice="{open_invoice.pk}"' in opened
    assert f'href="{open_invoice.pay_url}"' in opened and ">Pay</a>" in opened
    last = html.split('data-testid="last-paid"')[1].split("</section>")[0]
    assert paid.display_number in last
    assert "Stripe is not configured" not in html
