from datetime import UTC, datetime

import pytest

from billing import money, periods, services
from billing.models import ServiceOffering, UsageRecord
from billing.stripe_client import BillingError
from tasks.backfill import BackfillRow, tasks_backfill
from tasks.models import TaskType
from tasks.services import Actor, task_finish

pytestmark = pytest.mark.django_db


def test_a_succeeded_task_is_rated_when_it_finishes(acme, offerings, finish_task):
    task = finish_task(task_type=TaskType.IMPLEMENT_IDEA, cost_micros=777)
    record = UsageRecord.objects.get(task=task)
    assert record.customer == acme
    assert record.offering.name == "Idea implementation"
    assert (record.quantity, record.unit_price_micros, record.amount_micros) == (1, 123_450, 123_450)
    assert record.cost_micros == 777
    assert record.occurred_at == task.finished_at
    assert record.invoice_line is None


def test_tokens_are_rated_per_thousand_rounding_half_up_in_micros(acme, offerings, finish_task):
    task = finish_task(task_type=TaskType.SELF_IMPROVEMENT, tokens=1_250)
    record = UsageRecord.objects.get(task=task)
    assert (record.unit, record.quantity, record.amount_micros) == ("1k_tokens", 1_250, 2_500)
    assert money.rate(unit="1k_tokens", unit_price_micros=3, quantity=1_500) == 5  # 4.5 → 5
    assert money.rate(unit="1k_tokens", unit_price_micros=3, quantity=1_499) == 4


def test_a_task_is_recorded_once_however_often_its_finish_is_reported(acme, offerings, finish_task, api_key):
    task = finish_task(tokens=1000, cost_micros=500)
    task_finish(task_id=task.pk, actor=Actor.for_key(api_key[0]), outcome="succeeded", tokens=1000, cost_micros=500)
    services.usage_record_for_task(task=task)
    assert UsageRecord.objects.filter(task=task).count() == 1


@pytest.mark.parametrize("outcome", ["failed"])
def test_failed_tasks_are_not_billed(acme, offerings, finish_task, outcome):
    finish_task(outcome=outcome)
    assert not UsageRecord.objects.exists()


def test_tasks_of_unknown_customers_or_uncovered_types_are_not_billed(acme, per_task_offering, finish_task):
    finish_task(customer_ref="cust_nobody_knows")
    finish_task(customer_ref=None)
    finish_task(task_type=TaskType.SELF_IMPROVEMENT)  # no offering covers it here
    assert not UsageRecord.objects.exists()


def test_backfilled_tasks_are_never_billed(acme, offerings, api_key):
    rows = [
        BackfillRow(
            external_id="old-1",
            task_type=TaskType.IMPLEMENT_IDEA,
            status="succeeded",
            started_at=datetime(2026, 10, 1, tzinfo=UTC),
            finished_at=datetime(2026, 10, 1, 0, 5, tzinfo=UTC),
            customer_ref="cust_acme",
        )
    ]
    tasks_backfill(actor=Actor.for_key(api_key[0]), rows=rows)
    from tasks.models import ExecutionTask

    task = ExecutionTask.objects.get(external_id="old-1")
    assert services.usage_record_for_task(task=task) is None  # `source` says backfill, even if asked directly
    assert not UsageRecord.objects.exists()


def test_a_later_price_change_never_rewrites_rated_usage(acme, per_task_offering, finish_task):
    first = finish_task()
    ServiceOffering.objects.filter(pk=per_task_offering.pk).update(unit_price_micros=999_999)
    second = finish_task()
    assert UsageRecord.objects.get(task=first).amount_micros == 123_450
    assert UsageRecord.objects.get(task=second).amount_micros == 999_999


def test_an_offering_may_not_cover_a_task_type_another_offering_covers(per_task_offering):
    with pytest.raises(BillingError, match="already covered by another offering: implement_idea"):
        services.offering_create(
            name="Cheap ideas", unit="task", unit_price_micros=1, task_types=[TaskType.IMPLEMENT_IDEA]
        )
    assert ServiceOffering.objects.count() == 1


def test_money_helpers_use_integers_and_round_each_line_once():
    assert money.micros_to_minor(123_450) == 12  # 12.345 cents → 12
    assert money.micros_to_minor(5_000) == 1  # half a cent rounds up
    assert money.micros_to_minor(1_500_000, "jpy") == 2
    assert money.format_minor(123_456) == "1,234.56 USD"
    assert money.format_micros(123_450) == "0.123450"
    assert periods.parse_period("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(periods.BadPeriod):
        periods.parse_period("2026-13")


def test_the_rate_in_sql_is_money_rate_on_the_database():
    from django.db import connection

    cases = [(unit, price, quantity) for unit in ("task", "1k_tokens") for price in (0, 1, 3, 999, 123_450)
             for quantity in (0, 1, 499, 500, 1_499, 1_500, 12_345_678)]  # fmt: skip
    with connection.cursor() as cursor:
        for unit, price, quantity in cases:
            expression = money.RATE_SQL.format(unit="%s", price="CAST(%s AS bigint)", quantity="CAST(%s AS bigint)")
            cursor.execute(f"SELECT {expression}", [unit, quantity, price, quantity, price])
            assert cursor.fetchone()[0] == money.rate(unit=unit, unit_price_micros=price, quantity=quantity), (
                unit, price, quantity)  # fmt: skip


def test_rating_a_finished_task_is_one_statement_and_a_second_rating_stores_nothing(acme, offerings, finish_task):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    task = finish_task(tokens=2_000)
    UsageRecord.objects.filter(task=task).delete()
    with CaptureQueriesContext(connection) as queries:
        assert services.usage_rate(task=task) is True
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert services.usage_rate(task=task) is False  # the unique key on task_id: no second record
    record = UsageRecord.objects.get(task=task)
    assert (record.customer, record.quantity, record.amount_micros) == (acme, 1, 123_450)
    assert services.usage_record_for_task(task=task) == record  # asked again: the first record


def test_an_inactive_offering_rates_nothing(acme, per_task_offering, finish_task):
    ServiceOffering.objects.filter(pk=per_task_offering.pk).update(active=False)
    task = finish_task()
    assert services.usage_record_for_task(task=task) is None
    assert not UsageRecord.objects.exists()


@pytest.mark.postgres(reason="the finishing statement with its writes as CTEs is PostgreSQL's (tasks.services)")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_finish_rates_its_usage_in_the_one_statement_that_finishes_the_task(acme, offerings, api_key):
    """No transaction and no statement of billing's own: the UPDATE that finishes the
    task, its history row and the usage record commit together, as one statement."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks.services import task_register, task_start

    actor = Actor.for_key(api_key[0])
    task, _ = task_register(
        actor=actor, external_id="one", task_type=TaskType.SELF_IMPROVEMENT, customer_ref="cust_acme"
    )
    task_start(task_id=task.pk, actor=actor)
    with CaptureQueriesContext(connection) as queries:
        task = task_finish(task_id=task.pk, actor=actor, outcome="succeeded", tokens=1_250, cost_micros=9)
    assert len(queries) == 1, [q["sql"] for q in queries]  # no BEGIN, no COMMIT, no INSERT of its own
    assert queries[0]["sql"].startswith("WITH changed AS (UPDATE") and "billing_usagerecord" in queries[0]["sql"]
    record = UsageRecord.objects.get(task=task)
    assert (record.customer, record.unit, record.quantity, record.unit_price_micros, record.amount_micros) == (
        acme, "1k_tokens", 1_250, 2_000, 2_500)  # fmt: skip
    assert (record.cost_micros, record.occurred_at, record.recorded_at) == (9, task.finished_at, task.finished_at)
    assert task.history.latest().history_change_reason == "finished: succeeded"


RATED = ("customer_id", "offering_id", "unit", "quantity", "unit_price_micros", "amount_micros", "cost_micros")


@pytest.mark.postgres(reason="compares the finishing statement's rating with usage_rate's")
@pytest.mark.parametrize(
    ("task_type", "tokens", "cost_micros"),
    [
        (TaskType.IMPLEMENT_IDEA, None, None),
        (TaskType.IMPLEMENT_IDEA, 7, 3),
        (TaskType.SELF_IMPROVEMENT, None, 5),
        (TaskType.SELF_IMPROVEMENT, 1_499, None),
        (TaskType.SELF_IMPROVEMENT, 2_147_483_647, 9_223_372_036_854_775_807),
    ],
)
def test_the_finishing_statement_rates_a_task_as_usage_rate_does(
    acme, offerings, finish_task, task_type, tokens, cost_micros
):
    task = finish_task(task_type=task_type, tokens=tokens, cost_micros=cost_micros)
    in_statement = UsageRecord.objects.filter(task=task).values(*RATED, "occurred_at").get()
    UsageRecord.objects.filter(task=task).delete()
    assert services.usage_rate(task=task) is True
    assert UsageRecord.objects.filter(task=task).values(*RATED, "occurred_at").get() == in_statement


def test_a_task_finished_receiver_runs_in_the_finishing_transaction(acme, offerings, finish_task):
    """A receiver of task_finished that fails undoes the finish, its history row and
    its usage: the finish is one transaction with its receivers (the common path
    commits alone only while task_finished has none)."""
    from tasks.models import ExecutionTask
    from tasks.signals import task_finished

    def refuse(sender, task, **kwargs):
        raise RuntimeError("refused")

    task_finished.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(RuntimeError):
            finish_task(customer_ref="cust_acme")
    finally:
        task_finished.disconnect(dispatch_uid="test-refuse")
    task = ExecutionTask.objects.get()
    assert task.status == "running" and task.finished_at is None
    assert not task.history.filter(history_change_reason__startswith="finished").exists()
    assert not UsageRecord.objects.exists()
    task = finish_task(customer_ref="cust_acme")  # the next one, with no receiver, finishes and is rated
    assert UsageRecord.objects.filter(task=task).count() == 1
