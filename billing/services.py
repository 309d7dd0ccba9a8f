"""Billing's writes about who is billed for what: customers, the offerings and
the task types they cover, and rating a finished task into usage.

Invoices live in modules of their own: `billing.invoicing` prepares them from
usage and runs a period's invoicing; `billing.stripe_push` sends one to Stripe
(and opens the billing portal).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from billing import money
from billing.models import Customer, OfferingTaskType, ServiceOffering, UsageRecord
from billing.stripe_client import BillingError
from tasks.models import ExecutionTask, TaskSource, TaskStatus, TaskType
from tasks.signals import FINISHED_ROW

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
    caller's transaction."""
    if usage_rate(task=task):
        return UsageRecord.objects.get(task_id=task.pk)
    return UsageRecord.objects.filter(task_id=task.pk).first() if is_billable(task) else None


# One statement rates and stores: the customer and the active offering covering the task
# type are joined in, the amount is computed by money.RATE_SQL, and the unique key on
# task_id makes a second rating of the same task a no-op (ON CONFLICT DO NOTHING), with no
# read before and no savepoint. No customer or no offering: the SELECT is empty, nothing
# is stored. The quantity is 1 per task, or the tokens for a per-1,000-tokens offering.
# Written out, not built by the ORM: compiling the three queries it replaces was most of
# the cost of finishing a task (docs/benchmarks.md).
_QUANTITY = "(CASE WHEN o.unit = 'task' THEN 1 ELSE p.tokens END)"
_RATE = """
INSERT INTO {usage} (task_id, customer_id, offering_id, unit, quantity, unit_price_micros, amount_micros,
                     cost_micros, occurred_at, recorded_at)
SELECT %s, c.id, o.id, o.unit, {quantity}, o.unit_price_micros, {amount}, %s, %s, %s
  FROM {customer} AS c, {covers} AS t
  JOIN {offering} AS o ON o.id = t.offering_id
 CROSS JOIN (SELECT CAST(%s AS bigint) AS tokens) AS p
 WHERE c.customer_ref = %s AND t.task_type = %s AND o.active
 LIMIT 1
ON CONFLICT (task_id) DO NOTHING
RETURNING id
"""
_rate_sql: str | None = None


# The same rating as a part of the statement that finishes a task (PostgreSQL;
# tasks.signals.finish_writes): the task is read from the finished row itself, billable
# as is_billable says, rated at its finish (occurred and recorded as it finished).
_RATE_FINISHED = """
INSERT INTO {usage} (task_id, customer_id, offering_id, unit, quantity, unit_price_micros, amount_micros,
                     cost_micros, occurred_at, recorded_at)
SELECT p.id, c.id, o.id, o.unit, {quantity}, o.unit_price_micros, {amount}, p.cost_micros, p.finished_at, p.finished_at
  FROM (SELECT id, customer_ref, task_type, COALESCE(cost_micros, 0) AS cost_micros, finished_at,
               CAST(COALESCE(tokens, 0) AS bigint) AS tokens
          FROM {finished}
         WHERE status = '{succeeded}' AND source = '{api}' AND customer_ref <> '') AS p
  JOIN {customer} AS c ON c.customer_ref = p.customer_ref
  JOIN {covers} AS t ON t.task_type = p.task_type
  JOIN {offering} AS o ON o.id = t.offering_id
 WHERE o.active
 LIMIT 1
ON CONFLICT (task_id) DO NOTHING
"""
_rate_finished_sql: str | None = None


def _rate_parts() -> dict[str, str]:
    """The tables and expressions both ratings (_RATE, _RATE_FINISHED) are written with."""
    return {
        "usage": UsageRecord._meta.db_table,
        "customer": Customer._meta.db_table,
        "covers": OfferingTaskType._meta.db_table,
        "offering": ServiceOffering._meta.db_table,
        "quantity": _QUANTITY,
        "amount": money.RATE_SQL.format(unit="o.unit", price="o.unit_price_micros", quantity=_QUANTITY),
    }


def usage_rate_sql() -> str:
    """usage_rate as a query over the finished task's row (tasks.signals.FINISHED_ROW),
    for the statement that finishes it; no parameters."""
    global _rate_finished_sql
    if _rate_finished_sql is None:
        _rate_finished_sql = _RATE_FINISHED.format(
            **_rate_parts(),
            finished=FINISHED_ROW,
            succeeded=TaskStatus.SUCCEEDED.value,
            api=TaskSource.API.value,
        ).strip()
    return _rate_finished_sql


def usage_rate(*, task: ExecutionTask) -> bool:
    """Rate a finished task and store its UsageRecord, in one statement in the caller's
    transaction (tasks.signals.finish_writes; usage_rate_sql is the same in the
    statement that finishes a task on PostgreSQL); True when a record was stored now. False
    when the task is not billable, its customer is unknown, no active offering covers
    its type, or it was rated already (a record per task, by the unique key)."""
    global _rate_sql
    if not is_billable(task):
        return False
    if _rate_sql is None:
        _rate_sql = _RATE.format(**_rate_parts())
    connection = transaction.get_connection()
    moment = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            _rate_sql,
            [task.pk, task.cost_micros or 0, moment(task.finished_at or timezone.now()), moment(timezone.now()),
             task.tokens or 0, task.customer_ref, task.task_type],
        )  # fmt: skip
        return cursor.fetchone() is not None
