"""Billing reads. Who may see a customer's data has one answer: `customer_for_user`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from billing import money, periods
from billing.models import Customer, Invoice, InvoiceRun, InvoiceRunItem, InvoiceStatus, UsageRecord
from tasks.models import ExecutionTask, TaskStatus


def customer_for_user(user) -> Customer | None:
    """The customer a Customers-group user belongs to (the first by name, if several)."""
    if not user.is_authenticated:
        return None
    return Customer.objects.filter(users=user).order_by("name", "pk").first()


def invoice_for_customer(customer: Customer | None, invoice_id: int) -> Invoice:
    """The invoice, if it is this customer's; otherwise 404 (never 403, so other
    customers' invoice numbers are not disclosed)."""
    if customer is None:
        raise Http404("No such invoice.")
    try:
        return Invoice.objects.select_related("customer").get(pk=invoice_id, customer=customer)
    except Invoice.DoesNotExist:
        raise Http404("No such invoice.") from None


def usage_by_offering(customer: Customer, start: datetime, end: datetime) -> list[dict]:
    rows = (
        UsageRecord.objects.filter(customer=customer, occurred_at__gte=start, occurred_at__lt=end)
        .values("offering_id", "offering__name", "unit")
        .annotate(tasks=Count("id"), quantity=Sum("quantity"), amount_micros=Sum("amount_micros"))
        .order_by("offering__name", "unit")
    )
    out = []
    for row in rows:
        out.append(
            {
                "offering": row["offering__name"],
                "unit": row["unit"],
                "tasks": row["tasks"],
                "quantity": row["quantity"],
                "amount_micros": row["amount_micros"],
                "amount_minor": money.micros_to_minor(row["amount_micros"]),
            }
        )
    return out


def usage_records(customer: Customer, start: datetime, end: datetime) -> QuerySet[UsageRecord]:
    return (
        UsageRecord.objects.filter(customer=customer, occurred_at__gte=start, occurred_at__lt=end)
        .select_related("offering", "task")
        .order_by("occurred_at", "id")
    )


def invoice_usage_records(invoice: Invoice) -> QuerySet[UsageRecord]:
    return (
        UsageRecord.objects.filter(invoice_line__invoice=invoice)
        .select_related("offering", "task")
        .order_by("offering__name", "occurred_at", "id")
    )


CSV_HEADER = [
    "task_external_id",
    "task_type",
    "finished_at",
    "offering",
    "unit",
    "quantity",
    "unit_price",
    "amount",
    "amount_micros",
]


def usage_csv_rows(records: QuerySet[UsageRecord]) -> Iterator[list[str]]:
    """One row per billed task. Amounts are exact decimals of the micro-unit
    rating: per offering they add up to the invoice line before its one rounding."""
    yield CSV_HEADER
    for r in records.iterator(chunk_size=2000):
        yield [
            r.task.external_id,
            r.task.task_type,
            r.occurred_at.isoformat(),
            r.offering.name,
            r.unit,
            str(r.quantity),
            money.format_micros(r.unit_price_micros),
            money.format_micros(r.amount_micros),
            str(r.amount_micros),
        ]


def held_tasks(customer: Customer, limit: int = 50) -> QuerySet[ExecutionTask]:
    """The customer's tasks held for review: what and when only, never the case,
    policy or reason (committee details are not the customer's)."""
    return (
        ExecutionTask.objects.filter(customer_ref=customer.customer_ref, status=TaskStatus.HELD)
        .only("external_id", "task_type", "created_at")
        .order_by("-id")[:limit]
    )


def invoices_for_customer(customer: Customer) -> QuerySet[Invoice]:
    return Invoice.objects.filter(customer=customer).select_related("customer").order_by("-period", "-id")


INVOICE_PAGE_SIZE = 24
RUN_PAGE_SIZE = 50


class BadCursor(ValueError):
    pass


def invoice_page(
    customer: Customer, *, before: str | None, size: int = INVOICE_PAGE_SIZE
) -> tuple[list[Invoice], str | None]:
    """A page of the customer's invoices, newest period first, by keyset on the period
    (a customer has one invoice per period: the unique index is the page's index).
    `before` is the previous page's cursor. Returns (invoices, the next page's cursor or None).
    One query whatever the number of invoices."""
    qs = invoices_for_customer(customer)
    if before:
        try:
            periods.parse_period(before)
        except periods.BadPeriod as exc:
            raise BadCursor(f"before: not a page of this list ({exc})") from exc
        qs = qs.filter(period__lt=before)
    rows = list(qs[: size + 1])
    return rows[:size], (rows[size - 1].period if len(rows) > size else None)


def _run_cursor(run: InvoiceRun) -> str:
    return f"{run.started_at.isoformat()}~{run.pk}"


def _decode_run_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        started, pk = cursor.split("~")
        started_at, run_id = datetime.fromisoformat(started), int(pk)
    except ValueError:
        raise BadCursor("before: not a page of this list") from None
    if started_at.tzinfo is None or not 0 < run_id < 2**63:
        raise BadCursor("before: not a page of this list")
    return started_at, run_id


def invoice_run_page(
    *, before: str | None, size: int = RUN_PAGE_SIZE
) -> tuple[list[tuple[InvoiceRun, dict]], str | None]:
    """A page of invoice runs, newest first (keyset on started_at, id), each with its
    summary. Two queries whatever the number of runs: the page, then the summaries of
    its runs in one grouped query."""
    qs = InvoiceRun.objects.select_related("started_by").order_by("-started_at", "-id")
    if before:
        started_at, run_id = _decode_run_cursor(before)
        qs = qs.filter(Q(started_at__lt=started_at) | Q(started_at=started_at, id__lt=run_id))
    runs = list(qs[: size + 1])
    more = len(runs) > size
    runs = runs[:size]
    summaries = run_summaries([run.pk for run in runs])
    return [(run, summaries[run.pk]) for run in runs], (_run_cursor(runs[-1]) if more else None)


def run_items(run: InvoiceRun) -> QuerySet[InvoiceRunItem]:
    return run.items.select_related("customer", "invoice").order_by("status", "customer__name")


def run_summaries(run_ids: list[int]) -> dict[int, dict]:
    """Per run: customers done, failed and pending, and the amount invoiced. One query."""
    summaries = {pk: {"done": 0, "failed": 0, "pending": 0, "amount_minor": 0} for pk in run_ids}
    if not run_ids:
        return summaries
    rows = (
        InvoiceRunItem.objects.filter(run_id__in=run_ids)
        .values("run_id", "status")
        .annotate(n=Count("id"), amount=Sum("invoice__total_minor"))
        .order_by()
    )
    for row in rows:
        summary = summaries[row["run_id"]]
        summary[row["status"]] = row["n"]
        if row["status"] == InvoiceRunItem.Status.DONE:
            summary["amount_minor"] = row["amount"] or 0
    return summaries


def run_summary(run: InvoiceRun) -> dict:
    return run_summaries([run.pk])[run.pk]


DASHBOARD_SQL = """
SELECT
  (SELECT COUNT(*) FROM billing_invoice WHERE status = 'open'),
  (SELECT COALESCE(SUM(amount_remaining_minor), 0) FROM billing_invoice WHERE status = 'open'),
  (SELECT COUNT(*) FROM billing_invoice WHERE status = 'draft'),
  r.id, r.period, r.status,
  (SELECT COUNT(*) FROM billing_invoicerunitem i WHERE i.run_id = r.id AND i.status = 'done'),
  (SELECT COUNT(*) FROM billing_invoicerunitem i WHERE i.run_id = r.id AND i.status = 'failed'),
  (SELECT COALESCE(SUM(l.amount_minor), 0) FROM billing_invoiceline l
     JOIN billing_invoice v ON v.id = l.invoice_id WHERE v.period = %(period)s AND v.status = 'paid'),
  (SELECT COALESCE(SUM(p.amount_minor), 0) FROM billing_payment p
     JOIN billing_invoice v ON v.id = p.invoice_id
     WHERE v.period = %(period)s AND v.status = 'paid' AND p.kind IN ('refund', 'credit_note')),
  (SELECT COALESCE(SUM(u.cost_micros), 0) FROM billing_usagerecord u
     JOIN billing_invoiceline l ON l.id = u.invoice_line_id JOIN billing_invoice v ON v.id = l.invoice_id
     WHERE v.period = %(period)s AND v.status IN ('open', 'paid', 'uncollectible'))
FROM (SELECT 1 AS one) AS base
LEFT JOIN (SELECT id, period, status FROM billing_invoicerun ORDER BY started_at DESC, id DESC LIMIT 1) AS r ON 1 = 1
"""


def dashboard_context(now: datetime | None = None) -> dict:
    """The operator dashboard's billing section, in one query (the dashboard's
    query budget is shared by every app): open invoices, the last invoice run,
    and last month's collected revenue against the AI cost of what was billed."""
    roi_period = periods.previous_period(now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(DASHBOARD_SQL, {"period": roi_period})
        (open_count, open_minor, drafts, run_id, period, status, done, failed, paid, refunded, cost) = cursor.fetchone()
    from billing.roi import RoiRow

    roi = RoiRow(offering="All offerings", period=roi_period, revenue_minor=int(paid) - int(refunded))
    roi.ai_cost_micros = int(cost)
    last_run = None
    if run_id is not None:
        last_run = {
            "pk": run_id,
            "period": period,
            "status": InvoiceRun.Status(status).label,
            "done": done,
            "failed": failed,
        }
    return {
        "billing": {
            "open_count": open_count,
            "open_minor": int(open_minor),
            "drafts": drafts,
            "last_run": last_run,
            "roi": roi,
        }
    }


def customer_overview(customer: Customer, now: datetime) -> dict:
    """A customer's landing page: this period's usage so far, open invoices (to pay),
    and the last paid invoice."""
    period = periods.period_of(now)
    start, _ = periods.parse_period(period)
    rows = usage_by_offering(customer, start, now)
    invoices = invoices_for_customer(customer)
    return {
        "period": period,
        "usage": rows,
        "usage_total_minor": sum(r["amount_minor"] for r in rows),
        "open_invoices": list(invoices.filter(status=InvoiceStatus.OPEN)),
        "last_paid": invoices.filter(status=InvoiceStatus.PAID).first(),
    }


def latest_billed_period() -> str | None:
    """The most recent period with an invoice (the ROI page opens on it)."""
    return (
        Invoice.objects.exclude(status=InvoiceStatus.VOID).order_by("-period").values_list("period", flat=True).first()
    )
