"""A small stateful Stripe on top of `responses`, for the calls localstripe lacks
(one-off invoices, finalize, pay, send, search, billing portal).

Payloads follow the current API shape (2026-10-28.endive: an invoice has
`payments`, not `payment_intent`). `responses` does not enforce idempotency
keys, so this fake records every key it is sent (tests assert them) and, like
Stripe, answers a repeated key with the first answer; `forget_keys()` plays
Stripe forgetting them after 24 hours.
"""

from __future__ import annotations

import itertools
import json
import re
from urllib.parse import parse_qsl

import responses

API = "https://api.stripe.com"


def _form(body) -> dict:
    """Stripe's form encoding (`metadata[a]=b`) back into nested dicts."""
    if isinstance(body, bytes):
        body = body.decode()
    out: dict = {}
    for key, value in parse_qsl(body or "", keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


class FakeStripe:
    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps
        self.customers: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.items: dict[str, dict] = {}
        self.calls: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self.keys: dict[str, tuple[int, dict]] = {}
        self.fail_next: dict[str, tuple[int, dict]] = {}
        self.decline_payments = False
        self._ids = itertools.count(1)
        routes = [
            ("POST", r"/v1/customers$", self.customer_create),
            ("GET", r"/v1/customers/search", self.customer_search),
            ("POST", r"/v1/invoices$", self.invoice_create),
            ("GET", r"/v1/invoices/search", self.invoice_search),
            ("GET", r"/v1/invoices/(in_\w+)$", self.invoice_get),
            ("POST", r"/v1/invoices/(in_\w+)/finalize$", self.invoice_finalize),
            ("POST", r"/v1/invoices/(in_\w+)/pay$", self.invoice_pay),
            ("POST", r"/v1/invoices/(in_\w+)/send$", self.invoice_send),
            ("POST", r"/v1/invoiceitems$", self.item_create),
            ("GET", r"/v1/invoiceitems", self.item_list),
            ("POST", r"/v1/billing_portal/sessions$", self.portal_create),
        ]
        for method, pattern, handler in routes:
            rsps.add_callback(method, re.compile(API + pattern), callback=self._wrap(handler, pattern))

    # plumbing

    def _wrap(self, handler, pattern):
        def callback(request):
            path = request.path_url.split("?")[0]
            key = request.headers.get("Idempotency-Key")
            self.calls.append((request.method, path, key))
            step = handler.__name__
            if step in self.fail_next:
                status, body = self.fail_next.pop(step)
                return status, {"content-type": "application/json"}, json.dumps(body)
            if key and key in self.keys:
                status, body = self.keys[key]
                return status, {"content-type": "application/json"}, json.dumps(body)
            match = re.search(pattern, path)
            params = _form(request.body) if request.method == "POST" else dict(parse_qsl(request.url.split("?", 1)[-1]))
            status, body = handler(params, *match.groups())
            if key:
                self.keys[key] = (status, body)
            return status, {"content-type": "application/json"}, json.dumps(body)

        return callback

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def forget_keys(self) -> None:
        self.keys.clear()

    def fail(self, step: str, status: int = 500, message: str = "Something went wrong on Stripe's end.") -> None:
        """Make the next call of a handler (e.g. "invoice_finalize") fail."""
        kind = "api_error" if status >= 500 else "invalid_request_error"
        self.fail_next[step] = (status, {"error": {"type": kind, "message": message}})

    def creates(self, path: str) -> list[str | None]:
        """The idempotency keys sent with POSTs to `path`."""
        return [key for method, p, key in self.calls if method == "POST" and p == path]

    # handlers

    def customer_create(self, params):
        obj = {"id": self._id("cus"), "object": "customer", "name": params.get("name"), "metadata": {}}
        obj.update({k: v for k, v in params.items() if k != "metadata"})
        obj["metadata"] = params.get("metadata", {})
        obj["invoice_settings"] = {"default_payment_method": "pm_card_visa"}
        self.customers[obj["id"]] = obj
        return 200, obj

    def _search(self, store, params):
        match = re.match(r"metadata\['(\w+)'\]:'([^']*)'", params.get("query", ""))
        data = [o for o in store.values() if match and o["metadata"].get(match[1]) == match[2]]
        return 200, {"object": "search_result", "data": data, "has_more": False, "url": "/v1/search"}

    def customer_search(self, params):
        return self._search(self.customers, params)

    def invoice_search(self, params):
        return self._search(self.invoices, params)

    def invoice_create(self, params):
        if params.get("customer") not in self.customers:
            return 404, {"error": {"type": "invalid_request_error", "message": "No such customer", "param": "customer"}}
        obj = {
            "id": self._id("in"),
            "object": "invoice",
            "customer": params["customer"],
            "currency": params.get("currency", "usd"),
            "collection_method": params.get("collection_method", "charge_automatically"),
            "status": "draft",
            "number": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "due_date": None,
            "total": 0,
            "amount_due": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "payments": {"object": "list", "data": [], "has_more": False},
            "metadata": params.get("metadata", {}),
            "pending_invoice_items_behavior": params.get("pending_invoice_items_behavior"),
        }
        self.invoices[obj["id"]] = obj
        return 200, obj

    def invoice_get(self, params, invoice_id):
        return 200, self.invoices[invoice_id]

    def item_create(self, params):
        invoice = self.invoices[params["invoice"]]
        if invoice["status"] != "draft":
            return 400, {"error": {"type": "invalid_request_error", "message": "Invoice is not a draft"}}
        obj = {
            "id": self._id("ii"),
            "object": "invoiceitem",
            "invoice": params["invoice"],
            "customer": params["customer"],
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
        }
        self.items[obj["id"]] = obj
        invoice["total"] += obj["amount"]
        invoice["amount_due"] = invoice["amount_remaining"] = invoice["total"]
        return 200, obj

    def item_list(self, params):
        data = [i for i in self.items.values() if i["invoice"] == params.get("invoice")]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/invoiceitems"}

    def invoice_finalize(self, params, invoice_id):
        invoice = self.invoices[invoice_id]
        if invoice["status"] != "draft":
            return 400, {"error": {"type": "invalid_request_error", "message": "This invoice is already finalized."}}
        number = f"FSAR-{len([i for i in self.invoices.values() if i['number']]) + 1:04d}"
        invoice.update(
            status="open",
            number=number,
            hosted_invoice_url=f"https://invoice.stripe.com/i/acct_test/{invoice_id}",
            invoice_pdf=f"https://pay.stripe.com/invoice/acct_test/{invoice_id}/pdf",
            due_date=1_800_000_000 if invoice["collection_method"] == "send_invoice" else None,
        )
        return 200, invoice

    def invoice_pay(self, params, invoice_id):
        invoice = self.invoices[invoice_id]
        if self.decline_payments:
            return 402, {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}
        invoice.update(status="paid", amount_paid=invoice["total"], amount_remaining=0)
        invoice["payments"]["data"].append(
            {"object": "invoice_payment", "id": self._id("inpay"), "amount_paid": invoice["total"], "status": "paid"}
        )
        return 200, invoice

    def invoice_send(self, params, invoice_id):
        return 200, self.invoices[invoice_id]

    def portal_create(self, params):
        return 200, {
            "id": self._id("bps"),
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "url": f"https://billing.stripe.com/p/session/test_{params['customer']}",
        }
