"""Return on AI spend per service offering and period, live from our records.

Revenue is what was collected: lines of paid invoices, less refunds and credit
notes (allocated to an invoice's lines in proportion to their amounts). AI cost
is the cost of the tasks billed under the offering (lines of finalized, non-void
invoices). Margin = revenue − cost; ROI = margin ÷ cost. All integers: revenue
in minor units, cost and margin in micro-units, ROI in basis points.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Sum

from billing import money
from billing.models import InvoiceLine, InvoiceStatus, Payment, ServiceOffering, UsageRecord

BILLED = (InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE)


@dataclass
class RoiRow:
    offering: str
    period: str
    billed_minor: int = 0
    revenue_minor: int = 0
    refunds_minor: int = 0
    ai_cost_micros: int = 0
    tasks: int = 0

    @property
    def margin_micros(self) -> int:
        return self.revenue_minor * money.micros_per_minor() - self.ai_cost_micros

    @property
    def roi_bp(self) -> int | None:
        """ROI in basis points (10,000 = 100 %), None without cost."""
        if self.ai_cost_micros <= 0:
            return None
        return (self.margin_micros * 10_000) // self.ai_cost_micros

    def add(self, other: RoiRow) -> None:
        self.billed_minor += other.billed_minor
        self.revenue_minor += other.revenue_minor
        self.refunds_minor += other.refunds_minor
        self.ai_cost_micros += other.ai_cost_micros
        self.tasks += other.tasks

    def as_dict(self) -> dict:
        return {
            "offering": self.offering,
            "period": self.period,
            "billed_minor": self.billed_minor,
            "revenue_minor": self.revenue_minor,
            "refunds_minor": self.refunds_minor,
            "ai_cost_micros": self.ai_cost_micros,
            "margin_micros": self.margin_micros,
            "roi_bp": self.roi_bp,
            "tasks": self.tasks,
        }


@dataclass
class RoiReport:
    periods: list[str]
    rows: dict[tuple[str, str], RoiRow] = field(default_factory=dict)

    def for_period(self, period: str) -> list[RoiRow]:
        return sorted((r for (p, _), r in self.rows.items() if p == period), key=lambda r: r.offering)

    def total(self, period: str) -> RoiRow:
        total = RoiRow(offering="All offerings", period=period)
        for row in self.for_period(period):
            total.add(row)
        return total


def allocate(amount: int, weights: list[int]) -> list[int]:
    """Split an integer amount in proportion to weights; shares add up exactly
    (largest remainder)."""
    whole = sum(weights)
    if whole <= 0 or amount == 0:
        return [0] * len(weights)
    shares = [amount * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (amount * weights[i]) % whole, reverse=True)
    for i in remainders[: amount - sum(shares)]:
        shares[i] += 1
    return shares


def periods_ending(period: str, months: int) -> list[str]:
    start, _ = money.parse_period(period)
    year, month = start.year, start.month
    out = []
    for _ in range(months):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(out))


def roi_report(*, periods: list[str]) -> RoiReport:
    """ROI per offering for each period, in four queries whatever the volume."""
    report = RoiReport(periods=periods)
    names = dict(ServiceOffering.objects.values_list("id", "name"))

    def row(period: str, offering_id: int) -> RoiRow:
        key = (period, names.get(offering_id, f"offering {offering_id}"))
        if key not in report.rows:
            report.rows[key] = RoiRow(offering=key[1], period=period)
        return report.rows[key]

    lines = (
        InvoiceLine.objects.filter(invoice__period__in=periods, invoice__status__in=BILLED)
        .values_list("invoice_id", "invoice__period", "invoice__status", "offering_id", "amount_minor", "tasks")
        .order_by("invoice_id", "id")
    )
    refunds = dict(
        Payment.objects.filter(
            invoice__period__in=periods,
            invoice__status=InvoiceStatus.PAID,
            kind__in=(Payment.Kind.REFUND, Payment.Kind.CREDIT_NOTE),
        )
        .values("invoice_id")
        .annotate(total=Sum("amount_minor"))
        .values_list("invoice_id", "total")
    )
    paid_lines: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for invoice_id, period, status, offering_id, amount, tasks in lines:
        r = row(period, offering_id)
        r.billed_minor += amount
        r.tasks += tasks
        if status == InvoiceStatus.PAID:
            paid_lines[invoice_id].append((period, offering_id, amount))
    for invoice_id, invoice_lines in paid_lines.items():
        refunded = refunds.get(invoice_id) or 0
        shares = allocate(refunded, [amount for _, _, amount in invoice_lines])
        for (period, offering_id, amount), refund in zip(invoice_lines, shares, strict=True):
            r = row(period, offering_id)
            r.revenue_minor += amount - refund
            r.refunds_minor += refund
    costs = (
        UsageRecord.objects.filter(invoice_line__invoice__period__in=periods, invoice_line__invoice__status__in=BILLED)
        .values_list("invoice_line__invoice__period", "offering_id")
        .annotate(cost=Sum("cost_micros"))
        .order_by()
    )
    for period, offering_id, cost in costs:
        row(period, offering_id).ai_cost_micros += cost or 0
    return report


def format_bp(bp: int | None) -> str:
    if bp is None:
        return "—"
    sign = "-" if bp < 0 else ""
    whole, frac = divmod(abs(bp), 100)
    return f"{sign}{whole}.{frac // 10} %"




def chart(report: RoiReport) -> dict:
    """Collected revenue and AI cost per month, for the page's uPlot bar chart
    (static/fsar/charts.js) and the table under it: x is each month's first
    second (UTC), amounts are in major units of the billing currency."""
    months = []
    for period in report.periods:
        total = report.total(period)
        months.append(
            {
                "period": period,
                "revenue": total.revenue_minor * money.micros_per_minor(),
                "cost": total.ai_cost_micros,
            }
        )
    return {
        "kind": "money",
        "currency": money.currency().upper(),
        # The currency's decimals: a minor unit is 10^(6 - decimals) micro-units.
        "decimals": 6 - (len(str(money.micros_per_minor())) - 1),
        "labels": [m["period"] for m in months],
        "x": [int(datetime.strptime(m["period"], "%Y-%m").replace(tzinfo=UTC).timestamp()) for m in months],
        "series": [
            {"label": "collected revenue", "values": [m["revenue"] / money.MICROS for m in months]},
            {"label": "AI cost", "values": [m["cost"] / money.MICROS for m in months]},
        ],
        "months": months,
    }
