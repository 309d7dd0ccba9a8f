"""save_with_history: the history row is a copy of the row as saved, with who and why."""

from types import SimpleNamespace

import pytest
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
