"""Integration with a real fake Stripe: localstripe, started as an HTTP server on
127.0.0.1 by the fixture and stopped after. localstripe cannot create one-off
invoices or finalize them; those paths are covered with `responses`
(test_invoicing.py). Here: our StripeClient's real HTTP path, customers with a
card, invoice items, and error messages."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from billing import stripe_push
from billing.models import Customer
from billing.stripe_client import StripeClient, StripeFailed

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def localstripe_url(tmp_path_factory):
    state = tmp_path_factory.mktemp("localstripe")
    proc = subprocess.Popen(
        [sys.executable, "-m", "billing.tests.localstripe_server", str(state)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # blocks until the server is listening
        assert line.startswith("PORT "), f"localstripe did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def stripe_at_localstripe(settings, localstripe_url):
    settings.STRIPE_API_KEY = "sk_test_localstripe"
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return StripeClient()


def test_a_customer_with_a_visa_card_gets_invoice_items_in_localstripe(acme, stripe_at_localstripe):
    client = stripe_at_localstripe
    stripe_id = stripe_push._ensure_stripe_customer(client, acme.pk, timezone.now())
    assert stripe_id.startswith("cus_")
    assert Customer.objects.get(pk=acme.pk).stripe_customer_id == stripe_id
    # Asking again uses the saved id: no second customer.
    assert stripe_push._ensure_stripe_customer(client, acme.pk, timezone.now()) == stripe_id

    raw = client._client.v1
    raw.payment_methods.attach("pm_card_visa", params={"customer": stripe_id})
    raw.customers.update(stripe_id, params={"invoice_settings": {"default_payment_method": "pm_card_visa"}})
    customer = raw.customers.retrieve(stripe_id)
    assert customer["invoice_settings"]["default_payment_method"] == "pm_card_visa"
    assert customer["metadata"]["customer_ref"] == "cust_acme"

    item = client.invoice_item_create(
        params={
            "customer": stripe_id,
            "amount": 37,
            "currency": "usd",
            "description": "Idea implementation, 2026-11: 3 tasks",
            "metadata": {"fsar_invoice_line_id": "1"},
        },
        idempotency_key="fsar-invoice-line-1",
    )
    assert item["id"].startswith("ii_") and item["amount"] == 37
    listed = raw.invoice_items.list(params={"customer": stripe_id})
    assert [i["id"] for i in listed["data"]] == [item["id"]]
    assert listed["data"][0]["metadata"]["fsar_invoice_line_id"] == "1"


def test_stripe_errors_become_messages_an_operator_can_act_on(stripe_at_localstripe):
    with pytest.raises(StripeFailed, match="Stripe refused to add an invoice item"):
        stripe_at_localstripe.invoice_item_create(
            params={"customer": "cus_doesnotexist", "amount": 1, "currency": "usd"}, idempotency_key="k-1"
        )


def test_an_unreachable_stripe_is_reported_with_its_address(settings):
    settings.STRIPE_API_KEY = "sk_test_x"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    with pytest.raises(StripeFailed, match=r"Could not reach Stripe at http://127.0.0.1:9"):
        StripeClient().customer_create(params={"name": "x"}, idempotency_key="k")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_localstripe_delivers_signed_webhooks_that_we_verify_store_and_apply(
    acme, stripe_at_localstripe, localstripe_url, live_server, settings
):
    import threading

    import requests
    from django.db import transaction
    from django.db.models.signals import post_save

    from billing.models import StripeEvent

    settings.STRIPE_WEBHOOK_SECRET = "whsec_localstripe"
    done = {"customer.created": threading.Event(), "customer.updated": threading.Event()}

    ours = {}

    def seen(sender, instance, **kwargs):
        # Events of the other tests' customers may arrive too: wait for ours.
        obj = instance.payload["data"]["object"]
        if instance.type in done and obj.get("id") == ours.get("id") and instance.status != StripeEvent.Status.PENDING:
            # Tell the test only once the processing transaction has committed.
            transaction.on_commit(done[instance.type].set)

    post_save.connect(seen, sender=StripeEvent, dispatch_uid="test-localstripe-seen")
    try:
        response = requests.post(
            f"{localstripe_url}/_config/webhooks/fsar",
            data={"url": f"{live_server.url}/billing/stripe/webhook/", "secret": "whsec_localstripe"},
            timeout=10,
        )
        assert response.status_code == 200
        stripe_id = ours["id"] = stripe_push._ensure_stripe_customer(stripe_at_localstripe, acme.pk, timezone.now())
        assert done["customer.created"].wait(timeout=20), "localstripe's customer.created never arrived"
        stripe_at_localstripe._client.v1.customers.update(stripe_id, params={"email": "ap@acme.example"})
        assert done["customer.updated"].wait(timeout=20), "localstripe's customer.updated never arrived"
    finally:
        post_save.disconnect(dispatch_uid="test-localstripe-seen", sender=StripeEvent)
    created = StripeEvent.objects.get(type="customer.created", payload__data__object__id=stripe_id)
    assert created.status == StripeEvent.Status.IGNORED
    updated = StripeEvent.objects.get(type="customer.updated", payload__data__object__id=stripe_id)
    assert updated.status == StripeEvent.Status.PROCESSED and updated.result == "email updated"
    assert Customer.objects.get(pk=acme.pk).email == "ap@acme.example"
