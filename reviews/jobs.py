"""RQ jobs for reviews. Each takes ids, reloads rows, and is safe to run twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import django_rq
import requests
from django.conf import settings
from django.utils import timezone

from reviews import callback_urls, services
from reviews.models import CallbackDelivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "FSAR-Signature"


def enqueue(func, *args):
    return django_rq.get_queue("default").enqueue(func, *args)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; the receiver
    recomputes it, rejects old timestamps (replays) and de-duplicates on event_id."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def deliver_callback(delivery_id: int) -> str:
    """POST one callback. A delivery that is not pending or not yet due is left alone."""
    delivery = CallbackDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != CallbackDelivery.Status.PENDING:
        return "skipped"
    if delivery.next_attempt_at > timezone.now():
        return "not due"
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(delivery.endpoint.secret, body, int(time.time())),
        "FSAR-Event-Id": str(delivery.event_id),
    }
    timeout = settings.REVIEWS_CALLBACK_TIMEOUT_SECONDS
    try:
        # Guarded (reviews/callback_urls.py): the host is resolved and checked again now, no redirects,
        # and of the answer only its status and, on failure, a short escaped excerpt are kept.
        with (
            callback_urls.session() as http,
            http.post(
                delivery.endpoint.url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            ) as response,
        ):
            ok, status_code, error = 200 <= response.status_code < 300, response.status_code, ""
            if 300 <= response.status_code < 400:
                error = f"HTTP {response.status_code}: redirects are not followed"
            elif not ok:
                error = f"HTTP {response.status_code}: {callback_urls.excerpt(response)}"
    except callback_urls.CallbackUrlRefused as exc:
        ok, status_code, error = False, None, f"refused: {exc}"
    except requests.RequestException as exc:
        ok, status_code, error = False, None, f"{type(exc).__name__}: {exc}"
    delivery = services.callback_record_attempt(delivery_id=delivery_id, ok=ok, status_code=status_code, error=error)
    if not ok:
        logger.warning(
            "Callback %s to %s failed (attempt %d): %s",
            delivery.event_id,
            delivery.endpoint.url,
            delivery.attempts,
            error,
        )
    return delivery.status


def retry_due_callbacks() -> int:
    """Periodic: enqueue every pending delivery whose next attempt is due."""
    due = list(
        CallbackDelivery.objects.filter(
            status=CallbackDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        ).values_list("pk", flat=True)[:500]
    )
    for delivery_id in due:
        enqueue(deliver_callback, delivery_id)
    return len(due)


def expire_approvals() -> int:
    """Periodic: approvals past their period become `expired`."""
    return services.cases_expire()


def redecide_paused_tasks() -> int:
    return services.redecide_paused_tasks()


def check_quorum_reach(case_id: int) -> None:
    """Flag the case if its eligible members cannot reach its quorum. Already in a
    worker, so the operators' notice is sent here once the flag has committed, not
    enqueued as a job of its own (each job is a forked work horse: docs/benchmarks.md)."""
    if services.case_check_quorum_reach(case_id=case_id, notify=False):
        notify_quorum_impossible(case_id)


def case_opened(case_id: int) -> None:
    """A case put in front of the committee: its quorum check, then its notice to the
    committee and, if the check flagged it, the operators', in one job instead of two
    (one forked work horse per held report, not two or three). The case is read once,
    under the check's lock, and its submitters worked out once for all three
    (services.case_opened_quorum_check). Each part runs even if another fails; all
    are safe to run twice. The separate jobs stay for jobs enqueued before this one."""
    from reviews import notifications

    flagged, case = False, None
    try:
        flagged, case = services.case_opened_quorum_check(case_id=case_id)
    finally:
        try:
            notifications.notify_case_opened(case_id, case=case)
        finally:
            if flagged:
                notifications.notify_quorum_impossible(case_id, case=case)


def recheck_short_of_members() -> int:
    """After a committee change, and hourly as a safety net: cases that cannot reach their quorum."""
    return services.recheck_short_of_members()


def notify_case_opened(case_id: int) -> bool:
    from reviews import notifications

    return notifications.notify_case_opened(case_id)


def notify_decision(case_id: int, decision: str, version: int) -> bool:
    from reviews import notifications

    return notifications.notify_decision(case_id, decision, version)


def notify_quorum_impossible(case_id: int) -> bool:
    from reviews import notifications

    return notifications.notify_quorum_impossible(case_id)


def sla_reminders() -> int:
    """Periodic: SLA near (80% elapsed) and past reminders to the committee, each once."""
    from reviews import notifications

    return notifications.sla_reminders()
