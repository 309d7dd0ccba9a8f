"""save_with_history: the history row is a copy of the row as saved, with who and why."""

from types import SimpleNamespace

import pytest
from django.db import DatabaseError, transaction
from simple_history.models import HistoricalRecords

from billing.models import Customer, Invoice, Payment
from core.history import save_with_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice():
    customer = Customer.objects.create(customer_ref="cust_h", name="H Co")
    return Invoice.objects.create(customer=customer, period="2026-10", currency="usd", total_minor=500)


def test_a_new_row_and_each_change_get_a_history_row_copying_it(invoice, operator):
    payment = Payment(invoice=invoice, stripe_id="pi_1", amount_minor=500, status="processing")
    save_with_history(payment, reason="payment processing", user=operator)
    assert payment.pk is not None
    payment.status = "succeeded"
    save_with_history(payment, reason="payment succeeded", user=None)
    created, changed = Payment.history.filter(id=payment.pk).order_by("history_id")
    assert (created.history_type, created.history_change_reason, created.history_user) == (
        "+",
        "payment processing",
        operator,
    )
    assert (created.status, changed.status) == ("processing", "succeeded")
    assert (changed.history_type, changed.history_change_reason, changed.history_user) == (
        "~",
        "payment succeeded",
        None,
    )
    stored = Payment.objects.get(pk=payment.pk)
    for field in Payment._meta.concrete_fields:
        assert getattr(changed, field.attname) == getattr(stored, field.attname), field.name
    assert created.history_date <= changed.history_date


def test_without_a_user_it_records_the_signed_in_user_of_the_request_as_simple_history_does(invoice, operator):
    HistoricalRecords.context.request = SimpleNamespace(user=operator)
    try:
        invoice.status = "void"
        save_with_history(invoice, reason="voided by hand")
    finally:
        del HistoricalRecords.context.request
    save_with_history(invoice, reason="outside a request")
    by_hand, outside = Invoice.history.filter(id=invoice.pk).order_by("history_id")[1:]
    assert (by_hand.history_user, by_hand.status) == (operator, "void")
    assert outside.history_user is None


def _task(external_id, api_key):
    from datetime import UTC, datetime

    from tasks.models import ExecutionTask

    task = ExecutionTask(
        created_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        external_id=external_id, task_type="implement_idea", ai_model="m-1", status="registered",
        submitted_by=api_key, gate_decision="allow", gate_reason="allowed", gate_policy="default",
    )  # fmt: skip
    save_with_history(task, reason="registered", user=None, history_api_key_id=api_key.pk)
    return task


def test_an_update_of_some_fields_writes_the_same_rows_as_saving_the_whole_instance(api_key, operator):
    """update_with_history (on PostgreSQL one UPDATE … RETURNING with the history copy
    as a CTE) against save_with_history (save() and the copy): the task's row and its
    new history row are the same, column by column."""
    from django.utils import timezone

    from core.history import update_with_history
    from tasks.models import ExecutionTask

    key, _ = api_key
    by_fields, by_save = _task("t-fields", key), _task("t-save", key)
    started = timezone.now()
    for task in (by_fields, by_save):
        task.status, task.started_at, task.gate_reason, task.gate_case = "running", started, "still allowed", "12"
    update_with_history(
        by_fields, ("status", "started_at", "gate_reason", "gate_case"), reason="started", user=operator,
        history_api_key_id=key.pk,
    )  # fmt: skip
    save_with_history(by_save, reason="started", user=operator, history_api_key_id=key.pk)

    skip = {"id", "external_id", "history_id", "history_date"}
    rows = {}
    for task in (by_fields, by_save):
        stored = ExecutionTask.objects.get(pk=task.pk)
        created, changed = ExecutionTask.history.filter(id=task.pk).order_by("history_id")
        assert created.status == "registered" and created.history_type == "+"
        assert changed.history_date >= created.history_date
        history = {f.attname: getattr(changed, f.attname) for f in changed._meta.concrete_fields}
        row = {f.attname: getattr(stored, f.attname) for f in ExecutionTask._meta.concrete_fields}
        assert {k: history[k] for k in row if k in history} == {k: v for k, v in row.items() if k in history}
        rows[task.pk] = (
            {k: v for k, v in row.items() if k not in skip},
            {k: v for k, v in history.items() if k not in skip},
        )
    (fields_row, fields_history), (save_row, save_history) = rows[by_fields.pk], rows[by_save.pk]
    assert fields_row == save_row
    assert fields_history == save_history
    assert (fields_history["history_type"], fields_history["history_change_reason"]) == ("~", "started")
    assert (fields_history["history_user_id"], fields_history["history_api_key_id"]) == (operator.pk, key.pk)
    assert (fields_row["status"], fields_row["gate_case"]) == ("running", "12")


def test_an_update_of_a_row_that_is_gone_writes_no_history_row(api_key):
    from core.history import update_with_history
    from tasks.models import ExecutionTask

    key, _ = api_key
    task = _task("t-gone", key)
    ExecutionTask.objects.filter(pk=task.pk).delete()
    task.status = "running"
    with pytest.raises((ExecutionTask.DoesNotExist, DatabaseError)), transaction.atomic():
        update_with_history(task, ("status",), reason="started", user=None)
    assert not ExecutionTask.history.filter(id=task.pk, history_type="~").exists()
