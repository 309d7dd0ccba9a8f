"""Stripe's addresses (pay page, PDF, billing portal) are linked or followed
only when they are https: and on Stripe's hosts; anything else stored in an
invoice, or answered by the API, is not shown and not followed."""

import pytest
from django.urls import reverse

from billing.models import Invoice

pytestmark = pytest.mark.django_db

GOOD_PAY = "https://invoice.stripe.com/i/acct_test/in_1"
GOOD_PDF = "https://pay.stripe.com/invoice/acct_test/in_1/pdf"
HOSTILE = [
    "http://invoice.stripe.com/i/acct_test/in_1",  # not https
    "https://evil.example/i/acct_test/in_1",
    "https://stripe.com.evil.example/i/in_1",
    "https://evilstripe.com/i/in_1",
    "https://invoice.stripe.com@evil.example/i/in_1",  # userinfo: the host is evil.example
    "https://evil.example\\@invoice.stripe.com/",
    "https://invoice.stripe.com:8443/i/in_1",
    "javascript:alert(document.cookie)//invoice.stripe.com",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example/i/in_1",
    "https://invoice.stripe.com\u3002evil.example/",
    "https://[::1]/i/in_1",
]


@pytest.fixture
def open_invoice(acme):
    return Invoice.objects.create(
        customer=acme, period="2026-11", currency="usd", status="open", number="FSAR-0001", total_minor=1200
    )


def invoice_page(client, invoice, *, pay: str, pdf: str) -> str:
    Invoice.objects.filter(pk=invoice.pk).update(hosted_invoice_url=pay, invoice_pdf=pdf)
    response = client.get(reverse("billing:invoice", args=[invoice.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_stripes_own_addresses_are_linked(client, acme_user, open_invoice):
    client.force_login(acme_user)
    page = invoice_page(client, open_invoice, pay=GOOD_PAY, pdf=GOOD_PDF)
    assert f'href="{GOOD_PAY}" data-testid="pay"' in page
    assert f'href="{GOOD_PDF}"' in page


@pytest.mark.parametrize("url", HOSTILE)
def test_an_address_off_stripes_hosts_is_not_linked(client, acme_user, open_invoice, url):
    client.force_login(acme_user)
    page = invoice_page(client, open_invoice, pay=url, pdf=url)
    assert 'data-testid="pay"' not in page and 'data-testid="pdf"' not in page
    assert "evil.example" not in page and "javascript:" not in page and "data:text" not in page


@pytest.mark.parametrize("url", HOSTILE)
def test_the_rule(url):
    from billing.links import stripe_link

    assert stripe_link(url) == ""
    assert stripe_link(GOOD_PAY) == GOOD_PAY and stripe_link("https://billing.stripe.com/p/session/x")


def test_a_billing_portal_answer_off_stripes_hosts_is_not_followed(client, acme_user, acme, fake_stripe, monkeypatch):
    client.force_login(acme_user)
    assert client.post(reverse("billing:portal"))["Location"].startswith("https://billing.stripe.com/")  # the door
    from billing.stripe_client import StripeClient

    monkeypatch.setattr(StripeClient, "portal_session_create", lambda self, **kwargs: {"url": HOSTILE[1]})
    response = client.post(reverse("billing:portal"), follow=True)
    assert response.redirect_chain == [(reverse("billing:usage"), 302)]
    assert "unexpected address for the billing portal" in [str(m) for m in response.context["messages"]][0]
