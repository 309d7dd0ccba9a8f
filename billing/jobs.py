"""RQ jobs: take ids, reload rows, call a service; safe to run twice."""

import logging

from django.utils import timezone

from billing import invoicing, periods, stripe_client, webhooks
from billing.models import InvoiceRun

logger = logging.getLogger(__name__)


def invoice_run_process(run_id: int) -> str:
    run = invoicing.invoice_run_process(run_id=run_id)
    return f"run {run.pk}: {run.status}"


def invoice_run_scheduled() -> str:
    """Periodic: once a month has ended, invoice it, once. Later runs for the same
    period are an operator's decision (the retry action or `invoice_run`)."""
    if not stripe_client.is_configured():
        return "skipped: " + stripe_client.NOT_CONFIGURED
    period = periods.previous_period(timezone.now())
    if InvoiceRun.objects.filter(period=period).exists():
        return f"period {period} already has a run"
    run = invoicing.invoice_run(period=period)
    return f"run {run.pk} for {period}: {run.status}"


def reconcile_invoices() -> str:
    """Periodic: catch missed webhooks by re-fetching unsettled invoices from Stripe."""
    if not stripe_client.is_configured():
        return "skipped: " + stripe_client.NOT_CONFIGURED
    corrections = webhooks.reconcile_invoices()
    for line in corrections:
        logger.warning("Stripe reconciliation: %s", line)
    return f"corrected {len(corrections)} invoice(s)" + "".join(f"\n{c}" for c in corrections)


def stripe_events_drain() -> str:
    """Process every pending Stripe event (scheduled by webhook intake, and
    periodically as a safety net)."""
    return f"processed {webhooks.drain_pending()} event(s)"
