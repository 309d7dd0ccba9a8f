"""Demo billing data: the three customers tasks.demo names, two offerings, some
rated usage last month and this month, last month's invoices (two marked paid,
one open, all local: nothing is sent to Stripe), and a task awaiting review."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db import transaction

from billing import money, services
from billing.models import Customer, Invoice, InvoiceStatus, ServiceOffering
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
    this_month_start, _ = money.parse_period(money.period_of(now))
    last_period = money.previous_period(now)
    last_month_start, _ = money.parse_period(last_period)
    n = 0
    for ref in customers:
        for start, end in ((last_month_start, this_month_start), (this_month_start, now)):
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
    # Last month's invoices, as if Stripe had finalized them and two were paid (no
    # Stripe ids: nothing here points at Stripe), so the ROI page has something to show.
    for ref, customer in customers.items():
        invoice = services.invoice_prepare(customer_id=customer.pk, period=last_period, now=now)
        paid = ref != "cust_initech"
        Invoice.objects.filter(pk=invoice.pk).update(
            status=InvoiceStatus.PAID if paid else InvoiceStatus.OPEN,
            number=f"DEMO-{last_period}-{ref.removeprefix('cust_').upper()}",
            amount_paid_minor=invoice.total_minor if paid else 0,
            amount_remaining_minor=0 if paid else invoice.total_minor,
        )
    return True
