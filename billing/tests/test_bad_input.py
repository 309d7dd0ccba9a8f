"""Bad input found by fuzzing: a 4xx naming the field, and nothing stored."""

import json

import pytest
import stripe
from django.urls import reverse

from billing.models import InvoiceRun, StripeEvent

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_fsar"
OUT_OF_RANGE = ["0000-01", "9999-12", "２０２６-11", "2026-11\n"]


@pytest.mark.parametrize("period", OUT_OF_RANGE)
def test_a_period_datetime_cannot_hold_is_a_400_on_the_customer_pages(client, acme_user, acme, period):
    client.force_login(acme_user)
    for name in ("billing:usage", "billing:usage_csv"):
        response = client.get(reverse(name), {"period": period})
        assert response.status_code == 400
        assert response.content.decode().startswith("period: period must")


@pytest.mark.parametrize("period", OUT_OF_RANGE)
def test_a_period_datetime_cannot_hold_is_a_400_on_the_roi_page_and_a_422_in_the_api(client, operator, agent, period):
    response = agent.get("/api/v1/billing/roi", {"period": period})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("period: period must")
    client.force_login(operator)
    response = client.get(reverse("billing:roi"), {"period": period})
    assert response.status_code == 400
    assert response.content.decode().startswith("period: period must")


def test_an_invoice_run_for_year_9999_is_a_form_error_and_no_run(client, operator):
    client.force_login(operator)
    response = client.post(reverse("billing:runs"), {"period": "9999-12"})
    assert response.status_code == 200
    assert "between 0001-01 and 9998-12" in " ".join(response.context["form"].errors["period"])
    assert not InvoiceRun.objects.exists()


def event(**fields) -> dict:
    return {"id": "evt_bad_1", "type": "invoice.paid", "created": 1_800_000_000, "data": {"object": {}}, **fields}


@pytest.mark.parametrize(
    "body,detail",
    [
        (json.dumps(event(created=2**70)), "created: not a Unix time in seconds"),
        (json.dumps(event(created=True)), "body: not a Stripe event"),
        (json.dumps(event(id="e" * 101)), "id: longer than 100 characters"),
        (json.dumps(event(type="t" * 101)), "type: longer than 100 characters"),
        (json.dumps(event(api_version="v" * 51)), "api_version: longer than 50 characters"),
        (json.dumps(event(id="evt\u0000")), "body: contains a NUL"),
        (json.dumps(event(data={"object": {"note": "a\u0000b"}})), "body: contains a NUL"),
        ('{"id": "evt_deep", "a": ' + "[" * 50_000, "body: not a Stripe event"),
        (json.dumps(event(id="evt_\ud800")), "id: must not contain a lone surrogate"),
        (json.dumps(event(data={"object": {"lines": [{"note": "a\udfffb"}]}})), "data.object.lines[0].note: must not"),
        (json.dumps(event(data={"object": {"k\ud800": 1}})), "data.object: must not contain a lone surrogate"),
    ],
    ids=[
        "created>2^63",
        "created bool",
        "long id",
        "long type",
        "long api_version",
        "nul id",
        "nul payload",
        "deep",
        "surrogate id",
        "surrogate payload",
        "surrogate key",
    ],  # fmt: skip
)
def test_a_signed_event_the_columns_cannot_hold_is_a_400_naming_the_field(client, settings, body, detail):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    signature = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    response = client.post(
        reverse("billing:stripe_webhook"), body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert not StripeEvent.objects.exists()


def test_a_bad_period_is_answered_as_plain_text_so_the_quoted_input_never_runs(client, acme_user, operator, acme):
    period = "<script>alert(1)</script>"
    for user, name in ((acme_user, "billing:usage"), (acme_user, "billing:usage_csv"), (operator, "billing:roi")):
        client.force_login(user)
        response = client.get(reverse(name), {"period": period})
        assert response.status_code == 400
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response.content.decode() == f"period: period must look like YYYY-MM, got {period!r}"
