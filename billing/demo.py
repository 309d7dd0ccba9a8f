"""Demo billing data: the three customers tasks.demo names, two offerings, some
rated usage last month and this month (and the month before for Acme), and
invoices as if Stripe had finalized them (all local: nothing is sent to Stripe).
Acme, whom the demo customer logs in as, has last month's invoice open, with a
Pay link, and the month before's paid, with its payment; Globex paid last month,
Initech has not. And a task awaiting review."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db import transaction

from billing import invoicing, periods, services
from billing.models import Customer, Invoice, InvoiceStatus, Payment, ServiceOffering
from tasks.models import ExecutionTask, TaskSource, TaskStatus, TaskType

DEMO_PREFIX = "demo-billing-"
CUSTOMERS = [("cust_acme", "Acme Corp"), ("cust_globex", "Globex"), ("cust_initech", "Initech")]


@transaction.atomic
def seed_demo_billing(*, now: datetime, customer_user=None, seed: int = 11) -> bool:
    """Create the demo billing data unless it exists; always links `customer_user`
    to Acme. Returns whether anything was created."""
    acme = Customer.objects.filter(customer_ref="cust_acme").first()
    if acme is not None:
        if customer_user is not None:
            acme.users.add(customer_user)
        return False
    customers = {
        ref: services.customer_create(customer_ref=ref, name=name, email=f"billing@{ref.removeprefix('cust_')}.example")
        for ref, name in CUSTOMERS
    }
    if customer_user is not None:
        customers["cust_acme"].users.add(customer_user)
    if not ServiceOffering.objects.exists():
        services.offering_create(
            name="Idea implementation",
            unit=ServiceOffering.Unit.TASK,
            unit_price_micros=400_000,  # 40 cents a task
            task_types=[TaskType.IMPLEMENT_IDEA, TaskType.IDEA_IMPLEMENTATION],
        )
        services.offering_create(
            name="Self improvement",
            unit=ServiceOffering.Unit.THOUSAND_TOKENS,
            unit_price_micros=20_000,  # 2 cents per 1,000 tokens
            task_types=[TaskType.SELF_IMPROVEMENT],
        )
    rng = random.Random(seed)
    this_month_start, _ = periods.parse_period(periods.period_of(now))
    last_period = periods.previous_period(now)
    last_month_start, _ = periods.parse_period(last_period)
    earlier_period = periods.previous_period(last_month_start)
    earlier_start, _ = periods.parse_period(earlier_period)
    n = 0
    for ref in customers:
        windows = [(last_month_start, this_month_start), (this_month_start, now)]
        if ref == "cust_acme":
            windows.insert(0, (earlier_start, last_month_start))
        for start, end in windows:
            span = max(int((end - start).total_seconds()), 60)
            for _ in range(rng.randint(6, 14)):
                n += 1
                finished = start + timedelta(seconds=rng.randint(30, span - 1))
                task_type = rng.choice(list(TaskType))
                tokens = rng.randint(2_000, 40_000)
                task = ExecutionTask.objects.create(
                    external_id=f"{DEMO_PREFIX}{n:04d}",
                    task_type=task_type,
                    status=TaskStatus.SUCCEEDED,
                    created_at=finished - timedelta(minutes=5),
                    started_at=finished - timedelta(minutes=4),
                    finished_at=finished,
                    duration_ms=240_000,
                    tokens=tokens,
                    cost_micros=tokens * rng.choice([3, 5, 8]),
                    ai_model="claude-sonnet-5",
                    customer_ref=ref,
                    source=TaskSource.API,
                    gate_decision="allow",
                    gate_reason="demo data",
                    gate_policy="demo",
                )
                services.usage_record_for_task(task=task)
    ExecutionTask.objects.create(
        external_id=f"{DEMO_PREFIX}held",
        task_type=TaskType.SELF_IMPROVEMENT,
        status=TaskStatus.HELD,
        created_at=now - timedelta(hours=2),
        customer_ref="cust_acme",
        source=TaskSource.API,
        gate_decision="hold",
        gate_reason="demo: held for the ethics committee",
        gate_policy="demo",
    )
    # Invoices as if Stripe had finalized them (demo ids; nothing is sent to Stripe), so
    # the customer pages show Pay and a paid invoice with its payment, and ROI has revenue.
    # The earlier period first: an invoice takes all unbilled usage up to its period's end.
    invoices = [("cust_acme", customers["cust_acme"], earlier_period, True)]
    invoices += [(ref, customer, last_period, ref == "cust_globex") for ref, customer in customers.items()]
    for ref, customer, period, paid in invoices:
        _demo_invoice(customer=customer, ref=ref, period=period, paid=paid, now=now)
    return True


def _demo_invoice(*, customer: Customer, ref: str, period: str, paid: bool, now: datetime) -> Invoice:
    invoice = invoicing.invoice_prepare(customer_id=customer.pk, period=period, now=now)
    number = f"DEMO-{period}-{ref.removeprefix('cust_').upper()}"
    _, period_end = periods.parse_period(period)
    Invoice.objects.filter(pk=invoice.pk).update(
        status=InvoiceStatus.PAID if paid else InvoiceStatus.OPEN,
        number=number,
        amount_paid_minor=invoice.total_minor if paid else 0,
        amount_remaining_minor=0 if paid else invoice.total_minor,
        due_date=period_end + timedelta(days=30),
        # Where Stripe's hosted invoice page would be; the demo has no Stripe account behind it.
        hosted_invoice_url="" if paid else f"https://invoice.stripe.com/i/demo/{number.lower()}",
    )
    if paid:
        Payment.objects.create(
            invoice=invoice,
            kind=Payment.Kind.PAYMENT,
            stripe_id=f"pi_demo_{number.lower().replace('-', '_')}",
            amount_minor=invoice.total_minor,
            status="succeeded",
            created_at=period_end + timedelta(days=3),
        )
    return invoice
