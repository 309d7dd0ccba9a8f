"""Billing periods: calendar months in UTC, written "YYYY-MM"."""

from __future__ import annotations

import re
from datetime import UTC, datetime

PERIOD_RE = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
# The periods parse_period accepts, 0001-01 to 9998-12, as a pattern for the API's schema.
PERIOD_PATTERN = (
    r"^(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(?:0[1-9]|1[0-2])$"
)


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
