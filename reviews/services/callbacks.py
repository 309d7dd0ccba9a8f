"""Callbacks to the AI side: one signed delivery per task whose API key has an
endpoint, recorded in the deciding transaction and sent by a job after commit,
retried with backoff.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.chain import actor_name, audit_append
from core.jobs import enqueue_on_commit
from reviews import callback_urls
from reviews.models import (
    CallbackDelivery,
    CallbackEndpoint,
    Case,
)
from reviews.services.errors import NotAllowed
from tasks.models import ExecutionTask, TaskStatus

logger = logging.getLogger(__name__)


CALLBACK_BACKOFF_SECONDS = (10, 30, 120, 600, 1800, 3600)
CALLBACK_MAX_ATTEMPTS = len(CALLBACK_BACKOFF_SECONDS) + 1


def _case_json(case: Case | None) -> dict | None:
    if case is None:
        return None
    return {
        "id": case.pk,
        "status": case.status,
        "rationale": case.rationale or None,
        "url": reverse("reviews:case", args=[case.pk]),
    }


# Tasks a pause or a revocation tells to stop: running, or allowed and not started yet.
STOPPABLE = (TaskStatus.RUNNING, TaskStatus.REGISTERED)


def task_callbacks_queue(
    tasks: list[ExecutionTask], kind: str, *, case: Case | None, reason: str = "", decision: str = ""
) -> None:
    """Record one delivery per task whose API key has a callback (`kind`: released,
    denied, changes_requested, stop), in the caller's transaction; each is sent by
    a job after commit. `reason` and `decision` (a `stop`: "hold") override the
    task's stored ones. Upper apps call it too (deployments stops a revoked
    model's tasks)."""
    key_ids = {t.submitted_by_id for t in tasks if t.submitted_by_id}
    if not key_ids:
        return
    endpoints = {e.api_key_id: e for e in CallbackEndpoint.objects.filter(api_key_id__in=key_ids, enabled=True)}
    deliveries = []
    for task in tasks:
        endpoint = endpoints.get(task.submitted_by_id)
        if endpoint is None:
            continue
        delivery = CallbackDelivery(endpoint=endpoint, type=kind, task_id=task.pk, payload={})
        delivery.payload = {
            "event_id": str(delivery.event_id),
            "type": kind,
            "task": {"id": task.pk, "external_id": task.external_id, "status": task.status},
            "case": _case_json(case),
            "decision": {
                "decision": decision or task.gate_decision,
                "reason": reason or task.gate_reason,
                "policy": task.gate_policy,
            },
        }
        deliveries.append(delivery)
    CallbackDelivery.objects.bulk_create(deliveries)
    if deliveries:
        for delivery in deliveries:
            enqueue_on_commit("reviews.jobs.deliver_callback", delivery.pk)


def new_callback_secret() -> str:
    return secrets.token_urlsafe(32)


def _endpoint_chain(kind: str, endpoint: CallbackEndpoint, *, by, **data) -> None:
    audit_append(
        kind=kind,
        subject=f"callback_endpoint:{endpoint.pk}",
        actor=actor_name(user=by),
        data={"api_key": endpoint.api_key_id, **data},
    )


@transaction.atomic
def callback_endpoint_set(
    *,
    api_key_id: int,
    url: str,
    by,
    secret: str | None = None,
    enabled: bool = True,
    reason: str = "",
) -> CallbackEndpoint:
    """Where the AI side behind the key hears about gate changes. The URL must name a
    public host (reviews/callback_urls.py); deliveries check it again each time.

    A new endpoint gets a generated signing secret unless given one: the caller shows
    `endpoint.secret` once (the admin shows only its last 4 characters afterwards). A
    change keeps the secret unless given one (`callback_secret_rotate` makes a new
    one). Every call that changes something leaves a history row (the user, the reason;
    the secret is not in the history) and a `callback_endpoint.set` chain entry with
    the URL and `enabled` before and after and whether the secret changed, never the
    secret itself. A call that changes nothing is refused."""
    try:
        callback_urls.check_url(url)
    except callback_urls.CallbackUrlRefused as exc:
        raise NotAllowed(f"url: {exc}", field="url") from None
    endpoint = CallbackEndpoint.objects.select_for_update().filter(api_key_id=api_key_id).first()
    created = endpoint is None
    if created:
        endpoint = CallbackEndpoint(api_key_id=api_key_id, url=url, secret=secret or new_callback_secret())
        before = {"url": None, "enabled": None}
    else:
        before = {"url": endpoint.url, "enabled": endpoint.enabled}
        if (url, enabled) == (endpoint.url, endpoint.enabled) and secret in (None, endpoint.secret):
            raise NotAllowed("nothing changed: the callback already has this URL and state")
    secret_changed = created or (secret is not None and secret != endpoint.secret)
    endpoint.url = url
    if secret is not None:
        endpoint.secret = secret
    endpoint.enabled = enabled
    why = reason.strip()
    endpoint._history_user = by
    endpoint._change_reason = f"callback {'set' if created else 'changed'}{': ' + why if why else ''}"
    endpoint.save()
    _endpoint_chain(
        "callback_endpoint.set",
        endpoint,
        by=by,
        created=created,
        url=[before["url"], url],
        enabled=[before["enabled"], enabled],
        secret_changed=secret_changed,
        reason=why,
    )
    return endpoint


@transaction.atomic
def callback_secret_rotate(*, endpoint_id: int, by, reason: str = "") -> tuple[CallbackEndpoint, str]:
    """A new signing secret for an endpoint, returned this once for the caller to hand
    to the AI side's receiver (deliveries sign with it from now on). History (the user,
    the reason) and a `callback_endpoint.secret_rotated` chain entry with the new
    secret's last 4 characters."""
    endpoint = CallbackEndpoint.objects.select_for_update().get(pk=endpoint_id)
    secret = new_callback_secret()
    endpoint.secret = secret
    why = reason.strip()
    endpoint._history_user = by
    endpoint._change_reason = f"signing secret rotated{': ' + why if why else ''}"
    endpoint.save()
    _endpoint_chain("callback_endpoint.secret_rotated", endpoint, by=by, secret_last4=secret[-4:], reason=why)
    return endpoint, secret


def callback_record_attempt(*, delivery_id: int, ok: bool, status_code: int | None, error: str) -> CallbackDelivery:
    """Record one delivery attempt (compare-and-set on `pending`); schedules the next try with backoff."""
    with transaction.atomic():
        delivery = CallbackDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != CallbackDelivery.Status.PENDING:
            return delivery
        now = timezone.now()
        delivery.attempts += 1
        delivery.last_status_code = status_code
        if ok:
            delivery.status = CallbackDelivery.Status.DELIVERED
            delivery.delivered_at = now
            delivery.last_error = ""
        else:
            delivery.last_error = error[:2000]
            if delivery.attempts >= CALLBACK_MAX_ATTEMPTS:
                delivery.status = CallbackDelivery.Status.FAILED
            else:
                delivery.next_attempt_at = now + timedelta(seconds=CALLBACK_BACKOFF_SECONDS[delivery.attempts - 1])
        delivery.save()
        return delivery


@transaction.atomic
def callback_retry(*, delivery_id: int, by) -> CallbackDelivery:
    """An operator retries a failed delivery: it goes back to pending, due now."""
    delivery = CallbackDelivery.objects.select_for_update().get(pk=delivery_id)
    if delivery.status == CallbackDelivery.Status.DELIVERED:
        raise NotAllowed("this callback was already delivered")
    delivery.status = CallbackDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.save()
    enqueue_on_commit("reviews.jobs.deliver_callback", delivery.pk)
    logger.info("Callback %s retried by %s", delivery.event_id, by)
    return delivery
