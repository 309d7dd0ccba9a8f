"""Task figures as people read them."""

from __future__ import annotations


def duration(ms: float | int | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 5 min 21 s, 2 h 05 min ("—" for none)."""
    if ms is None:
        return "—"
    if ms < 999.5:
        return f"{ms:.0f} ms"
    if ms < 59_950:
        return f"{ms / 1000:.1f} s"
    seconds = round(ms / 1000)
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60:,} h {minutes % 60:02d} min"


def exact_ms(ms: float | int | None) -> str:
    """The exact figure, for a tooltip beside `duration`."""
    return "" if ms is None else f"{ms:,.1f} ms"


def percent(value: float | None, signed: bool = False) -> str:
    """A ratio as a percentage: 2.50%, or +12.3% for a change ("—" for none)."""
    if value is None:
        return "—"
    return f"{value * 100:+.1f}%" if signed else f"{value * 100:.2f}%"
