"""Verifying FSAR's signed callbacks (the push alternative to long-polling).

FSAR POSTs `{event_id, type, task, case, decision}` with the headers
`FSAR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
and `FSAR-Event-Id`. `verify_callback` checks the signature over the exact bytes
received and the timestamp's age; de-duplicate on `event_id` yourself (a
delivery can be retried).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "FSAR-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The callback is not FSAR's, was altered, or is older than the tolerance (a replay)."""


def _header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """A header from a dict, httpx/requests headers, Django's request.headers or
    WSGI's environ (HTTP_FSAR_SIGNATURE), whatever the case of its name."""
    wanted = name.lower()
    environ_name = "HTTP_" + name.upper().replace("-", "_")
    for key, value in headers.items():
        if isinstance(key, str) and (key.lower() == wanted or key == environ_name):
            return value
    return None


def verify_callback(
    body: bytes | str,
    headers: Mapping[str, str] | Any,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Return the callback's JSON if `headers` carry a valid FSAR signature of
    `body` made with `secret` within `tolerance` seconds; raise InvalidSignature
    otherwise. Pass the body exactly as received: parsed and re-serialised JSON
    does not match the signature."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature(f"{SIGNATURE_HEADER} has a timestamp that is not a number") from None
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature(f"{SIGNATURE_HEADER} needs t=<unix seconds> and v1=<signature>")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise InvalidSignature("the signature does not match this body and secret")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        raise InvalidSignature(f"the signature is {age:.0f} s old, more than the {tolerance:g} s allowed")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise InvalidSignature("the signed body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidSignature("the signed body is not a JSON object")
    return payload
