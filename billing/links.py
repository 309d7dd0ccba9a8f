"""Which addresses from Stripe FSAR links to or redirects to.

`hosted_invoice_url`, `invoice_pdf` and the billing portal's session URL come
from Stripe's API and webhook payloads. A customer follows them to pay, so a
stored value that points anywhere else (a forged or replayed webhook, a row
edited in the database, a misconfigured STRIPE_API_BASE) must not become a
"Pay" button: only `https:` addresses on stripe.com or its subdomains (where
Stripe serves invoices, PDFs and the portal: invoice.stripe.com,
pay.stripe.com, billing.stripe.com) are linked; anything else is not shown.
"""

from __future__ import annotations

from urllib.parse import urlsplit

STRIPE_DOMAIN = "stripe.com"


def stripe_link(url: str | None) -> str:
    """`url` if it is an https address on Stripe's hosts, else ""."""
    if not url or not url.isascii() or any(c in url for c in "\\\x00\t\r\n "):
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme != "https" or parts.username is not None or parts.password is not None:
        return ""
    if port not in (None, 443):
        return ""
    if host != STRIPE_DOMAIN and not host.endswith("." + STRIPE_DOMAIN):
        return ""
    return url
