import re
from html import unescape

import pytest
from django.urls import reverse

from billing import services
from billing.models import InvoiceRun

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    """The admin page's content area as text: tags dropped, whitespace collapsed."""
    html = response.content.decode().split('id="content"', 1)[-1]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_billing_admin_pages_render_with_history(client, superuser, acme, offerings, finish_task):
    finish_task()
    invoice = services.invoice_prepare(customer_id=acme.pk, period="2026-11")
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
            ["Change service offering Idea implementation", "Covered task types", "implement_idea"],
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
            ["invoice run 2026-11 #1 2026-11 Running", "1 invoice run"],
            ["Change invoice run invoice run 2026-11 #1", "Period: 2026-11 Status: Running"],
            ["View history: invoice run 2026-11 #1", "Created", "1 entry"],
        ),
        "usagerecord": (
            record,
            ["implement_idea t-1 (succeeded) Acme Corp (cust_acme) Idea implementation 1 123450", "1 usage record"],
            ["Change usage record usage for task 1", "Amount micros: 123450", "Cost micros: 500"],
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


def test_the_admin_refuses_a_task_type_another_offering_covers(client, superuser, per_task_offering):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:billing_serviceoffering_add"),
        {
            "name": "Cheap ideas",
            "unit": "task",
            "unit_price_micros": "1",
            "stripe_product_id": "",
            "active": "on",
            "created_at_0": "2026-11-01",
            "created_at_1": "00:00:00",
            "task_types-TOTAL_FORMS": "1",
            "task_types-INITIAL_FORMS": "0",
            "task_types-MIN_NUM_FORMS": "0",
            "task_types-MAX_NUM_FORMS": "1000",
            "task_types-0-task_type": "implement_idea",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "already exists" in response.content.decode()
    assert not per_task_offering.__class__.objects.filter(name="Cheap ideas").exists()


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
