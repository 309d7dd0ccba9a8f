"""Invoices from usage, and invoice runs: a period's invoicing, customer by
customer (prepare the invoice here, push it with `billing.stripe_push`),
resumable and retried per customer."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing import money, periods, states
from billing.models import Customer, Invoice, InvoiceLine, InvoiceRun, InvoiceRunItem, ServiceOffering, UsageRecord
from billing.stripe_client import BillingError, StripeClient
from billing.stripe_push import invoice_push
from core.jobs import enqueue_on_commit

logger = logging.getLogger(__name__)


# Invoices


def invoice_prepare(*, customer_id: int, period: str, now: datetime | None = None) -> Invoice | None:
    """The customer's invoice for `period`, created from its unbilled usage up to
    the period's end (one line per offering), or the one made earlier. Usage that
    arrives after its period was invoiced goes on the next period's invoice.
    Returns None when there is no invoice and nothing to bill."""
    _, end = periods.parse_period(period)
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


# Invoice runs


def customers_to_invoice(period: str) -> list[int]:
    """Customers with unbilled usage before the period's end, and customers whose
    invoice for the period has not finished its way through Stripe."""
    _, end = periods.parse_period(period)
    with_usage = set(
        UsageRecord.objects.filter(invoice_line__isnull=True, occurred_at__lt=end)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    unfinished = set(
        Invoice.objects.filter(period=period, collected_at__isnull=True)
        .exclude(status__in=states.CLOSED)
        .values_list("customer_id", flat=True)
    )
    return sorted(with_usage | unfinished)


@transaction.atomic
def invoice_run_start(*, period: str, by=None, now: datetime | None = None, process_later: bool = False) -> InvoiceRun:
    """Open a run for `period` with one pending item per customer to invoice;
    `invoice_run_process` does the work (the command runs it at once; with
    `process_later`, as the web page does, a worker once this commits)."""
    _, end = periods.parse_period(period)
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
    if process_later:
        enqueue_on_commit("billing.jobs.invoice_run_process", run.pk)
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
def invoice_run_retry(*, run_id: int, by=None, process_later: bool = False) -> InvoiceRun:
    """Put a run's failed customers back to pending; process the run afterwards
    (with `process_later`, on a worker once this commits)."""
    run = InvoiceRun.objects.select_for_update().get(pk=run_id)
    retried = run.items.filter(status=InvoiceRunItem.Status.FAILED).update(status=InvoiceRunItem.Status.PENDING)
    if not retried:
        raise BillingError("this run has no failed customers to retry")
    run.status = InvoiceRun.Status.RUNNING
    run.finished_at = None
    run._history_user = by
    run._change_reason = f"retry of {retried} failed customer(s)"
    run.save()
    if process_later:
        enqueue_on_commit("billing.jobs.invoice_run_process", run.pk)
    return run


def invoice_run(*, period: str, by=None, client: StripeClient | None = None) -> InvoiceRun:
    """Start and process a run at once (the management command)."""
    run = invoice_run_start(period=period, by=by)
    return invoice_run_process(run_id=run.pk, client=client)
