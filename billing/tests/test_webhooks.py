"""Stripe webhooks with locally signed payloads: signature checks, storage once,
processing, and invoices that never move backwards whatever the delivery order."""

import itertools
import json
import time
from io import StringIO
from unittest import mock

import pytest
import stripe
from django.core.management import call_command
from django.urls import reverse

from billing import webhooks
from billing.models import Customer, Invoice, Payment, StripeEvent

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_fsar"
_ids = itertools.count(1)


def stripe_event(kind: str, obj: dict, *, created: int = 1_800_000_000, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{next(_ids):06d}",
        "object": "event",
        "type": kind,
        "created": created,
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "data": {"object": obj},
    }


def signed(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


@pytest.fixture
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    return SECRET


@pytest.fixture
def deliver(client, webhook_secret, django_capture_on_commit_callbacks):
    def post(event: dict | str, *, signature: str | None = "sign", body: str | None = None):
        body = body if body is not None else json.dumps(event)
        headers = {}
        if signature == "sign":
            headers["HTTP_STRIPE_SIGNATURE"] = signed(body)
        elif signature is not None:
            headers["HTTP_STRIPE_SIGNATURE"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("billing:stripe_webhook"), body, content_type="application/json", **headers)

    return post


@pytest.fixture
def open_invoice(acme):
    return Invoice.objects.create(
        customer=acme,
        period="2026-11",
        currency="usd",
        status="open",
        total_minor=3800,
        amount_remaining_minor=3800,
        stripe_invoice_id="in_wh_1",
        number="FSAR-0007",
    )


def invoice_obj(status: str, **extra) -> dict:
    paid = 3800 if status == "paid" else 0
    return {
        "id": "in_wh_1",
        "object": "invoice",
        "status": status,
        "total": 3800,
        "amount_paid": paid,
        "amount_remaining": 3800 - paid,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_test/in_wh_1",
        "payments": {
            "object": "list",
            "data": (
                [
                    {
                        "object": "invoice_payment",
                        "id": "inpay_1",
                        "amount_paid": 3800,
                        "payment": {"type": "payment_intent", "payment_intent": "pi_1"},
                        "status": "paid",
                    }
                ]
                if status == "paid"
                else []
            ),
        },
        **extra,
    }


# Signatures and storage


def test_a_signed_event_is_stored_acknowledged_and_processed(deliver, open_invoice):
    event = stripe_event("invoice.paid", invoice_obj("paid"))
    response = deliver(event)
    assert response.status_code == 200
    assert response.json() == {"received": event["id"], "duplicate": False}
    stored = StripeEvent.objects.get(stripe_id=event["id"])
    assert (stored.type, stored.api_version, stored.created) == ("invoice.paid", "2026-10-28.endive", 1_800_000_000)
    assert stored.status == StripeEvent.Status.PROCESSED and stored.attempts == 1
    assert "open → paid" in stored.result
    invoice = Invoice.objects.get()
    assert invoice.status == "paid" and invoice.amount_paid_minor == 3800 and invoice.amount_remaining_minor == 0
    assert Payment.objects.get().stripe_id == "pi_1"


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "stale", "changed byte", "missing header", "garbage header"],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(deliver, open_invoice, case):
    event = stripe_event("invoice.paid", invoice_obj("paid"))
    body = json.dumps(event)
    if case == "wrong secret":
        response = deliver(event, body=body, signature=signed(body, secret="whsec_other"))
    elif case == "stale":
        response = deliver(event, body=body, signature=signed(body, timestamp=int(time.time()) - 301))
    elif case == "changed byte":
        response = deliver(event, body=body.replace("3800", "3801", 1), signature=signed(body))
    elif case == "missing header":
        response = deliver(event, body=body, signature=None)
    else:
        response = deliver(event, body=body, signature="nonsense")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Stripe-Signature:")
    assert not StripeEvent.objects.exists()
    assert Invoice.objects.get().status == "open"


def test_a_signature_just_inside_the_tolerance_is_accepted(deliver, open_invoice):
    event = stripe_event("invoice.finalized", invoice_obj("open"))
    body = json.dumps(event)
    response = deliver(event, body=body, signature=signed(body, timestamp=int(time.time()) - 290))
    assert response.status_code == 200
    assert response.json() == {"received": event["id"], "duplicate": False}
    stored = StripeEvent.objects.get(stripe_id=event["id"])
    assert stored.type == "invoice.finalized" and stored.attempts == 1
    assert stored.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED)
    assert stored.payload["id"] == event["id"]


def test_without_a_webhook_secret_every_delivery_is_refused_clearly(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = json.dumps(stripe_event("invoice.paid", invoice_obj("paid")))
    response = client.post(
        reverse("billing:stripe_webhook"), body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signed(body)
    )
    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in response.json()["detail"]
    assert not StripeEvent.objects.exists()


def test_a_signed_body_that_is_not_an_event_is_a_400(deliver):
    response = deliver({}, body='{"hello": "world"}')
    assert response.status_code == 400 and response.json()["detail"].startswith("body:")
    assert not StripeEvent.objects.exists()


def test_a_duplicate_delivery_is_acknowledged_and_has_no_effect(deliver, open_invoice):
    event = stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 500})
    deliver(stripe_event("invoice.paid", invoice_obj("paid")))
    assert deliver(event).json()["duplicate"] is False
    assert deliver(event).json()["duplicate"] is True
    assert StripeEvent.objects.filter(stripe_id=event["id"]).get().attempts == 1
    assert Payment.objects.get(kind="refund").amount_minor == 500


def test_the_webhook_needs_no_login_and_only_takes_post(client):
    assert client.get(reverse("billing:stripe_webhook")).status_code == 405


def test_events_without_a_handler_are_stored_and_acknowledged(deliver):
    event = stripe_event("product.created", {"id": "prod_1", "object": "product"})
    assert deliver(event).status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.status == StripeEvent.Status.IGNORED and "no handler" in stored.result


def test_events_for_invoices_fsar_did_not_make_are_acknowledged_and_ignored(deliver, acme):
    deliver(stripe_event("invoice.paid", {**invoice_obj("paid"), "id": "in_someone_else"}))
    assert StripeEvent.objects.get().result == "ignored: not an FSAR invoice"


# Order


def test_events_in_reverse_order_never_move_an_invoice_backwards(deliver, open_invoice):
    Invoice.objects.filter(pk=open_invoice.pk).update(status="draft")
    t = 1_800_000_000
    deliver(stripe_event("invoice.paid", invoice_obj("paid"), created=t + 2))
    deliver(stripe_event("invoice.finalized", invoice_obj("open"), created=t + 1))
    deliver(stripe_event("invoice.created", invoice_obj("draft"), created=t))
    invoice = Invoice.objects.get()
    assert invoice.status == "paid" and invoice.amount_paid_minor == 3800 and invoice.amount_remaining_minor == 0
    results = list(StripeEvent.objects.order_by("id").values_list("result", flat=True))
    assert "stale: stays paid (Stripe says open)" in results[1]


def test_events_in_the_same_second_apply_by_state_not_arrival(deliver, open_invoice):
    same = 1_800_000_000
    deliver(stripe_event("invoice.paid", invoice_obj("paid"), created=same))
    deliver(stripe_event("invoice.payment_failed", invoice_obj("open"), created=same))
    deliver(stripe_event("invoice.finalized", invoice_obj("open"), created=same))
    invoice = Invoice.objects.get()
    assert invoice.status == "paid" and invoice.amount_remaining_minor == 0 and invoice.collection_error == ""


@pytest.mark.parametrize(
    "start,kind,status,expected",
    [
        ("paid", "invoice.voided", "void", "paid"),
        ("void", "invoice.paid", "paid", "void"),
        ("void", "invoice.marked_uncollectible", "uncollectible", "void"),
        ("open", "invoice.marked_uncollectible", "uncollectible", "uncollectible"),
        ("uncollectible", "invoice.paid", "paid", "paid"),
        ("uncollectible", "invoice.voided", "void", "void"),
        ("uncollectible", "invoice.finalized", "open", "uncollectible"),
        ("open", "invoice.voided", "void", "void"),
    ],
)
def test_stripes_invoice_state_machine(deliver, open_invoice, start, kind, status, expected):
    Invoice.objects.filter(pk=open_invoice.pk).update(status=start)
    deliver(stripe_event(kind, invoice_obj(status)))
    assert Invoice.objects.get().status == expected


def test_older_payload_shapes_are_accepted(deliver, open_invoice):
    old = {
        "id": "in_wh_1",
        "object": "invoice",
        "status": "paid",
        "paid": True,
        "payment_intent": "pi_old",
        "total": 3800,
        "amount_paid": 3800,
        "amount_remaining": 0,
    }
    deliver(stripe_event("invoice.payment_succeeded", old))
    assert Invoice.objects.get().status == "paid"
    assert Payment.objects.get().stripe_id == "pi_old"
    # A payment intent of the old shape names its invoice.
    deliver(stripe_event("payment_intent.succeeded", {"id": "pi_old", "invoice": "in_wh_1", "amount_received": 3800}))
    assert Payment.objects.get().status == "succeeded"


def test_a_failed_payment_is_recorded_on_the_invoice(deliver, open_invoice):
    Payment.objects.create(invoice=open_invoice, stripe_id="pi_9", amount_minor=3800, status="processing")
    failed = {"id": "pi_9", "amount": 3800, "last_payment_error": {"message": "Your card has insufficient funds."}}
    deliver(stripe_event("payment_intent.payment_failed", failed))
    invoice = Invoice.objects.get()
    assert invoice.status == "open" and invoice.collection_error == "Your card has insufficient funds."
    assert Payment.objects.get().status == "failed"


def test_refunds_only_grow_whatever_the_order(deliver, open_invoice):
    deliver(stripe_event("invoice.paid", invoice_obj("paid")))
    deliver(stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 1500}))
    deliver(stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 500}))
    assert Payment.objects.get(kind="refund").amount_minor == 1500


def test_customer_updates_and_deletions(deliver, acme):
    Customer.objects.filter(pk=acme.pk).update(stripe_customer_id="cus_1")
    deliver(stripe_event("customer.updated", {"id": "cus_1", "object": "customer", "email": "ap@acme.example"}))
    assert Customer.objects.get().email == "ap@acme.example"
    deliver(stripe_event("customer.deleted", {"id": "cus_1", "object": "customer", "deleted": True}))
    assert Customer.objects.get().stripe_customer_id is None


# Failures and replay


def test_a_failing_handler_rolls_back_records_the_error_and_can_be_replayed(deliver, open_invoice):
    event = stripe_event("invoice.paid", invoice_obj("paid"))

    def half_then_crash(ev, obj):
        Invoice.objects.filter(pk=open_invoice.pk).update(status="paid")
        raise RuntimeError("database went away")

    with mock.patch.dict(webhooks.HANDLERS, {"invoice.paid": half_then_crash}):
        assert deliver(event).status_code == 200  # acknowledged: it is stored
    stored = StripeEvent.objects.get()
    assert stored.status == StripeEvent.Status.FAILED and "database went away" in stored.error
    assert Invoice.objects.get().status == "open", "a failed handler's effects were committed"

    out = StringIO()
    call_command("stripe_replay", stdout=out)
    assert "Replayed 1 event(s); 0 still failing." in out.getvalue()
    stored.refresh_from_db()
    assert stored.status == StripeEvent.Status.PROCESSED and stored.attempts == 2 and stored.error == ""
    assert Invoice.objects.get().status == "paid"
    out = StringIO()
    call_command("stripe_replay", stdout=out)
    assert "Replayed 0 event(s)" in out.getvalue()


def test_a_burst_of_events_is_drained_by_one_job_in_arrival_order(client, webhook_secret, open_invoice):
    """Intake schedules one drain job for a burst (not one per event); the drain
    applies every pending event and frees the flag for the next burst."""
    from billing import jobs

    events = [
        stripe_event("invoice.finalized", invoice_obj("open"), created=1),
        stripe_event("invoice.paid", invoice_obj("paid"), created=2),
        stripe_event("charge.refunded", {"id": "ch_9", "payment_intent": "pi_1", "amount_refunded": 100}, created=3),
    ]
    with mock.patch("billing.webhooks.enqueue_on_commit") as enqueue:
        for event in events:
            body = json.dumps(event)
            response = client.post(
                reverse("billing:stripe_webhook"),
                body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signed(body),
            )
            assert response.status_code == 200
    assert enqueue.call_count == 1 and enqueue.call_args.args == ("billing.jobs.stripe_events_drain",)
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"pending"}

    assert jobs.stripe_events_drain() == "processed 3 event(s)"
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Invoice.objects.get().status == "paid"
    assert Payment.objects.get(kind="refund").amount_minor == 100
    assert webhooks.drain_flag_take()  # the drain left the flag free for the next burst
    webhooks.drain_flag_free()
    assert jobs.stripe_events_drain() == "processed 0 event(s)"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_in_one_drain_a_failing_event_rolls_back_alone(webhook_secret, open_invoice, acme):
    """Each event applies in its own transaction with its status, so one failure
    neither undoes nor blocks the events before and after it."""
    events = [
        stripe_event("invoice.finalized", invoice_obj("open"), created=1),
        stripe_event("customer.updated", {"id": "cus_acme", "email": "crash@acme.test"}, created=2),
        stripe_event("invoice.paid", invoice_obj("paid"), created=3),
    ]
    with mock.patch("billing.webhooks.enqueue_on_commit"):
        for event in events:
            body = json.dumps(event).encode()
            webhooks.receive(body=body, signature=signed(body.decode()))
    Customer.objects.filter(pk=acme.pk).update(stripe_customer_id="cus_acme")
    real, wrote = webhooks.HANDLERS["customer.updated"], []

    def crash_after_writing(ev, obj):
        wrote.append(real(ev, obj))
        raise RuntimeError("handler bug")

    with mock.patch.dict(webhooks.HANDLERS, {"customer.updated": crash_after_writing}):
        assert webhooks.drain_pending() == 3
    assert wrote == ["email updated"]
    statuses = dict(StripeEvent.objects.values_list("stripe_id", "status"))
    assert [statuses[e["id"]] for e in events] == ["processed", "failed", "processed"]
    assert Invoice.objects.get().status == "paid"
    assert Payment.objects.filter(kind="payment").count() == 1
    assert Customer.objects.get(pk=acme.pk).email == acme.email, "the failed event's write was committed"


def test_the_periodic_drain_is_a_safety_net():
    from billing import jobs
    from fsar.periodic import PERIODIC_JOBS

    assert jobs.stripe_events_drain in [job for job, _ in PERIODIC_JOBS]


def test_credit_notes_are_recorded_and_a_void_one_stays_void(deliver, open_invoice):
    note = {"id": "cn_1", "object": "credit_note", "invoice": "in_wh_1", "total": 700, "status": "issued"}
    deliver(stripe_event("credit_note.voided", {**note, "status": "void"}, created=2))
    deliver(stripe_event("credit_note.created", note, created=1))  # late
    payment = Payment.objects.get(stripe_id="cn_1")
    assert (payment.kind, payment.status, payment.amount_minor) == ("credit_note", "void", 0)
    deliver(stripe_event("credit_note.created", {**note, "id": "cn_2"}))
    assert Payment.objects.get(stripe_id="cn_2").amount_minor == 700
