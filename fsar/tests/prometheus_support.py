"""Helpers for the /metrics tests: scrape with the token, read the samples, make rows."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-for-tests-0123456789abcdef"


def scrape(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label pairs): value}, through prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def make_case(kind: str, *, opened: datetime, due: datetime | None = None, status: str = "open"):
    from reviews.models import Case

    # One waiting tasks case per (rule, task type, model): each its own rule name.
    return Case.objects.create(
        kind=kind,
        title=f"{kind} case",
        status=status,
        opened_at=opened,
        due_at=due,
        rule_name=f"rule-{opened.timestamp():.0f}",
    )


def stripe_event(stripe_id: str, *, received: datetime, status: str):
    from billing.models import StripeEvent

    return StripeEvent.objects.create(
        stripe_id=stripe_id,
        type="invoice.paid",
        created=int(received.timestamp()),
        payload={},
        received_at=received,
        status=status,
    )


def callback(api_key, *, created: datetime, status: str):
    from reviews.models import CallbackDelivery, CallbackEndpoint

    endpoint, _ = CallbackEndpoint.objects.get_or_create(
        api_key=api_key, defaults={"url": "https://agent.example/hook", "secret": "s" * 32}
    )
    return CallbackDelivery.objects.create(
        endpoint=endpoint, type="released", task_id=1, payload={}, status=status, created_at=created
    )


def audit_run(suite, version, verdict: str, *, at: datetime | None = None, decided: str = ""):
    from assurance.models import AuditRun

    at = at or timezone.now()
    return AuditRun.objects.create(
        suite=suite,
        model_version=version,
        ai_model=version.ai_model,
        received_at=at,
        verdict=verdict,
        decided_verdict=decided,
        format=suite.source,
        evidence_sha256=f"{at.timestamp():064.0f}"[-64:],
    )


def series(key: str, scope: str, *, value: float, at: datetime, member=None, **labels):
    from indicators.models import Series

    return Series.objects.create(
        key=key,
        scope=scope,
        labels=labels,
        label_key=",".join(f"{k}={labels[k]}" for k in sorted(labels)),
        ai_model=labels.get("ai_model", ""),
        task_type=labels.get("task_type", ""),
        member=member,
        last_value=value,
        last_at=at,
    )


def alert(kind: str, *, state: str = "firing", ai_model: str = "", member=None, dedup: str = ""):
    from indicators.models import Alert

    return Alert.objects.create(
        kind=kind,
        state=state,
        ai_model=ai_model,
        member=member,
        dedup_key=dedup or f"{kind}:{ai_model}:{getattr(member, 'pk', '')}:{state}",
        title=f"{kind} alert",
    )
