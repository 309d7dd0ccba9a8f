import re
from html import unescape

import pytest
from django.urls import reverse

from billing import invoicing
from billing.models import Customer, Invoice, InvoiceRun, OfferingTaskType, ServiceOffering, UsageRecord
from tasks.models import TaskType


@pytest.fixture
def november_invoice_pushed(acme, offerings, finish_task, fake_stripe):
    import time_machine

    from billing.tests.test_invoicing import DEC

    finish_task(task_type=TaskType.IMPLEMENT_IDEA)
    with time_machine.travel(DEC, tick=False):
        invoicing.invoice_run(period="2026-11")
    return Customer.objects.get(), Invoice.objects.get()

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    """The admin page's content area as text: tags dropped, whitespace collapsed."""
    html = response.content.decode().split('id="content"', 1)[-1]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_billing_admin_pages_render_with_history(client, superuser, acme, offerings, finish_task):
    finish_task()
    invoice = invoicing.invoice_prepare(customer_id=acme.pk, period="2026-11")
    run = InvoiceRun.objects.create(period="2026-11")
    client.force_login(superuser)
    record = invoice.lines.first().usage_records.first()
    # For each model: its object, then what its list, change and history pages must show.
    pages = {
        "customer": (
            acme,
            ["Acme Corp cust_acme Charge the default payment method", "1 customer"],
            ["Change customer Acme Corp (cust_acme)", "Collection method"],
            ["View history: Acme Corp (cust_acme)", "Created", "1 entry"],
        ),
        "serviceoffering": (
            offerings[0],
            ["Idea implementation per task 123450", "Self improvement per 1,000 tokens 2000", "2 service offerings"],
            ["Change service offering Idea implementation", "Unit: per task", "Task types:"],
            ["View history: Idea implementation", "Created", "1 entry"],
        ),
        "invoice": (
            invoice,
            ["Draft cust_acme-2026-11 Acme Corp (cust_acme) 2026-11 Draft 12", "1 invoice"],
            ["Change invoice Draft cust_acme-2026-11", "Total minor: 12", "Idea implementation, 2026-11: 1 tasks"],
            [
                "View history: Draft cust_acme-2026-11",
                "lines added Amount remaining minor: 0 → 12 Total minor: 0 → 12",
                "prepared from 1 usage record(s)",
                "2 entries",
            ],
        ),
        "invoicerun": (
            run,
            [f"invoice run 2026-11 #{run.pk} 2026-11 Running", "1 invoice run"],
            [f"Change invoice run invoice run 2026-11 #{run.pk}", "Period: 2026-11 Status: Running"],
            [f"View history: invoice run 2026-11 #{run.pk}", "Created", "1 entry"],
        ),
        "usagerecord": (
            record,
            ["implement_idea t-1 (succeeded) Acme Corp (cust_acme) Idea implementation 1 123450", "1 usage record"],
            [f"Change usage record usage for task {record.task_id}", "Amount micros: 123450", "Cost micros: 500"],
            None,  # usage records have no history page
        ),
    }
    for model, (obj, listed, change, history) in pages.items():
        views = [("changelist", [], listed), ("change", [obj.pk], change)]
        if history is not None:
            views.append(("history", [obj.pk], history))
        for view, args, expected in views:
            response = client.get(reverse(f"admin:billing_{model}_{view}", args=args))
            assert response.status_code == 200, (model, view)
            text = page_text(response)
            for snippet in expected:
                assert snippet in text, (model, view, snippet, text[:600])


def offering_form(**fields):
    return {"unit_price_micros": "123450", "active": "on", "change_reason": "Price list of December.", **fields}


def test_the_admin_refuses_a_task_type_another_offering_covers(client, operator, per_task_offering):
    client.force_login(operator)
    response = client.post(
        reverse("admin:billing_serviceoffering_add"),
        offering_form(name="Cheap ideas", unit="task", unit_price_micros="1", task_types=["implement_idea"]),
        follow=True,
    )
    assert "Nothing saved: already covered by another offering: implement_idea" in response.content.decode()
    assert not ServiceOffering.objects.filter(name="Cheap ideas").exists()


def test_an_offering_created_in_the_admin_goes_through_the_service(client, operator, per_task_offering):
    client.force_login(operator)
    client.post(
        reverse("admin:billing_serviceoffering_add"),
        offering_form(name="Tokens", unit="1k_tokens", unit_price_micros="2000", task_types=["self_improvement"]),
    )
    offering = ServiceOffering.objects.get(name="Tokens")
    assert list(offering.task_types.values_list("task_type", flat=True)) == ["self_improvement"]
    assert offering.history.latest().history_user == operator
    assert offering.history.latest().history_change_reason == "created: Price list of December."


def test_a_price_changed_in_the_admin_is_in_the_offerings_history_with_the_operator(
    client, operator, acme, per_task_offering, finish_task
):
    finish_task()  # rated at the old price
    client.force_login(operator)
    response = client.post(
        reverse("admin:billing_serviceoffering_change", args=[per_task_offering.pk]),
        offering_form(name="Idea implementation", unit_price_micros="150000", task_types=["implement_idea"]),
        follow=True,
    )
    assert response.status_code == 200
    per_task_offering.refresh_from_db()
    assert per_task_offering.unit_price_micros == 150_000
    latest = per_task_offering.history.latest()
    assert latest.history_user == operator
    assert latest.history_change_reason == "changed unit_price_micros, task_types: Price list of December."
    dropped = OfferingTaskType.history.filter(task_type="idea_implementation").latest()
    assert (dropped.history_type, dropped.history_user) == ("-", operator)
    assert UsageRecord.objects.get().unit_price_micros == 123_450  # rated usage keeps its price


def test_an_offering_change_needs_a_reason_and_a_change(client, operator, per_task_offering):
    client.force_login(operator)
    url = reverse("admin:billing_serviceoffering_change", args=[per_task_offering.pk])
    same = offering_form(name="Idea implementation", task_types=["implement_idea", "idea_implementation"])
    response = client.post(url, {**same, "change_reason": ""})
    assert "This field is required." in response.content.decode()
    response = client.post(url, same, follow=True)
    assert "Nothing saved: nothing changed" in response.content.decode()
    assert per_task_offering.history.count() == 1


def test_a_stripe_create_attempt_is_in_the_customers_and_the_invoices_history(
    november_invoice_pushed,
):
    customer, invoice = november_invoice_pushed
    for row in (customer, invoice):
        marked = [h for h in row.history.all() if h.history_change_reason == "creating it in Stripe"]
        assert len(marked) == 1 and marked[0].stripe_create_attempted_at is not None, row


def test_operators_replay_failed_stripe_events_from_the_admin(client, superuser):
    from billing.models import StripeEvent

    event = StripeEvent.objects.create(
        stripe_id="evt_a1",
        type="product.created",
        created=1_800_000_000,
        payload={"data": {"object": {}}},
        status=StripeEvent.Status.FAILED,
        error="boom",
    )
    client.force_login(superuser)
    response = client.post(
        reverse("admin:billing_stripeevent_changelist"),
        {"action": "replay", "_selected_action": [event.pk]},
        follow=True,
    )
    assert "Processed 1 event(s)." in response.content.decode()
    event.refresh_from_db()
    assert event.status == StripeEvent.Status.IGNORED and event.error == ""


def test_a_customer_changed_in_the_admin_goes_through_the_service(client, operator, acme, acme_user, globex_user):
    client.force_login(operator)
    url = reverse("admin:billing_customer_change", args=[acme.pk])
    response = client.post(
        url,
        {
            "name": "Acme Corporation",
            "email": "billing@acme.example",
            "collection_method": "send_invoice",
            "users": [acme_user.pk, globex_user.pk],
            "change_reason": "Acme asked for invoices by mail.",
        },
        follow=True,
    )
    assert response.status_code == 200
    acme.refresh_from_db()
    assert (acme.name, acme.collection_method, acme.customer_ref) == ("Acme Corporation", "send_invoice", "cust_acme")
    assert set(acme.users.all()) == {acme_user, globex_user}
    latest = acme.history.latest()
    assert latest.history_user == operator
    assert latest.history_change_reason == (
        f"changed name, email, collection_method, users (+{globex_user.username}): Acme asked for invoices by mail."
    )


def test_a_customer_created_in_the_admin_goes_through_the_service(client, operator):
    client.force_login(operator)
    client.post(
        reverse("admin:billing_customer_add"),
        {"customer_ref": "cust_new", "name": "New Co", "email": "", "collection_method": "charge_automatically",
         "change_reason": "Signed last week."},
    )  # fmt: skip
    customer = Customer.objects.get(customer_ref="cust_new")
    assert customer.history.latest().history_user == operator
    assert customer.history.latest().history_change_reason == "created: Signed last week."
