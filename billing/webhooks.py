"""Stripe webhooks: verify, store, then process in a job.

Delivery is at least once and unordered, and `created` has one-second
resolution, so nothing here trusts arrival order: an invoice only ever moves
forward along Stripe's state machine, through the one function that moves an
invoice's state (billing/states.py, also used by the push to Stripe), under
the invoice's row lock, and payments and refunds are upserts keyed by Stripe ids.
An event's effects and its processed status commit in one transaction.
"""

from __future__ import annotations

import functools
import json
import logging

import stripe
from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from billing import states
from billing.models import Customer, Invoice, InvoiceStatus, Payment, StripeEvent
from core.history import save_with_history
from core.jobs import enqueue_on_commit
from core.jsonwalk import LONE_SURROGATE_MESSAGE, SURROGATE_ESCAPE, json_keys_and_scalars, lone_surrogate_path
from core.sql import insert_sql, insert_values, mark_saved

logger = logging.getLogger(__name__)

EVENT_STATUS = {
    "invoice.created": InvoiceStatus.DRAFT,
    "invoice.finalized": InvoiceStatus.OPEN,
    "invoice.paid": InvoiceStatus.PAID,
    "invoice.payment_succeeded": InvoiceStatus.PAID,
    "invoice.voided": InvoiceStatus.VOID,
    "invoice.marked_uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}


class WebhookRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Intake


def receive(*, body: bytes, signature: str | None) -> tuple[StripeEvent, bool]:
    """Verify the signature on the raw body and store the event once under its
    Stripe id. Returns (event, created); a duplicate delivery returns created=False.
    Raises WebhookRefused (nothing stored) for a bad signature or body, or when no
    webhook secret is configured."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookRefused(
            503, "Stripe webhooks are not configured (set STRIPE_WEBHOOK_SECRET); the event was not stored."
        )
    try:
        stripe.WebhookSignature.verify_header(body, signature, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRefused(400, f"Stripe-Signature: {exc.user_message or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WebhookRefused(400, "body: not UTF-8") from exc
    try:
        data = json.loads(body)
        stripe_id, kind, created = data["id"], data["type"], data["created"]
        if not (isinstance(stripe_id, str) and isinstance(kind, str) and type(created) is int):
            raise TypeError
        data["data"]["object"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise WebhookRefused(400, "body: not a Stripe event (id, type, created, data.object)") from exc
    _check_event_fits(data, has_nul_escape=b"u0000" in body, may_hold_surrogates=SURROGATE_ESCAPE.search(body))
    event = StripeEvent(
        stripe_id=stripe_id,
        type=kind,
        api_version=str(data.get("api_version") or ""),
        created=created,
        livemode=bool(data.get("livemode")),
        payload=data,
    )
    if _insert_once(event):
        return event, True
    return StripeEvent.objects.get(stripe_id=stripe_id), False


def _insert_once(event: StripeEvent) -> bool:
    """Store a new event: one INSERT … ON CONFLICT (stripe_id) DO NOTHING, atomic by
    itself and needing no savepoint for a duplicate. False when the id was there."""
    connection = connections[router.db_for_write(StripeEvent)]
    qn = connection.ops.quote_name
    suffix = f" ON CONFLICT ({qn('stripe_id')}) DO NOTHING RETURNING {qn('id')}"
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(StripeEvent, connection, suffix), insert_values(event, connection))
        row = cursor.fetchone()
    if row is None:
        return False
    mark_saved(event, row[0], connection)
    return True


def _check_event_fits(data: dict, *, has_nul_escape: bool = True, may_hold_surrogates=True) -> None:
    """Refuse (400, naming the field) what the columns cannot hold, instead of a
    database error: over-long ids, a `created` beyond bigint, NUL characters, lone
    surrogates (only looked for when the body has such an escape: Stripe never sends one)."""
    limits = {"id": 100, "type": 100, "api_version": 50}
    for name, limit in limits.items():
        if len(str(data.get(name) or "")) > limit:
            raise WebhookRefused(400, f"{name}: longer than {limit} characters")
    if not 0 <= data["created"] < 2**63:
        raise WebhookRefused(400, "created: not a Unix time in seconds")
    # PostgreSQL refuses NUL in text and \u0000 in jsonb; Stripe never sends either.
    # A raw NUL cannot stand in valid JSON, so without the escape there is nothing to find.
    if has_nul_escape and any(isinstance(v, str) and "\x00" in v for v in json_keys_and_scalars(data)):
        raise WebhookRefused(400, "body: contains a NUL (\\u0000) character")
    if may_hold_surrogates and (where := lone_surrogate_path(data)) is not None:
        raise WebhookRefused(400, f"{where}: {LONE_SURROGATE_MESSAGE}")


# Processing

# Set while a drain job is queued or running, so that intake enqueues one job for
# a burst of events instead of one per event (each RQ job forks a work horse).
DRAIN_KEY = "billing:stripe-events:drain-scheduled"
DRAIN_KEY_TTL = 300  # a drain that died frees the key; the periodic drain covers the gap
DRAIN_BATCH = 200


@functools.cache
def _jobs_redis():
    """The jobs' Redis (fakeredis without REDIS_URL), where the drain flag lives beside
    the queue it guards. One client per process, so that its pool reuses connections
    (django_rq.get_connection builds a new client and pool on every call)."""
    import django_rq

    return django_rq.get_connection("default")


def drain_flag_take() -> bool:
    """Set the "drain scheduled" flag; False when it was already set."""
    return bool(_jobs_redis().set(DRAIN_KEY, 1, nx=True, ex=DRAIN_KEY_TTL))


def drain_flag_free() -> None:
    _jobs_redis().delete(DRAIN_KEY)


def schedule_drain() -> bool:
    """Enqueue a drain job unless one is already queued or running. Redis down: the
    event is stored all the same and the periodic drain (stripe_events_drain, every
    minute once Redis is back) applies it; intake never depends on Redis."""
    try:
        if not drain_flag_take():
            return False
    except (RedisConnectionError, RedisTimeoutError) as exc:
        logger.error("Redis unavailable: no drain scheduled; the periodic drain will apply the event (%s)", exc)
        return False
    enqueue_on_commit("billing.jobs.stripe_events_drain")
    return True


def drain_pending() -> int:
    """Process pending events in arrival order until none are left; several
    workers may drain at once (rows are claimed with SKIP LOCKED). Returns how
    many this call processed. Failed events stay failed for `stripe_replay`."""
    processed = 0
    while True:
        ids = list(
            StripeEvent.objects.filter(status=StripeEvent.Status.PENDING)
            .order_by("id")
            .values_list("pk", flat=True)[:DRAIN_BATCH]
        )
        if not ids:
            # Free the key, then look once more: an event stored in between either
            # scheduled a new drain (the key was free) or is seen here.
            drain_flag_free()
            if not StripeEvent.objects.filter(status=StripeEvent.Status.PENDING).exists():
                return processed
            if not drain_flag_take():
                return processed  # another drain has it
            continue
        # One short transaction per event. (Committing a batch at once was tried: a
        # re-delivery of an event in an open batch then waits at intake on the
        # unique index until the batch commits, hundreds of milliseconds.)
        for pk in ids:
            processed += event_process(event_id=pk, skip_locked=True) is not None


def event_process(*, event_id: int, skip_locked: bool = False) -> StripeEvent | None:
    """Apply a stored event. Its effects and its status commit together; a failure
    rolls the effects back and records the error (replay with `stripe_replay`).
    Processing a processed event again does nothing. With skip_locked, an event
    another worker is processing right now is skipped (returns None)."""
    try:
        with transaction.atomic():
            event = StripeEvent.objects.select_for_update(skip_locked=skip_locked).filter(pk=event_id).first()
            if event is None:
                if skip_locked:
                    return None
                raise StripeEvent.DoesNotExist(f"No stored Stripe event with id {event_id}.")
            if event.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
                return event
            handler = HANDLERS.get(event.type)
            if handler is None:
                event.status, event.result = StripeEvent.Status.IGNORED, "stored and acknowledged; no handler"
            else:
                event.status = StripeEvent.Status.PROCESSED
                event.result = handler(event, event.payload["data"]["object"])
            event.error = ""
            event.attempts += 1
            event.processed_at = timezone.now()
            event.save()
            return event
    except Exception as exc:
        logger.exception("Stripe event %s failed", event_id)
        StripeEvent.objects.filter(pk=event_id).update(
            status=StripeEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}", attempts=F("attempts") + 1
        )
        return StripeEvent.objects.get(pk=event_id)


def _invoice_for(stripe_invoice_id: str | None, metadata: dict | None = None) -> Invoice | None:
    qs = Invoice.objects.select_for_update()
    if stripe_invoice_id:
        found = qs.filter(stripe_invoice_id=stripe_invoice_id).first()
        if found is not None:
            return found
    local_id = (metadata or {}).get("fsar_invoice_id")
    if local_id and str(local_id).isdigit():
        return qs.filter(pk=int(local_id)).first()
    return None


def _ref(value) -> str | None:
    """An id from a field that may be an id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _payment_intent_of(obj: dict) -> str | None:
    """The invoice's payment intent: `payments` (API 2025-03-31 on) or `payment_intent` (older)."""
    for item in ((obj.get("payments") or {}).get("data")) or []:
        payment = item.get("payment") or {}
        if _ref(payment.get("payment_intent")):
            return _ref(payment.get("payment_intent"))
    return _ref(obj.get("payment_intent"))


def handle_invoice(event: StripeEvent, obj: dict) -> str:
    invoice = _invoice_for(obj.get("id"), obj.get("metadata"))
    if invoice is None:
        return "ignored: not an FSAR invoice"
    target = EVENT_STATUS.get(event.type) or obj.get("status")
    if event.type == "invoice.payment_succeeded" and obj.get("paid") is False:
        target = obj.get("status")
    notes = apply_invoice_state(
        invoice,
        obj,
        target=target,
        created=event.created,
        payment_failed=event.type == "invoice.payment_failed",
        source=f"Stripe {event.type} ({event.stripe_id})",
    )
    return "; ".join(notes) or "no change"


def apply_invoice_state(
    invoice: Invoice, obj: dict, *, target: str | None, created: int, source: str, payment_failed: bool = False
) -> list[str]:
    """Move a locked invoice towards `target` if Stripe's state machine allows it,
    copy amounts when this is the newest word on its state, record a payment when
    paid. Returns what changed, for the event's result or a reconciliation report."""
    before = invoice.status
    newer = invoice.stripe_event_created is None or created >= invoice.stripe_event_created
    notes = []
    moved = states.move(invoice, target)
    if moved:
        notes.append(moved)
    elif target and target != before:
        notes.append(f"stale: stays {before} (Stripe says {target})")
    if moved or (target == before and newer):
        for ours, theirs in (
            ("total_minor", "total"),
            ("amount_paid_minor", "amount_paid"),
            ("amount_remaining_minor", "amount_remaining"),
        ):
            if isinstance(obj.get(theirs), int):
                setattr(invoice, ours, obj[theirs])
        invoice.stripe_event_created = max(invoice.stripe_event_created or 0, created)
    invoice.stripe_invoice_id = invoice.stripe_invoice_id or obj.get("id")
    invoice.number = invoice.number or obj.get("number") or ""
    invoice.hosted_invoice_url = invoice.hosted_invoice_url or obj.get("hosted_invoice_url") or ""
    invoice.invoice_pdf = invoice.invoice_pdf or obj.get("invoice_pdf") or ""
    invoice.due_date = invoice.due_date or states.stripe_time(obj.get("due_date"))
    if payment_failed and invoice.status == InvoiceStatus.OPEN:
        invoice.collection_error = f"payment failed ({source})"
        notes.append("payment failed")
    save_with_history(invoice, reason=source + (f": {notes[0]}" if notes else ""))
    paid = target == InvoiceStatus.PAID and invoice.status == InvoiceStatus.PAID
    if paid and isinstance(obj.get("amount_paid"), int):
        payment_id = _payment_intent_of(obj) or f"{obj.get('id')}:paid"
        _upsert_payment(invoice, payment_id, Payment.Kind.PAYMENT, obj["amount_paid"], "succeeded")
        notes.append(f"payment {payment_id}")
    return notes


def _upsert_payment(invoice: Invoice, stripe_id: str, kind: str, amount: int, status: str) -> Payment:
    payment = Payment.objects.select_for_update().filter(stripe_id=stripe_id).first()
    if payment is None:
        payment = Payment(invoice=invoice, stripe_id=stripe_id, kind=kind, amount_minor=amount, status=status)
    else:
        if payment.status == "succeeded" and status != "succeeded":
            return payment  # a late failure never undoes a success
        # Refunds only grow: a stale charge.refunded carries a smaller amount.
        payment.amount_minor = max(payment.amount_minor, amount) if kind == Payment.Kind.REFUND else amount
        payment.status = status
    save_with_history(payment, reason=f"{kind} {status}")
    return payment


def _invoice_for_payment_intent(pi_id: str | None, old_invoice_ref=None) -> Invoice | None:
    invoice = _invoice_for(_ref(old_invoice_ref)) if old_invoice_ref else None
    if invoice is None and pi_id:
        payment = Payment.objects.filter(stripe_id=pi_id).select_related("invoice").first()
        if payment is not None:
            invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
    return invoice


def handle_payment_intent(event: StripeEvent, obj: dict) -> str:
    invoice = _invoice_for_payment_intent(obj.get("id"), obj.get("invoice"))
    if invoice is None:
        return "ignored: no FSAR invoice for this payment"
    if event.type == "payment_intent.succeeded":
        amount = obj.get("amount_received") or obj.get("amount") or 0
        _upsert_payment(invoice, obj["id"], Payment.Kind.PAYMENT, amount, "succeeded")
        return f"payment {obj['id']} succeeded"
    message = ((obj.get("last_payment_error") or {}).get("message")) or "the payment failed"
    _upsert_payment(invoice, obj["id"], Payment.Kind.PAYMENT, obj.get("amount") or 0, "failed")
    if invoice.status == InvoiceStatus.OPEN:
        invoice.collection_error = message
        save_with_history(invoice, reason=f"Stripe {event.type} ({event.stripe_id})")
    return f"payment {obj['id']} failed: {message}"


def handle_charge_refunded(event: StripeEvent, obj: dict) -> str:
    invoice = _invoice_for_payment_intent(_ref(obj.get("payment_intent")), obj.get("invoice"))
    if invoice is None:
        return "ignored: no FSAR invoice for this charge"
    refunded = obj.get("amount_refunded") or 0
    _upsert_payment(invoice, f"{obj['id']}:refunds", Payment.Kind.REFUND, refunded, "succeeded")
    return f"refunded {refunded} in total on {obj['id']}"


def handle_credit_note(event: StripeEvent, obj: dict) -> str:
    invoice = _invoice_for(_ref(obj.get("invoice")))
    if invoice is None:
        return "ignored: no FSAR invoice for this credit note"
    amount = obj.get("total") if isinstance(obj.get("total"), int) else obj.get("amount") or 0
    status = "void" if event.type == "credit_note.voided" or obj.get("status") == "void" else "issued"
    payment = Payment.objects.select_for_update().filter(stripe_id=obj["id"]).first()
    if payment is None:
        payment = Payment(invoice=invoice, stripe_id=obj["id"], kind=Payment.Kind.CREDIT_NOTE, amount_minor=amount)
    elif payment.status == "void":
        return "credit note already void"  # void is final: a late `created` never revives it
    payment.amount_minor = 0 if status == "void" else amount
    payment.status = status
    save_with_history(payment, reason=f"credit note {status} ({event.stripe_id})")
    return f"credit note {obj['id']} {status}: {payment.amount_minor}"


def handle_customer(event: StripeEvent, obj: dict) -> str:
    customer = Customer.objects.select_for_update().filter(stripe_customer_id=obj.get("id")).first()
    if customer is None:
        return "ignored: not an FSAR customer"
    if event.type == "customer.deleted":
        customer.stripe_customer_id = None
        customer.stripe_create_attempted_at = None
        save_with_history(customer, reason=f"deleted in Stripe ({event.stripe_id})")
        return "unlinked from the deleted Stripe customer"
    if obj.get("email") and obj["email"] != customer.email:
        customer.email = obj["email"]
        save_with_history(customer, reason=f"email changed in Stripe ({event.stripe_id})")
        return "email updated"
    return "no change"


HANDLERS = {
    **{kind: handle_invoice for kind in EVENT_STATUS},
    "invoice.payment_failed": handle_invoice,
    "invoice.updated": handle_invoice,
    "payment_intent.succeeded": handle_payment_intent,
    "payment_intent.payment_failed": handle_payment_intent,
    "charge.refunded": handle_charge_refunded,
    "credit_note.created": handle_credit_note,
    "credit_note.voided": handle_credit_note,
    "customer.updated": handle_customer,
    "customer.deleted": handle_customer,
}


# Reconciliation

UNSETTLED = (InvoiceStatus.DRAFT, InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)


def reconcile_invoices(*, client=None) -> list[str]:
    """Re-fetch every unsettled invoice that is in Stripe and apply what Stripe says
    now, to catch missed webhook deliveries. Returns the corrections made."""
    from billing.stripe_client import BillingError, StripeClient

    client = client or StripeClient()
    corrections = []
    ids = Invoice.objects.filter(status__in=UNSETTLED, stripe_invoice_id__isnull=False).values_list("pk", flat=True)
    for invoice_id in list(ids):
        stripe_id = Invoice.objects.filter(pk=invoice_id).values_list("stripe_invoice_id", flat=True).first()
        try:
            obj = client.invoice_retrieve(stripe_id)
        except BillingError as exc:
            corrections.append(f"{stripe_id}: could not fetch: {exc.message}")
            continue
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
            label = invoice.display_number
            notes = apply_invoice_state(
                invoice,
                obj,
                target=obj.get("status"),
                created=int(timezone.now().timestamp()),
                source="reconciliation with Stripe",
            )
        moved = [n for n in notes if "→" in n]
        if moved:
            corrections.append(f"{label} ({stripe_id}): {moved[0]}")
    return corrections
