"""Sending an invoice to Stripe (customer, invoice, items, finalize, charge or
send) and opening Stripe's billing portal.

Stripe calls never run inside a database transaction. Instead each Stripe id is
saved in its own short transaction right after the call that created it, and
every create carries an idempotency key derived from our own row id. A run that
is interrupted anywhere and started again therefore resumes where it stopped:
within 24 hours Stripe answers a repeated create with the original object, and
after that our saved ids (or, for the one call in flight at the crash, a
metadata search) keep anything from being created twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import states
from billing.links import stripe_link
from billing.models import Customer, Invoice, InvoiceLine, InvoiceStatus
from billing.stripe_client import BillingError, StripeClient

logger = logging.getLogger(__name__)

# Stripe keeps idempotency keys for 24 hours; past this, look before creating again.
IDEMPOTENCY_WINDOW = timedelta(hours=23)
PUSH_LEASE = timedelta(minutes=10)


def _take_lease(invoice_id: int, now: datetime) -> bool:
    # An update(), not a save: a compare-and-set in one statement, and the lease is a
    # lock between invoice runs, not the invoice's state (push_lease_until is excluded
    # from the invoice's history), so no history row is skipped.
    return bool(
        Invoice.objects.filter(pk=invoice_id)
        .filter(Q(push_lease_until__isnull=True) | Q(push_lease_until__lt=now))
        .update(push_lease_until=now + PUSH_LEASE)
    )


def _apply_stripe_invoice(invoice_id: int, data: dict, *, reason: str, **extra) -> Invoice:
    """Copy Stripe's view of an invoice onto ours, in one transaction."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        states.move(invoice, data.get("status"))
        invoice.number = data.get("number") or invoice.number
        invoice.hosted_invoice_url = data.get("hosted_invoice_url") or invoice.hosted_invoice_url
        invoice.invoice_pdf = data.get("invoice_pdf") or invoice.invoice_pdf
        invoice.due_date = states.stripe_time(data.get("due_date")) or invoice.due_date
        for ours, theirs in (
            ("total_minor", "total"),
            ("amount_paid_minor", "amount_paid"),
            ("amount_remaining_minor", "amount_remaining"),
        ):
            if isinstance(data.get(theirs), int):
                setattr(invoice, ours, data[theirs])
        for name, value in extra.items():
            setattr(invoice, name, value)
        invoice._change_reason = reason
        invoice.save()
        return invoice


def _mark_attempt(model, pk: int, now: datetime) -> datetime | None:
    """Record that a create is about to be asked of Stripe (a customer's or an
    invoice's, with a history row: the mark decides whether a later run searches
    Stripe before creating again); returns the previous mark."""
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=pk)
        previous = row.stripe_create_attempted_at
        if previous is None:
            row.stripe_create_attempted_at = now
            row._change_reason = "creating it in Stripe"
            row.save(update_fields=["stripe_create_attempted_at"])
    return previous


def _find_or_create(model, pk: int, now: datetime, *, search, create) -> dict:
    """Stripe's object for our row `model` #pk, created once: marks the attempt, and
    when an earlier attempt is older than Stripe's idempotency window, first looks for
    what it may have created (by the `fsar_<model>_id` metadata) before `create()`."""
    previous = _mark_attempt(model, pk, now)
    if previous is not None and now - previous > IDEMPOTENCY_WINDOW:
        matches = search(query=f"metadata['fsar_{model._meta.model_name}_id']:'{pk}'")
        if matches:
            return matches[0]
    return create()


def _ensure_stripe_customer(client: StripeClient, customer_id: int, now: datetime) -> str:
    customer = Customer.objects.get(pk=customer_id)
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    params = {
        "name": customer.name,
        "metadata": {"fsar_customer_id": str(customer.pk), "customer_ref": customer.customer_ref},
    }
    if customer.email:
        params["email"] = customer.email
    data = _find_or_create(
        Customer,
        customer.pk,
        now,
        search=client.customer_search,
        create=lambda: client.customer_create(params=params, idempotency_key=f"fsar-customer-{customer.pk}"),
    )
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if not customer.stripe_customer_id:
            customer.stripe_customer_id = data["id"]
            customer._change_reason = "created in Stripe"
            customer.save()
    return customer.stripe_customer_id


def _ensure_stripe_invoice(client: StripeClient, invoice: Invoice, stripe_customer_id: str, now: datetime) -> str:
    if invoice.stripe_invoice_id:
        return invoice.stripe_invoice_id
    params = {
        "customer": stripe_customer_id,
        "currency": invoice.currency,
        "collection_method": invoice.customer.collection_method,
        "auto_advance": False,
        # Stripe adds a customer's pending items to a new invoice unless told not to;
        # ours are attached explicitly with `invoice=`.
        "pending_invoice_items_behavior": "exclude",
        "description": f"FSAR usage, {invoice.period}",
        "metadata": {"fsar_invoice_id": str(invoice.pk), "period": invoice.period},
    }
    if invoice.customer.collection_method == Customer.Collection.SEND:
        params["days_until_due"] = settings.BILLING_DAYS_UNTIL_DUE
    data = _find_or_create(
        Invoice,
        invoice.pk,
        now,
        search=client.invoice_search,
        create=lambda: client.invoice_create(params=params, idempotency_key=f"fsar-invoice-{invoice.pk}"),
    )
    _apply_stripe_invoice(invoice.pk, data, reason="created in Stripe", stripe_invoice_id=data["id"])
    return data["id"]


def _ensure_stripe_items(client: StripeClient, invoice: Invoice, stripe_customer_id: str, now: datetime) -> None:
    lines = list(invoice.lines.filter(stripe_invoice_item_id__isnull=True))
    if not lines:
        return
    already: dict[str, str] = {}
    attempted = invoice.stripe_create_attempted_at
    if attempted is not None and now - attempted > IDEMPOTENCY_WINDOW:
        # Resuming after Stripe forgot our keys: adopt items a crashed run created.
        for item in client.invoice_items_list(invoice_id=invoice.stripe_invoice_id):
            line_id = (item.get("metadata") or {}).get("fsar_invoice_line_id")
            if line_id:
                already[line_id] = item["id"]
    for line in lines:
        item_id = already.get(str(line.pk))
        if item_id is None:
            item = client.invoice_item_create(
                params={
                    "customer": stripe_customer_id,
                    "invoice": invoice.stripe_invoice_id,
                    "amount": line.amount_minor,
                    "currency": invoice.currency,
                    "description": line.description,
                    "metadata": {"fsar_invoice_line_id": str(line.pk), "fsar_invoice_id": str(invoice.pk)},
                },
                idempotency_key=f"fsar-invoice-line-{line.pk}",
            )
            item_id = item["id"]
        InvoiceLine.objects.filter(pk=line.pk, stripe_invoice_item_id__isnull=True).update(
            stripe_invoice_item_id=item_id
        )


def invoice_push(*, invoice_id: int, client: StripeClient | None = None, now: datetime | None = None) -> Invoice:
    """Create the invoice in Stripe with its items, finalize it, then charge the
    default payment method or send it. Each step is skipped when our records
    show it done, so calling this again resumes an interrupted push.

    Raises StripeNotConfigured without keys, StripeFailed with Stripe's reason,
    BillingError when another run holds the invoice."""
    client = client or StripeClient()
    now = now or timezone.now()
    if not _take_lease(invoice_id, now):
        raise BillingError("another invoice run is sending this invoice to Stripe right now; retry in a few minutes")
    try:
        invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
        if invoice.status in states.CLOSED or invoice.collected_at:
            return invoice
        stripe_customer_id = _ensure_stripe_customer(client, invoice.customer_id, now)
        _ensure_stripe_invoice(client, invoice, stripe_customer_id, now)
        invoice.refresh_from_db()
        _ensure_stripe_items(client, invoice, stripe_customer_id, now)
        if invoice.finalized_at is None:
            data = client.invoice_finalize(
                invoice.stripe_invoice_id, idempotency_key=f"fsar-invoice-{invoice.pk}-final"
            )
            invoice = _apply_stripe_invoice(invoice.pk, data, reason="finalized in Stripe", finalized_at=now)
        if invoice.collected_at is None and invoice.status == InvoiceStatus.OPEN:
            invoice = _collect(client, invoice, now)
        return invoice
    finally:
        # The lease only (excluded from history, see _take_lease): update() skips no history.
        Invoice.objects.filter(pk=invoice_id).update(push_lease_until=None)


def _collect(client: StripeClient, invoice: Invoice, now: datetime) -> Invoice:
    """Charge or send. A declined charge leaves the invoice open for the customer
    to pay on Stripe's page; it is recorded, not retried here."""
    try:
        if invoice.customer.collection_method == Customer.Collection.SEND:
            data = client.invoice_send(invoice.stripe_invoice_id, idempotency_key=f"fsar-invoice-{invoice.pk}-send")
            return _apply_stripe_invoice(invoice.pk, data, reason="sent by Stripe", collected_at=now)
        data = client.invoice_pay(invoice.stripe_invoice_id, idempotency_key=f"fsar-invoice-{invoice.pk}-pay")
        return _apply_stripe_invoice(invoice.pk, data, reason="charged", collected_at=now, collection_error="")
    except BillingError as exc:
        if invoice.customer.collection_method == Customer.Collection.SEND:
            raise
        return _apply_stripe_invoice(
            invoice.pk, {}, reason="charge failed", collected_at=now, collection_error=exc.message
        )


# Billing portal


def portal_url(*, customer_id: int, return_url: str, client: StripeClient | None = None) -> str:
    """A Stripe billing-portal session for managing payment methods."""
    client = client or StripeClient()
    stripe_customer_id = _ensure_stripe_customer(client, customer_id, timezone.now())
    url = client.portal_session_create(customer_id=stripe_customer_id, return_url=return_url)["url"]
    if not stripe_link(url):
        logger.error("Stripe's billing portal answered with an address not on Stripe's hosts: %r", url)
        raise BillingError("Stripe answered with an unexpected address for the billing portal; it was not opened.")
    return url
