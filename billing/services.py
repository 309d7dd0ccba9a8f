"""Every billing state change: rating usage, preparing invoices, pushing them to
Stripe, and invoice runs.

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
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing import money
from billing.links import stripe_link
from billing.models import (
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceRunItem,
    InvoiceStatus,
    OfferingTaskType,
    ServiceOffering,
    UsageRecord,
)
from billing.stripe_client import BillingError, StripeClient
from tasks.models import ExecutionTask, TaskSource, TaskStatus, TaskType

logger = logging.getLogger(__name__)

# Stripe keeps idempotency keys for 24 hours; past this, look before creating again.
IDEMPOTENCY_WINDOW = timedelta(hours=23)
PUSH_LEASE = timedelta(minutes=10)
FINAL_STATUSES = (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)


# Customers and offerings


@transaction.atomic
def customer_create(
    *,
    customer_ref: str,
    name: str,
    email: str = "",
    users=(),
    collection_method: str = Customer.Collection.CHARGE,
    by=None,
    reason: str = "",
) -> Customer:
    if Customer.objects.filter(customer_ref=customer_ref).exists():
        raise BillingError(f"customer_ref {customer_ref!r} already belongs to a customer")
    customer = Customer(customer_ref=customer_ref, name=name, email=email, collection_method=collection_method)
    customer._history_user = by
    customer._change_reason = f"created: {reason.strip()}" if reason.strip() else "created"
    customer.save()
    if users:
        customer.users.set(users)
    return customer


@transaction.atomic
def customer_change(
    *, customer_id: int, name: str, email: str, collection_method: str, users, by, reason: str
) -> Customer:
    """Change a customer's name, billing email, how invoices are collected, and who
    may see its billing. The `customer_ref` stays: tasks name the customer by it.
    History records the user and the reason (required; it also lists people given or
    taken access, which the history's columns do not show); a change that changes
    nothing is refused."""
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("changing a customer needs a reason")
    if collection_method not in Customer.Collection.values:
        raise BillingError(f"collection_method must be one of {', '.join(Customer.Collection.values)}")
    customer = Customer.objects.select_for_update().get(pk=customer_id)
    changed = [
        field
        for field, value in (("name", name), ("email", email), ("collection_method", collection_method))
        if getattr(customer, field) != value
    ]
    before = {u.pk: u.get_username() for u in customer.users.all()}
    after = {u.pk: u.get_username() for u in users}
    access = [f"+{after[pk]}" for pk in sorted(set(after) - set(before))]
    access += [f"-{before[pk]}" for pk in sorted(set(before) - set(after))]
    if access:
        changed.append(f"users ({' '.join(access)})")
    if not changed:
        raise BillingError("nothing changed")
    customer.name, customer.email, customer.collection_method = name, email, collection_method
    customer._history_user = by
    customer._change_reason = f"changed {', '.join(changed)}: {reason}"
    customer.save()
    if access:
        customer.users.set(list(users))
    return customer


@transaction.atomic
def offering_create(
    *,
    name: str,
    unit: str,
    unit_price_micros: int,
    task_types: list[str],
    active: bool = True,
    by=None,
    reason: str = "",
) -> ServiceOffering:
    """A new offering covering `task_types`; a task type already covered by
    another offering is refused (each finished task must have one price)."""
    if unit not in ServiceOffering.Unit.values:
        raise BillingError(f"unit must be one of {', '.join(ServiceOffering.Unit.values)}")
    _check_price(unit_price_micros)
    if ServiceOffering.objects.filter(name=name).exists():
        raise BillingError(f"an offering named {name!r} already exists")
    _check_uncovered(task_types)
    offering = ServiceOffering(name=name, unit=unit, unit_price_micros=unit_price_micros, active=active)
    offering._history_user = by
    offering._change_reason = f"created: {reason.strip()}" if reason.strip() else "created"
    offering.save()
    for task_type in task_types:
        _cover(offering, task_type, by=by)
    return offering


@transaction.atomic
def offering_change(
    *,
    offering_id: int,
    name: str,
    unit_price_micros: int,
    active: bool,
    task_types: list[str],
    by,
    reason: str,
) -> ServiceOffering:
    """Change an offering: its name, price, whether it is active and the task types it
    covers (each still at most one offering's). Usage already rated keeps the price it
    was rated at; the new price applies to tasks finished from now on. The offering's
    history (and its covered task types') records the user and the reason, which is
    required; a change that changes nothing is refused. The unit does not change: a
    different unit is a new offering."""
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("changing an offering needs a reason")
    _check_price(unit_price_micros)
    offering = ServiceOffering.objects.select_for_update().get(pk=offering_id)
    if ServiceOffering.objects.filter(name=name).exclude(pk=offering.pk).exists():
        raise BillingError(f"an offering named {name!r} already exists")
    covered = {t.task_type: t for t in offering.task_types.select_for_update()}
    wanted = set(task_types)
    diff = {
        field: [getattr(offering, field), value]
        for field, value in (("name", name), ("unit_price_micros", unit_price_micros), ("active", active))
        if getattr(offering, field) != value
    }
    if wanted != set(covered):
        diff["task_types"] = [sorted(covered), sorted(wanted)]
    if not diff:
        raise BillingError("nothing changed")
    _check_uncovered(sorted(wanted - set(covered)))
    why = f"changed {', '.join(diff)}: {reason}"
    for task_type in sorted(set(covered) - wanted):
        row = covered[task_type]
        row._history_user = by
        row._change_reason = why
        row.delete()
    for task_type in sorted(wanted - set(covered)):
        _cover(offering, task_type, by=by, reason=why)
    offering.name, offering.unit_price_micros, offering.active = name, unit_price_micros, active
    offering._history_user = by
    offering._change_reason = why
    offering.save()
    return offering


def _check_price(unit_price_micros) -> None:
    if not isinstance(unit_price_micros, int) or isinstance(unit_price_micros, bool) or unit_price_micros < 0:
        raise BillingError("unit_price_micros must be a whole number of micro-units, at least 0")


def _check_uncovered(task_types: list[str]) -> None:
    unknown = sorted(set(task_types) - set(TaskType.values))
    if unknown:
        raise BillingError(f"unknown task type(s): {', '.join(unknown)}")
    taken = sorted(
        OfferingTaskType.objects.select_for_update()
        .filter(task_type__in=task_types)
        .values_list("task_type", flat=True)
    )
    if taken:
        raise BillingError(f"already covered by another offering: {', '.join(taken)}")


def _cover(offering: ServiceOffering, task_type: str, *, by, reason: str = "created") -> None:
    row = OfferingTaskType(offering=offering, task_type=task_type)
    row._history_user = by
    row._change_reason = reason
    row.save()


# Rating


def is_billable(task: ExecutionTask) -> bool:
    """Succeeded tasks registered through the API with a customer; backfilled and
    legacy history is never billed."""
    return task.status == TaskStatus.SUCCEEDED and task.source == TaskSource.API and bool(task.customer_ref)


def usage_record_for_task(*, task: ExecutionTask) -> UsageRecord | None:
    """Rate a finished task into a UsageRecord, once: a second call returns the
    first record. Returns None for tasks that are not billable, whose customer
    is unknown, or whose task type no active offering covers. Runs inside the
    caller's transaction (the task_finished signal), under a savepoint."""
    if not is_billable(task):
        return None
    existing = UsageRecord.objects.filter(task_id=task.pk).first()
    if existing is not None:
        return existing
    customer = Customer.objects.filter(customer_ref=task.customer_ref).first()
    coverage = (
        OfferingTaskType.objects.select_related("offering")
        .filter(task_type=task.task_type, offering__active=True)
        .first()
    )
    if customer is None or coverage is None:
        return None
    offering = coverage.offering
    quantity = 1 if offering.unit == ServiceOffering.Unit.TASK else (task.tokens or 0)
    record = UsageRecord(
        task=task,
        customer=customer,
        offering=offering,
        unit=offering.unit,
        quantity=quantity,
        unit_price_micros=offering.unit_price_micros,
        amount_micros=money.rate(unit=offering.unit, unit_price_micros=offering.unit_price_micros, quantity=quantity),
        cost_micros=task.cost_micros or 0,
        occurred_at=task.finished_at or timezone.now(),
    )
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        return UsageRecord.objects.get(task_id=task.pk)
    return record


# Invoices


def invoice_prepare(*, customer_id: int, period: str, now: datetime | None = None) -> Invoice | None:
    """The customer's invoice for `period`, created from its unbilled usage up to
    the period's end (one line per offering), or the one made earlier. Usage that
    arrives after its period was invoiced goes on the next period's invoice.
    Returns None when there is no invoice and nothing to bill."""
    _, end = money.parse_period(period)
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        invoice = Invoice.objects.filter(customer=customer, period=period).first()
        if invoice is not None:
            return invoice
        records = list(
            UsageRecord.objects.select_for_update()
            .filter(customer=customer, invoice_line__isnull=True, occurred_at__lt=end)
            .select_related("offering")
            .order_by("offering_id", "id")
        )
        if not records:
            return None
        code = money.currency()
        invoice = Invoice(customer=customer, period=period, currency=code, created_at=now or timezone.now())
        invoice._change_reason = f"prepared from {len(records)} usage record(s)"
        invoice.save()
        by_offering: dict[int, list[UsageRecord]] = defaultdict(list)
        for record in records:
            by_offering[record.offering_id].append(record)
        total = 0
        for offering_records in by_offering.values():
            offering = offering_records[0].offering
            micros = sum(r.amount_micros for r in offering_records)
            quantity = sum(r.quantity for r in offering_records)
            unit = "tasks" if offering.unit == ServiceOffering.Unit.TASK else "tokens"
            line = InvoiceLine.objects.create(
                invoice=invoice,
                offering=offering,
                description=f"{offering.name}, {period}: {quantity:,} {unit}",
                quantity=quantity,
                tasks=len(offering_records),
                amount_micros=micros,
                amount_minor=money.micros_to_minor(micros, code),
            )
            UsageRecord.objects.filter(pk__in=[r.pk for r in offering_records]).update(invoice_line=line)
            total += line.amount_minor
        invoice.total_minor = total
        invoice.amount_remaining_minor = total
        invoice._change_reason = "lines added"
        invoice.save(update_fields=["total_minor", "amount_remaining_minor"])
        return invoice


def _take_lease(invoice_id: int, now: datetime) -> bool:
    # An update(), not a save: a compare-and-set in one statement, and the lease is a
    # lock between invoice runs, not the invoice's state (push_lease_until is excluded
    # from the invoice's history), so no history row is skipped.
    return bool(
        Invoice.objects.filter(pk=invoice_id)
        .filter(Q(push_lease_until__isnull=True) | Q(push_lease_until__lt=now))
        .update(push_lease_until=now + PUSH_LEASE)
    )


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _apply_stripe_invoice(invoice_id: int, data: dict, *, reason: str, **extra) -> Invoice:
    """Copy Stripe's view of an invoice onto ours, in one transaction."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if data.get("status") in InvoiceStatus.values and invoice.status not in FINAL_STATUSES:
            invoice.status = data["status"]
        invoice.number = data.get("number") or invoice.number
        invoice.hosted_invoice_url = data.get("hosted_invoice_url") or invoice.hosted_invoice_url
        invoice.invoice_pdf = data.get("invoice_pdf") or invoice.invoice_pdf
        invoice.due_date = _ts(data.get("due_date")) or invoice.due_date
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


def _ensure_stripe_customer(client: StripeClient, customer_id: int, now: datetime) -> str:
    customer = Customer.objects.get(pk=customer_id)
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    previous = _mark_attempt(Customer, customer.pk, now)
    found = None
    if previous is not None and now - previous > IDEMPOTENCY_WINDOW:
        matches = client.customer_search(query=f"metadata['fsar_customer_id']:'{customer.pk}'")
        found = matches[0] if matches else None
    params = {
        "name": customer.name,
        "metadata": {"fsar_customer_id": str(customer.pk), "customer_ref": customer.customer_ref},
    }
    if customer.email:
        params["email"] = customer.email
    data = found or client.customer_create(params=params, idempotency_key=f"fsar-customer-{customer.pk}")
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
    previous = _mark_attempt(Invoice, invoice.pk, now)
    found = None
    if previous is not None and now - previous > IDEMPOTENCY_WINDOW:
        matches = client.invoice_search(query=f"metadata['fsar_invoice_id']:'{invoice.pk}'")
        found = matches[0] if matches else None
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
    data = found or client.invoice_create(params=params, idempotency_key=f"fsar-invoice-{invoice.pk}")
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
        if invoice.status in FINAL_STATUSES or invoice.collected_at:
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


# Invoice runs


def customers_to_invoice(period: str) -> list[int]:
    """Customers with unbilled usage before the period's end, and customers whose
    invoice for the period has not finished its way through Stripe."""
    _, end = money.parse_period(period)
    with_usage = set(
        UsageRecord.objects.filter(invoice_line__isnull=True, occurred_at__lt=end)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    unfinished = set(
        Invoice.objects.filter(period=period, collected_at__isnull=True)
        .exclude(status__in=FINAL_STATUSES)
        .values_list("customer_id", flat=True)
    )
    return sorted(with_usage | unfinished)


@transaction.atomic
def invoice_run_start(*, period: str, by=None, now: datetime | None = None) -> InvoiceRun:
    """Open a run for `period` with one pending item per customer to invoice;
    `invoice_run_process` does the work (the command runs it at once, the web
    page on a worker)."""
    money.parse_period(period)
    _, end = money.parse_period(period)
    now = now or timezone.now()
    if end > now:
        raise BillingError(f"period {period} has not ended yet; it can be invoiced from {end:%Y-%m-%d}")
    run = InvoiceRun(period=period, started_by=by, started_at=now)
    run._history_user = by
    run._change_reason = "started"
    run.save()
    InvoiceRunItem.objects.bulk_create(
        [InvoiceRunItem(run=run, customer_id=cid, updated_at=now) for cid in customers_to_invoice(period)]
    )
    return run


def invoice_run_process(*, run_id: int, client: StripeClient | None = None) -> InvoiceRun:
    """Invoice every pending item of a run; failures are recorded per customer with
    the reason, and the run goes on. Safe to run twice: done items are skipped and
    each invoice resumes from what our records show."""
    item_ids = list(
        InvoiceRunItem.objects.filter(run_id=run_id, status=InvoiceRunItem.Status.PENDING).values_list("pk", flat=True)
    )
    run = InvoiceRun.objects.get(pk=run_id)
    for item_id in item_ids:
        _process_item(item_id, run.period, client)
    return _finish_run(run_id)


def _process_item(item_id: int, period: str, client: StripeClient | None) -> None:
    item = InvoiceRunItem.objects.get(pk=item_id)
    invoice = None
    error = ""
    try:
        invoice = invoice_prepare(customer_id=item.customer_id, period=period)
        if invoice is not None:
            invoice = invoice_push(invoice_id=invoice.pk, client=client)
            error = invoice.collection_error
    except BillingError as exc:
        error = exc.message
        failed = True
    except Exception as exc:  # one customer's surprise must not stop the run
        logger.exception("Invoice run item %s failed", item_id)
        error = f"unexpected error: {exc!r}"
        failed = True
    else:
        failed = False
    InvoiceRunItem.objects.filter(pk=item_id).update(
        invoice=invoice,
        status=InvoiceRunItem.Status.FAILED if failed else InvoiceRunItem.Status.DONE,
        error=error,
        attempts=item.attempts + 1,
        updated_at=timezone.now(),
    )


@transaction.atomic
def _finish_run(run_id: int) -> InvoiceRun:
    run = InvoiceRun.objects.select_for_update().get(pk=run_id)
    items = run.items.all()
    if items.filter(status=InvoiceRunItem.Status.PENDING).exists():
        return run
    run.status = (
        InvoiceRun.Status.FAILED
        if items.filter(status=InvoiceRunItem.Status.FAILED).exists()
        else InvoiceRun.Status.SUCCEEDED
    )
    run.finished_at = timezone.now()
    run._change_reason = f"finished: {run.status}"
    run.save()
    return run


@transaction.atomic
def invoice_run_retry(*, run_id: int, by=None) -> InvoiceRun:
    """Put a run's failed customers back to pending; process the run afterwards."""
    run = InvoiceRun.objects.select_for_update().get(pk=run_id)
    retried = run.items.filter(status=InvoiceRunItem.Status.FAILED).update(status=InvoiceRunItem.Status.PENDING)
    if not retried:
        raise BillingError("this run has no failed customers to retry")
    run.status = InvoiceRun.Status.RUNNING
    run.finished_at = None
    run._history_user = by
    run._change_reason = f"retry of {retried} failed customer(s)"
    run.save()
    return run


def invoice_run(*, period: str, by=None, client: StripeClient | None = None) -> InvoiceRun:
    """Start and process a run at once (the management command)."""
    run = invoice_run_start(period=period, by=by)
    return invoice_run_process(run_id=run.pk, client=client)


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
