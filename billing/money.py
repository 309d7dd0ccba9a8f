"""Integer money. No floats anywhere.

Rating is in micro-units (millionths of the currency unit), so sub-cent prices
work; invoices are in the currency's minor units, rounded half up once per line.
How many decimals a currency's minor unit has (its exponent) comes from
CURRENCY_EXPONENTS: 2 unless listed. Billing periods are in billing/periods.py.
"""

from __future__ import annotations

from django.conf import settings

MICROS = 1_000_000
# ISO 4217 exponents that are not 2, as Stripe counts amounts (Stripe is where the
# minor units go, so its convention wins where it departs from ISO 4217: it keeps
# two decimals for ISK, HUF and TWD, and is the authority for which codes it takes).
# Zero decimals: Stripe's zero-decimal currencies. Three: ISO 4217's three-decimal ones.
CURRENCY_EXPONENTS = {
    **dict.fromkeys("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split(), 0),
    **dict.fromkeys("bhd iqd jod kwd lyd omr tnd".split(), 3),
}


def currency() -> str:
    return settings.BILLING_CURRENCY.lower()


def exponent(code: str | None = None) -> int:
    """Decimals in the currency's minor unit: JPY 0, USD 2, KWD 3."""
    return CURRENCY_EXPONENTS.get((code or currency()).lower(), 2)


def micros_per_minor(code: str | None = None) -> int:
    return MICROS // 10 ** exponent(code)


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


# `rate` in SQL, for rating in the statement that stores the usage (billing.services.usage_rate):
# the same integers, the same half-up rounding (integer division of non-negative numbers
# truncates alike in PostgreSQL, SQLite and Python). `{unit}`, `{price}` and `{quantity}` are
# SQL expressions; a test checks it against `rate` on the database.
RATE_SQL = (
    "CASE WHEN {unit} = '1k_tokens' THEN ({quantity} * {price} + 500) / 1000 ELSE {quantity} * {price} END"
)


def format_minor(amount_minor: int, code: str | None = None) -> str:
    """ "1,234.56 USD", "1,235 JPY", "1,234.567 KWD"."""
    code = (code or currency()).lower()
    places = exponent(code)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**places)
    decimals = f".{fraction:0{places}d}" if places else ""
    return f"{sign}{whole:,}{decimals} {code.upper()}"


def format_micros(amount_micros: int) -> str:
    """Exact decimal text of a micro-unit amount, e.g. 12345 → "0.012345"."""
    sign = "-" if amount_micros < 0 else ""
    whole, frac = divmod(abs(amount_micros), MICROS)
    return f"{sign}{whole}.{frac:06d}"
