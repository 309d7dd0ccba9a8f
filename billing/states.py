"""An invoice's state, and the one function that moves it.

Stripe's invoice state machine: draft → open → paid | void | uncollectible, and
uncollectible → paid | void; paid and void are final. Both writers, the push to
Stripe (billing/stripe_push.py) and webhooks and reconciliation (billing/webhooks.py),
move an invoice's state only through `move`, so they agree on what is final and a
late or stale answer never moves an invoice back.
"""

from __future__ import annotations

from datetime import UTC, datetime

from billing.models import Invoice, InvoiceStatus

# Position in the state machine; an invoice only moves to a higher rank.
RANK = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.OPEN: 1,
    InvoiceStatus.UNCOLLECTIBLE: 2,
    InvoiceStatus.PAID: 3,
    InvoiceStatus.VOID: 3,
}
# No move leaves these.
FINAL = (InvoiceStatus.PAID, InvoiceStatus.VOID)
# Not collected by us any more: an invoice run neither pushes nor charges these
# (an uncollectible invoice may still be paid on Stripe's page, or voided there).
CLOSED = (*FINAL, InvoiceStatus.UNCOLLECTIBLE)


def can_move(current: str, target: str | None) -> bool:
    if current in FINAL or target not in RANK:
        return False
    return RANK[target] > RANK.get(current, 0)


def move(invoice: Invoice, target: str | None) -> str | None:
    """Set the (locked, unsaved) invoice's status to `target` if the state machine
    allows it. Returns "before → target" when it moved, None otherwise; the caller saves."""
    before = invoice.status
    if not target or target == before or not can_move(before, target):
        return None
    invoice.status = target
    return f"{before} → {target}"


def stripe_time(value) -> datetime | None:
    """A Stripe timestamp (Unix seconds) as a datetime; None for anything else."""
    return datetime.fromtimestamp(value, tz=UTC) if type(value) is int and value else None
