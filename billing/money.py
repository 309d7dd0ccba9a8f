"""Integer money and billing periods. No floats anywhere.

Rating is in micro-units (millionths of the currency unit), so sub-cent prices
work; invoices are in the currency's minor units, rounded half up once per line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.conf import settings

MICROS = 1_000_000
# Stripe's zero-decimal currencies (amounts in whole units); everything else has cents.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
PERIOD_RE = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
# The periods parse_period accepts, 0001-01 to 9998-12, as a pattern for the API's schema.
PERIOD_PATTERN = (
    r"^(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(?:0[1-9]|1[0-2])$"
)


def currency() -> str:
    return settings.BILLING_CURRENCY.lower()


def micros_per_minor(code: str | None = None) -> int:
    return MICROS if (code or currency()).lower() in ZERO_DECIMAL else MICROS // 100


def round_div(numerator: int, denominator: int) -> int:
    """Integer division rounding half up (amounts are never negative here)."""
    return (numerator + denominator // 2) // denominator


def micros_to_minor(amount_micros: int, code: str | None = None) -> int:
    return round_div(amount_micros, micros_per_minor(code))


def rate(*, unit: str, unit_price_micros: int, quantity: int) -> int:
    """The amount in micro-units for `quantity` units (tasks, or tokens for the per-1,000-tokens unit)."""
    if unit == "1k_tokens":
        return round_div(quantity * unit_price_micros, 1000)
    return quantity * unit_price_micros


def format_minor(amount_minor: int, code: str | None = None) -> str:
    code = (code or currency()).lower()
    if code in ZERO_DECIMAL:
        return f"{amount_minor:,} {code.upper()}"
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole:,}.{cents:02d} {code.upper()}"


def format_micros(amount_micros: int) -> str:
    """Exact decimal text of a micro-unit amount, e.g. 12345 → "0.012345"."""
    sign = "-" if amount_micros < 0 else ""
    whole, frac = divmod(abs(amount_micros), MICROS)
    return f"{sign}{whole}.{frac:06d}"


class BadPeriod(ValueError):
    pass


def parse_period(text: str) -> tuple[datetime, datetime]:
    """ "2026-11" → [2026-11-01 00:00 UTC, 2026-12-01 00:00 UTC)."""
    match = PERIOD_RE.fullmatch(text or "")
    if not match:
        raise BadPeriod(f"period must look like YYYY-MM, got {text!r}")
    year, month = int(match[1]), int(match[2])
    if not 1 <= year <= 9998:  # datetime has years 1 to 9999, and the period ends a month later
        raise BadPeriod(f"period must be between 0001-01 and 9998-12, got {text!r}")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), 1 if month == 12 else month + 1, 1, tzinfo=UTC)
    return start, end


def period_of(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def previous_period(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return f"{year:04d}-{month:02d}"
