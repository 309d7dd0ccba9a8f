import pytest
from django.urls import reverse

from billing import services
from billing.models import InvoiceRun

pytestmark = pytest.mark.django_db


def test_billing_admin_pages_render_with_history(client, superuser, acme, offerings, finish_task):
    finish_task()
    invoice = services.invoice_prepare(customer_id=acme.pk, period="2026-11")
    run = InvoiceRun.objects.create(period="2026-11")
    client.force_login(superuser)
    objects = {
        "customer": acme,
        "serviceoffering": offerings[0],
        "invoice": invoice,
        "invoicerun": run,
        "usagerecord": invoice.lines.first().usage_records.first(),
    }
    for model, obj in objects.items():
        assert client.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200, model
        assert client.get(reverse(f"admin:billing_{model}_change", args=[obj.pk])).status_code == 200, model
        if model != "usagerecord":
            assert client.get(reverse(f"admin:billing_{model}_history", args=[obj.pk])).status_code == 200, model


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
