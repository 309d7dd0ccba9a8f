"""Small things a new user trips over: the favicon, the report format as a page,
invoice quantities in one format."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_every_page_names_the_icon_and_favicon_ico_leads_to_it(client, operator):
    from django.test import Client

    client.force_login(operator)
    for url in (reverse("home"), reverse("login"), reverse("tasks:metrics")):
        assert '<link rel="icon" href="/static/fsar/favicon.svg"' in client.get(url).content.decode(), url
    response = Client().get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/fsar/favicon.svg")


def test_the_upload_page_links_the_report_format_page_which_renders_the_format(client, operator):
    client.force_login(operator)
    upload = client.get(reverse("reviews:upload")).content.decode()
    assert f'<a href="{reverse("reviews:format")}" data-testid="format-link">' in upload
    assert "docs/fsar-report-format.md</code>" not in upload
    page = client.get(reverse("reviews:format")).content.decode()
    assert "<h1>FSAR report format</h1>" in page
    assert "<table>" in page and "<code>block_execution</code>" in page


def test_an_invoice_shows_each_quantity_once_in_one_format(client, customer_user):
    from billing import services
    from billing.models import Invoice, InvoiceLine, ServiceOffering

    customer = services.customer_create(customer_ref="cust_acme", name="Acme", users=[customer_user])
    offering = services.offering_create(
        name="Self improvement", unit=ServiceOffering.Unit.THOUSAND_TOKENS, unit_price_micros=20_000, task_types=[]
    )
    invoice = Invoice.objects.create(customer=customer, period="2026-10", currency="usd", status="open")
    InvoiceLine.objects.create(
        invoice=invoice,
        offering=offering,
        description="Self improvement, 2026-10: 25,084 tokens",
        quantity=25084,
        tasks=3,
        amount_micros=501_680,
        amount_minor=50,
    )
    client.force_login(customer_user)
    html = client.get(reverse("billing:invoice", args=[invoice.pk])).content.decode()
    lines = html.split('data-testid="invoice-lines"')[1].split("</table>")[0]
    assert lines.count("25,084") == 1 and "25084" not in lines
    assert '<td class="num" data-field="quantity">25,084 tokens</td>' in lines
