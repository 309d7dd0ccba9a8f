"""The one place that talks to Stripe.

Every call goes through `StripeClient`: base address from STRIPE_API_BASE,
timeouts, retries on network errors (stripe-python's own, safe because every
create carries an idempotency key), and Stripe's errors turned into
`StripeFailed` with a message an operator can act on.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings

NOT_CONFIGURED = "Stripe is not configured (set STRIPE_API_KEY); nothing was sent to Stripe."


class BillingError(Exception):
    """A billing action that cannot be done; the message says why, for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StripeNotConfigured(BillingError):
    def __init__(self) -> None:
        super().__init__(NOT_CONFIGURED)


class StripeFailed(BillingError):
    """Stripe answered with an error, or could not be reached."""


def is_configured() -> bool:
    return bool(settings.STRIPE_API_KEY)


def to_dict(obj: Any) -> dict:
    """stripe-python 16 objects are not dicts; tests and callers want plain data."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class StripeClient:
    """Thin, typed wrapper: one method per Stripe call FSAR makes."""

    def __init__(self) -> None:
        if not is_configured():
            raise StripeNotConfigured()
        base = settings.STRIPE_API_BASE or None
        self.base = base or "https://api.stripe.com"
        self._client = stripe.StripeClient(
            settings.STRIPE_API_KEY,
            base_addresses={"api": base} if base else None,
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        )

    def _call(self, what: str, fn, *args, **kwargs) -> dict:
        try:
            return to_dict(fn(*args, **kwargs))
        except stripe.AuthenticationError as exc:
            raise StripeFailed(f"Stripe refused the API key while trying to {what}: check STRIPE_API_KEY.") from exc
        except stripe.PermissionError as exc:
            raise StripeFailed(f"The Stripe API key may not {what}: {exc.user_message or exc}") from exc
        except stripe.CardError as exc:
            raise StripeFailed(f"The card was declined when trying to {what}: {exc.user_message or exc}") from exc
        except stripe.RateLimitError as exc:
            raise StripeFailed(f"Stripe is rate limiting us; retry later ({what}).") from exc
        except stripe.APIConnectionError as exc:
            raise StripeFailed(
                f"Could not reach Stripe at {self.base} to {what} after retries; check the network and retry."
            ) from exc
        except stripe.InvalidRequestError as exc:
            param = f" (parameter {exc.param})" if getattr(exc, "param", None) else ""
            raise StripeFailed(f"Stripe refused to {what}{param}: {exc.user_message or exc}") from exc
        except stripe.StripeError as exc:
            raise StripeFailed(f"Stripe failed to {what}: {exc.user_message or exc}") from exc

    @staticmethod
    def _opts(idempotency_key: str | None) -> dict:
        return {"idempotency_key": idempotency_key} if idempotency_key else {}

    # Customers
    def customer_create(self, *, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "create a customer",
            self._client.v1.customers.create,
            params=params,
            options=self._opts(idempotency_key),
        )

    def customer_search(self, *, query: str) -> list[dict]:
        found = self._call("search customers", self._client.v1.customers.search, params={"query": query})
        return found.get("data", [])

    # Invoices
    def invoice_create(self, *, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "create an invoice",
            self._client.v1.invoices.create,
            params=params,
            options=self._opts(idempotency_key),
        )

    def invoice_search(self, *, query: str) -> list[dict]:
        found = self._call("search invoices", self._client.v1.invoices.search, params={"query": query})
        return found.get("data", [])

    def invoice_retrieve(self, invoice_id: str) -> dict:
        return self._call("fetch an invoice", self._client.v1.invoices.retrieve, invoice_id)

    def invoice_item_create(self, *, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "add an invoice item",
            self._client.v1.invoice_items.create,
            params=params,
            options=self._opts(idempotency_key),
        )

    def invoice_items_list(self, *, invoice_id: str) -> list[dict]:
        found = self._call(
            "list invoice items",
            self._client.v1.invoice_items.list,
            params={"invoice": invoice_id, "limit": 100},
        )
        return found.get("data", [])

    def invoice_finalize(self, invoice_id: str, *, idempotency_key: str) -> dict:
        return self._call(
            "finalize an invoice",
            self._client.v1.invoices.finalize_invoice,
            invoice_id,
            params={"auto_advance": False},
            options=self._opts(idempotency_key),
        )

    def invoice_pay(self, invoice_id: str, *, idempotency_key: str) -> dict:
        return self._call(
            "charge an invoice",
            self._client.v1.invoices.pay,
            invoice_id,
            options=self._opts(idempotency_key),
        )

    def invoice_send(self, invoice_id: str, *, idempotency_key: str) -> dict:
        return self._call(
            "send an invoice",
            self._client.v1.invoices.send_invoice,
            invoice_id,
            options=self._opts(idempotency_key),
        )

    # Billing portal
    def portal_session_create(self, *, customer_id: str, return_url: str) -> dict:
        return self._call(
            "open the billing portal",
            self._client.v1.billing_portal.sessions.create,
            params={"customer": customer_id, "return_url": return_url},
        )
